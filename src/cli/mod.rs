//! The `nc-vqvae` command line (see docs/cli.md for the promise it keeps): the arguments, one
//! module per subcommand, and the helpers they share.
//!
//! Thin by design: parse, call the library, print. Exit codes: 0 success, 2 bad input or usage
//! (one line on stderr naming the file and problem), 1 internal failure.

pub(crate) mod alloc;
mod backend;
mod bench;
mod data;
mod encode;
mod evaluate;
mod failure;
mod fcn;
mod job;
mod sample;
mod stage1;
mod stage2;
mod sweep;

use std::path::{Path, PathBuf};

use backend::Backend;
use clap::parser::ValueSource;
use clap::{ArgMatches, Parser, Subcommand};

pub(crate) use failure::{Failure, disk_full};

/// Self-supervised time-series tokenization (NC-VQVAE) and generation on Burn.
#[derive(Debug, Parser)]
#[command(name = "nc-vqvae", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Compute backend: cpu (Burn flex), wgpu or cuda; each needs its cargo feature.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Cpu)]
    pub(crate) backend: Backend,
    /// TOML file with [stage1] / [stage2] / [fcn] tables of settings (keys as in a run's config.toml).
    #[arg(long, global = true, value_name = "FILE.toml")]
    pub(crate) config: Option<PathBuf>,
    /// Override one setting, e.g. --set stage1.lr=5e-4 (repeatable; applied after --config, before explicit flags).
    #[arg(long = "set", global = true, value_name = "SECTION.KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// Progress on stderr: a bar on a terminal and plain lines (every 30 s and at each phase's end) otherwise (auto), or always one of them, or none.
    #[arg(long, global = true, value_enum, default_value_t = nc_vqvae::ProgressMode::Auto)]
    pub(crate) progress: nc_vqvae::ProgressMode,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Work with UCR datasets.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Train the stage-1 tokenizer: the baseline VQ-VAE (--ssl none) or NC-VQVAE.
    Stage1(stage1::Stage1Args),
    /// Train the MaskGIT prior (stage 2) on a finished stage-1 run.
    Stage2(stage2::Stage2Args),
    /// Draw synthetic series from a run's prior, write them as a UCR TSV file.
    Sample(sample::SampleArgs),
    /// Tokens and probe features of a file of series (TSV / CSV / .npy) with a finished stage-1 run's tokenizer.
    Encode(encode::EncodeArgs),
    /// FID, IS and CAS of a finished stage-2 run (and its probes): writes DIR/eval.json.
    Evaluate(evaluate::EvaluateArgs),
    /// The main job: baseline and NC-VQVAE stage 1, stage 2, evaluation, report.md with plots.
    Run(job::RunArgs),
    /// What a run, job or sweep folder has finished, what is running, what is left and for how long.
    Status {
        /// A run folder (stage1 --out), a job folder (run --out) or a sweep folder.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Grids of runs: expand a SPEC into point folders, run one point (a Slurm array task), collect tables.
    Sweep {
        #[command(subcommand)]
        command: sweep::SweepCommand,
    },
    /// Time training and sampling steps on the chosen backend (median milliseconds per shape).
    Bench(bench::BenchArgs),
    /// The supervised FCN classifier behind FID, IS and CAS.
    Fcn {
        #[command(subcommand)]
        command: fcn::FcnCommand,
    },
}

/// What every subcommand may read besides its own arguments: the global flags and the parsed
/// command line (to tell explicit flags from defaults).
pub(crate) struct Ctx<'a> {
    /// `--backend`.
    pub(crate) backend: Backend,
    /// `--config FILE.toml`.
    pub(crate) config_file: Option<&'a Path>,
    /// Every `--set SECTION.KEY=VALUE`, in order.
    pub(crate) sets: &'a [String],
    /// The whole parsed command line.
    pub(crate) matches: &'a ArgMatches,
}

/// Runs the parsed command.
pub(crate) fn run(cli: Cli, matches: &ArgMatches) -> Result<(), Failure> {
    cli.backend.ensure_compiled()?;
    let ctx =
        Ctx { backend: cli.backend, config_file: cli.config.as_deref(), sets: &cli.set, matches };
    match cli.command {
        Command::Data { command } => data::run(command),
        Command::Stage1(args) => stage1::run(args, &ctx),
        Command::Stage2(args) => stage2::run(args, &ctx),
        Command::Sample(args) => sample::run(args, &ctx),
        Command::Encode(args) => encode::run(args, &ctx),
        Command::Evaluate(args) => evaluate::run(args, &ctx),
        Command::Run(args) => job::run(args, &ctx),
        Command::Status { dir, json } => status(&dir, json),
        Command::Sweep { command } => sweep::run(command, &ctx),
        Command::Bench(args) => bench::run(args, &ctx),
        Command::Fcn { command } => fcn::run(command, &ctx),
    }
}

/// `nc-vqvae status DIR`.
fn status(dir: &Path, json: bool) -> Result<(), Failure> {
    let status = nc_vqvae::status::status(dir)?;
    if json {
        print_json(&status)?;
    } else {
        print!("{}", status.to_text());
    }
    Ok(())
}

/// `spec` as an absolute path if it names an existing file of one's own series (UCR names and
/// everything else unchanged).
pub(crate) fn own_file_path(spec: String) -> String {
    if !nc_vqvae::ucr_data::is_series_file(&spec) {
        return spec;
    }
    std::fs::canonicalize(&spec).map_or(spec, |p| p.display().to_string())
}

/// A command-line parser for one of the library's named choices (`SslChoice`, `Recipe`,
/// `PriorChoice`): clap lists `names` in `--help` and refuses others, the library's `FromStr`
/// builds the value.
pub(crate) fn choice<T>(names: [&'static str; 3]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name| name.parse::<T>().map_err(|e| e.to_string()))
}

/// Copies each named flag from `args` into `config` when it was given on the command line, so
/// explicit flags win over `--config` and `--set` while flag defaults do not.
macro_rules! explicit_flags {
    ($matches:expr, $config:ident, $args:ident: $($field:ident),+) => {
        $(
            if $crate::cli::explicit($matches, stringify!($field)) {
                $config.$field = $args.$field;
            }
        )+
    };
}
pub(crate) use explicit_flags;

/// Prints `value` as one JSON line on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string(value).map_err(|e| Failure::Internal(e.into()))?);
    Ok(())
}

/// Prints a command's summary: one JSON line with `--json`, else the human text.
pub(crate) fn report<T: serde::Serialize>(
    json: bool,
    summary: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    if json {
        print_json(summary)?;
    } else {
        println!("{}", text(summary));
    }
    Ok(())
}

/// Whether the flag `id` was given on the command line (not a default).
pub(crate) fn explicit(matches: Option<&ArgMatches>, id: &str) -> bool {
    matches.is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
}
