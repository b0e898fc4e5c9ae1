//! The `nc-vqvae` command line (see docs/cli.md for the promise it keeps).
//!
//! Thin by design: parse, call the library, print. Exit codes: 0 success, 2 bad input or usage
//! (one line on stderr naming the file and problem), 1 internal failure. Panics are caught by a
//! hook and reported in one line as internal errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nc_vqvae::backend::{Backend, NotCompiled};
use nc_vqvae::inspect::DatasetReport;
use nc_vqvae::ucr_data::{Resolver, UcrDataset};

/// Self-supervised time-series tokenization (NC-VQVAE) and generation on Burn.
#[derive(Debug, Parser)]
#[command(name = "nc-vqvae", version, about, propagate_version = true)]
struct Cli {
    /// Compute backend: cpu (Burn flex), wgpu or cuda; each needs its cargo feature.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with UCR datasets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Load, validate and describe a dataset (counts, lengths, classes, NaN cells).
    Inspect {
        /// A UCR name (looked up in --data-dir, then $NC_VQVAE_DATA, then the bundled data) or a
        /// path to a *_TRAIN.tsv[.gz] / *_TEST.tsv[.gz] file.
        dataset: String,
        /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print JSON: {"name", "train": {"n", "length_min", "length_max", "classes", "nan_values"}, "test": {…}}.
        #[arg(long)]
        json: bool,
    },
}

/// Failures split by whose fault they are: bad input (exit 2) or ours (exit 1).
enum Failure {
    Input(anyhow::Error),
    Internal(anyhow::Error),
}

impl From<nc_vqvae::ucr_data::Error> for Failure {
    fn from(e: nc_vqvae::ucr_data::Error) -> Self {
        Failure::Input(e.into())
    }
}

impl From<NotCompiled> for Failure {
    fn from(e: NotCompiled) -> Self {
        Failure::Input(e.into())
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    cli.backend.ensure_compiled()?;
    match cli.command {
        Command::Data { command: DataCommand::Inspect { dataset, data_dir, json } } => {
            let source = Resolver::new(data_dir).resolve(&dataset)?;
            let data = UcrDataset::load(&source)?;
            let report = DatasetReport::new(&data);
            if json {
                let text = serde_json::to_string(&report).map_err(|e| Failure::Internal(e.into()))?;
                println!("{text}");
            } else {
                print!("{}", report.to_text(&data));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("internal error: {}{place} (please report this)", message.replace('\n', " "));
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failure::Input(e))) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(2)
        }
        Ok(Err(Failure::Internal(e))) => {
            eprintln!("internal error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}
