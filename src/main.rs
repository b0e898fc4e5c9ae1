//! The `nc-vqvae` command line (see docs/cli.md for the promise it keeps).
//!
//! Thin by design: parse, call the library, print. Exit codes: 0 success, 2 bad input or usage
//! (one line on stderr naming the file and problem), 1 internal failure. Panics are caught by a
//! hook and reported in one line as internal errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use nc_vqvae::backend::{Backend, BackendError, NotCompiled};
use nc_vqvae::inspect::DatasetReport;
use nc_vqvae::stage1::{Recipe, SslChoice, Stage1Config, Stage1Error, Stage1Options};

/// Keeps freed tensor buffers of 16 MiB and more for reuse instead of returning them to the
/// kernel (see `nc_vqvae::alloc`): halves the NC-VQVAE projector's cost on the CPU backend.
#[global_allocator]
static ALLOCATOR: nc_vqvae::alloc::LargeBlockCache = nc_vqvae::alloc::LargeBlockCache::new();

/// Self-supervised time-series tokenization (NC-VQVAE) and generation on Burn.
#[derive(Debug, Parser)]
#[command(name = "nc-vqvae", version, about, propagate_version = true)]
struct Cli {
    /// Compute backend: cpu (Burn flex), wgpu or cuda; each needs its cargo feature.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// TOML file with [stage1] / [stage2] / [fcn] tables of settings (keys as in a run's config.toml).
    #[arg(long, global = true, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. --set stage1.lr=5e-4 (repeatable; applied after --config, before explicit flags).
    #[arg(long = "set", global = true, value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Progress on stderr: a bar on a terminal and plain lines (every 30 s and at each phase's end) otherwise (auto), or always one of them, or none.
    #[arg(long, global = true, value_enum, default_value_t = nc_vqvae::progress::Mode::Auto)]
    progress: nc_vqvae::progress::Mode,
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
    /// Train the stage-1 tokenizer: the baseline VQ-VAE (--ssl none) or NC-VQVAE.
    Stage1(Stage1Args),
    /// Train the MaskGIT prior (stage 2) on a finished stage-1 run.
    Stage2(Stage2Args),
    /// Draw synthetic series from a run's prior, write them as a UCR TSV file.
    Sample(SampleArgs),
    /// Tokens and probe features of a file of series (TSV / CSV / .npy) with a finished stage-1 run's tokenizer.
    Encode(EncodeArgs),
    /// FID, IS and CAS of a finished stage-2 run (and its probes): writes DIR/eval.json.
    Evaluate(EvaluateArgs),
    /// The main job: baseline and NC-VQVAE stage 1, stage 2, evaluation, report.md with plots.
    Run(RunArgs),
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
        command: SweepCommand,
    },
    /// Time training and sampling steps on the chosen backend (median milliseconds per shape).
    Bench(BenchArgs),
    /// The supervised FCN classifier behind FID, IS and CAS.
    Fcn {
        #[command(subcommand)]
        command: FcnCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SweepCommand {
    /// Write one folder per grid point of SPEC (datasets × configs × seeds) into DIR; prints the count.
    Expand {
        /// The sweep spec: a [grid] table plus [run] / [stage1] / [stage2] / [fcn] settings.
        spec: PathBuf,
        /// Sweep folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run point I (a finished point is skipped, an interrupted one resumes).
    Run {
        /// Sweep folder written by `sweep expand`.
        dir: PathBuf,
        /// Point index (e.g. $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        index: usize,
        /// Print the point's results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the thesis-style tables of the finished points; writes DIR/points.csv and DIR/tables.csv.
    /// On a folder of sweeps (the thesis campaign, results/thesis-cpu): ours next to the thesis'
    /// per-seed results with a verdict per claim; writes DIR/tables.md.
    Collect {
        /// Sweep folder, or a folder of sweep folders.
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Cases to time (comma-separated). Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    cases: Vec<nc_vqvae::bench::Case>,
    /// Shapes BATCHxLENGTH (comma-separated). Default: the reference's 32x140,128x140,32x500,128x500.
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<nc_vqvae::bench::Shape>,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed steps per case and shape (the median is reported; the reference's figures are medians of 6).
    #[arg(long, default_value_t = 6)]
    steps: usize,
    /// Width of the Barlow Twins projector (thesis: 4096).
    #[arg(long, default_value_t = 4096)]
    projector_dim: usize,
    /// Print the report as one JSON object (the format of bench/pytorch_reference.py).
    #[arg(long)]
    json: bool,
    /// First check that the backend computes what the CPU computes (tiny stage-1 steps from the
    /// same weights); the result goes into the report (`agreement`), and a disagreement fails the
    /// command (exit 1) after the report is printed.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A UCR name, a path to a *_TRAIN.tsv[.gz] file or a labelled file of one's own series. Default: the bundled SyntheticControl.
    dataset: Option<String>,
    /// Job folder (created; rerunning the same command finishes an interrupted job). Default: runs/DATASET.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Epochs of stage 1 and of stage 2 (quick default: 80 and 60; thesis: 1000, see configs/thesis.toml).
    #[arg(long)]
    epochs: Option<usize>,
    /// SSL branch of the NC-VQVAE model.
    #[arg(long, value_parser = choice::<SslChoice>(SslChoice::ALL.map(SslChoice::name)))]
    ssl: Option<SslChoice>,
    /// Augmentation of the NC-VQVAE model.
    #[arg(long, value_parser = choice::<Recipe>(Recipe::ALL.map(Recipe::name)))]
    aug: Option<Recipe>,
    /// Seed of every stage.
    #[arg(long)]
    seed: Option<u64>,
    /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print summary.json on stdout when done.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct EvaluateArgs {
    /// A run folder with a finished stage 1 and stage 2.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// FCN weights (from `fcn train`); trained there with the reference recipe if the file is missing. Default: DIR/fcn.bpk.
    #[arg(long, value_name = "FILE")]
    fcn: Option<PathBuf>,
    /// Epochs if the FCN has to be trained (reference: 1000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    fcn_epochs: usize,
    /// Epochs of the CAS classifier trained on synthetic data (reference: 1000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    cas_epochs: usize,
    /// Batch size of the CAS classifier (reference: 256).
    #[arg(long, default_value_t = 256, value_name = "N")]
    cas_batch_size: usize,
    /// Seed of the sampling, the IS shuffle and the CAS classifier.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// At most N generated and N real test series for FID / IS (0: all test series, as the reference; fewer bias FID upwards).
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_fid_samples: usize,
    /// Synthetic series the CAS classifier is trained on (0: the reference's ≈ 1000).
    #[arg(long, default_value_t = 0, value_name = "N")]
    cas_samples: usize,
    /// Classifier-free guidance weight of the class-conditional samples CAS trains on (1: the plain conditional prior, as the reference).
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    guidance: f64,
    /// Print eval.json on stdout when done.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum FcnCommand {
    /// Train the FCN on a dataset (reference recipe): weights at FILE, FILE.json, FILE.metrics.jsonl.
    Train(FcnTrainArgs),
}

#[derive(Debug, clap::Args)]
struct EncodeArgs {
    /// A finished stage-1 run folder (its model.bpk and config.toml).
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// The series: a .npy 2-D float array (rows = series), or text (UCR TSV, CSV) with or without a label column.
    input: PathBuf,
    /// Output prefix: writes PREFIX.tokens.npy, PREFIX.features.npy, PREFIX.tokens.csv and PREFIX.features.csv.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct FcnTrainArgs {
    /// A UCR name or a path to a *_TRAIN.tsv[.gz] file.
    dataset: String,
    /// Output weights file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Training epochs (reference: 1000).
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    /// Batch size (reference: 256).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Seed of the initialisation and shuffling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Test accuracy every N epochs in FILE.metrics.jsonl (0: at the end only).
    #[arg(long, default_value_t = 50, value_name = "N")]
    eval_every: usize,
    /// Checkpoint every N epochs in FILE.run/; running the same command again continues from the last one.
    #[arg(long, default_value_t = 10, value_name = "N")]
    checkpoint_every: usize,
    /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print FILE.json on stdout when done.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct Stage2Args {
    /// A finished stage-1 run folder; stage 2 writes DIR/stage2/ and DIR/stage2.json.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Training epochs (thesis: 1000).
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    /// Batch size (thesis: 256).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Seed for the prior's initialisation, shuffling, token draws, masks and class dropout.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Prior variant: auto (the thesis' pairing: token for the baseline, embedding for NC-VQVAE), token or embedding.
    #[arg(long, default_value = "auto", value_parser = choice::<nc_vqvae::stage2::PriorChoice>(nc_vqvae::stage2::PriorChoice::ALL.map(nc_vqvae::stage2::PriorChoice::name)))]
    prior: nc_vqvae::stage2::PriorChoice,
    /// Reproduce the reference's quirks: inverted masking for the token prior (Q5) and loss on all positions (Q6).
    #[arg(long)]
    faithful: bool,
    /// Tokens are the nearest codewords instead of draws from softmax(-distance) (quirk Q8).
    #[arg(long)]
    argmin_tokens: bool,
    /// Test-token loss every N epochs (0: at the end only).
    #[arg(long, default_value_t = 20, value_name = "N")]
    eval_every: usize,
    /// Write a checkpoint every N epochs (and at the end).
    #[arg(long, default_value_t = 50, value_name = "N")]
    checkpoint_every: usize,
    /// Continue the stage-2 run in DIR/stage2 from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Print stage2.json on stdout when done.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SampleArgs {
    /// A run folder with a finished stage 1 and stage 2.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Number of series to draw.
    #[arg(long)]
    n: usize,
    /// Class label as written in the dataset files; omitted: unconditional (label -1 in the output).
    #[arg(long, value_name = "C", allow_hyphen_values = true, conflicts_with = "per_class")]
    class: Option<i64>,
    /// Draw N series for every class of the dataset (labelled with their class).
    #[arg(long)]
    per_class: bool,
    /// Also draw a PNG: real test series next to generated ones, one row per class.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Classifier-free guidance weight (1: the plain conditional prior, as the reference).
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    guidance: f64,
    /// Seed of the decoding.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (UCR TSV: label then values, in the data's original scale).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct Stage1Args {
    /// A UCR name (see `data inspect --help`), a path to a *_TRAIN.tsv[.gz] file, or a file of one's
    /// own series: CSV / TSV / space-separated text (gzip allowed) or a 2-D float .npy array (rows = series).
    dataset: String,
    /// Labels of one's own file: first-column (text files' default), none (unlabelled; .npy files'
    /// default) or a 1-D labels .npy for a .npy file. Without labels stage 1 trains and reports
    /// reconstruction and codebook usage; the probes need labels.
    #[arg(long, value_name = "first-column|none|FILE.npy")]
    labels: Option<String>,
    /// Test file of one's own series (same format); without it every fifth series of DATASET is held out.
    #[arg(long, value_name = "FILE")]
    test: Option<PathBuf>,
    /// Labels of the --test file, as --labels.
    #[arg(long, value_name = "first-column|none|FILE.npy")]
    test_labels: Option<String>,
    /// Run folder: config.toml, metrics.jsonl, checkpoints, model.bpk, stage1.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Self-supervised branch: none (baseline VQ-VAE), barlow-twins or vibcreg.
    #[arg(long, default_value = "none", value_parser = choice::<SslChoice>(SslChoice::ALL.map(SslChoice::name)))]
    ssl: SslChoice,
    /// Augmentation of the second view (NC-VQVAE): warp, slice or gauss.
    #[arg(long, default_value = "slice", value_parser = choice::<Recipe>(Recipe::ALL.map(Recipe::name)))]
    aug: Recipe,
    /// Training epochs (thesis: 1000).
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    /// Training batch size (thesis: 128).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Seed for initialisation, shuffling and augmentations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a checkpoint every N epochs (and at the end).
    #[arg(long, default_value_t = 10, value_name = "N")]
    checkpoint_every: usize,
    /// Run the KNN/SVM probes every N epochs (0: at the end only).
    #[arg(long, default_value_t = 0, value_name = "N")]
    probe_every: usize,
    /// Continue the run in --out from its last checkpoint (with the run's own config.toml).
    #[arg(long)]
    resume: bool,
    /// Reproduce the reference's quirks: probes in training mode, updating BatchNorm statistics and the
    /// EMA codebook on train and test series (Q2), and augmented views with their last L mod 8 samples zeroed (Q3).
    #[arg(long)]
    faithful: bool,
    /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print stage1.json on stdout when done.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Load, validate and describe a dataset (counts, lengths, classes, NaN cells).
    Inspect {
        /// A UCR name (looked up in --data-dir, then $NC_VQVAE_DATA, then the bundled data), a
        /// path to a *_TRAIN.tsv[.gz] / *_TEST.tsv[.gz] file, or a file of one's own series (text
        /// with a label column first, or a .npy array; every fifth series is shown as the test split).
        dataset: String,
        /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print JSON: {"name", "train": {"n", "length_min", "length_max", "classes", "nan_values"}, "test": {…}}.
        #[arg(long)]
        json: bool,
    },
}

/// `spec` as an absolute path if it names an existing file of one's own series (UCR names and
/// everything else unchanged).
fn own_file_path(spec: String) -> String {
    if !nc_vqvae::ucr_data::is_series_file(&spec) {
        return spec;
    }
    std::fs::canonicalize(&spec).map_or(spec, |p| p.display().to_string())
}

/// A command-line parser for one of the library's named choices (`SslChoice`, `Recipe`,
/// `PriorChoice`): clap lists `names` in `--help` and refuses others, the library's `FromStr`
/// builds the value.
fn choice<T>(names: [&'static str; 3]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name| name.parse::<T>().map_err(|e| e.to_string()))
}

/// Whether a failure is a full disk: an I/O error of that kind anywhere in its chain, or ENOSPC's
/// text (Burn's record errors carry the I/O error only as text).
fn disk_full(e: &anyhow::Error) -> bool {
    let kind = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
    });
    kind || e.to_string().contains("No space left on device")
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

impl From<nc_vqvae::stage1::RunError> for Failure {
    fn from(e: nc_vqvae::stage1::RunError) -> Self {
        if e.is_input_error() { Failure::Input(e.into()) } else { Failure::Internal(e.into()) }
    }
}

impl From<Stage1Error> for Failure {
    fn from(e: Stage1Error) -> Self {
        if e.is_input_error() { Failure::Input(e.into()) } else { Failure::Internal(e.into()) }
    }
}

impl From<nc_vqvae::config::ConfigError> for Failure {
    fn from(e: nc_vqvae::config::ConfigError) -> Self {
        Failure::Input(e.into())
    }
}

/// Copies each named flag from `args` into `config` when it was given on the command line, so
/// explicit flags win over `--config` and `--set` while flag defaults do not.
macro_rules! explicit_flags {
    ($matches:expr, $config:ident, $args:ident: $($field:ident),+) => {
        $(
            if explicit($matches, stringify!($field)) {
                $config.$field = $args.$field;
            }
        )+
    };
}

/// `bench --check`: the agreement of `device` with the CPU backend, printed as one line on stderr.
fn check_backend(
    backend: Backend,
    device: &burn::tensor::Device,
) -> Result<nc_vqvae::bench::Agreement, nc_vqvae::bench::BenchError> {
    #[cfg(feature = "cpu")]
    {
        let a = nc_vqvae::bench::agreement(backend.name(), device)?;
        eprintln!(
            "check: {} vs cpu: largest loss difference {:.2e}, gradient difference {:.2e}: {}",
            a.backend,
            a.max_loss_difference,
            a.max_gradient_difference,
            if a.agrees { "agrees" } else { "DISAGREES" }
        );
        Ok(a)
    }
    #[cfg(not(feature = "cpu"))]
    {
        let _ = (backend, device);
        Err(nc_vqvae::bench::BenchError::Config(
            "--check compares with the CPU backend: build with the `cpu` feature".into(),
        ))
    }
}

/// Prints a command's summary: one JSON line with `--json`, else the human text.
fn report<T: serde::Serialize>(
    json: bool,
    summary: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    if json {
        println!("{}", serde_json::to_string(summary).map_err(|e| Failure::Internal(e.into()))?);
    } else {
        println!("{}", text(summary));
    }
    Ok(())
}

/// The thesis' FID / IS / CAS for the dataset and model of the stage-1 run `run`, as one line, if
/// the thesis reports them.
fn thesis_generation_line(run: &std::path::Path) -> Option<String> {
    let s1: nc_vqvae::stage1::Stage1Summary =
        nc_vqvae::run_dir::read_json(&run.join("stage1.json")).ok()?;
    let t = nc_vqvae::thesis::generation(&s1.dataset, s1.ssl, s1.aug)?;
    Some(format!(
        "thesis, {} {}: FID {:.2}, IS {:.2}, CAS {:.3} (running) (1000 epochs per stage, mean of 4 seeds, the reference's own pretrained FCN: FID and IS are comparable only roughly)",
        s1.dataset,
        match s1.aug {
            Some(aug) => format!("{:?} + {:?}", s1.ssl, aug),
            None => "baseline".into(),
        },
        t.fid,
        t.is,
        t.cas
    ))
}

/// Whether the flag `id` was given on the command line (not a default).
fn explicit(matches: Option<&ArgMatches>, id: &str) -> bool {
    matches.is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
}

impl From<NotCompiled> for Failure {
    fn from(e: NotCompiled) -> Self {
        Failure::Input(e.into())
    }
}

/// A backend that is not compiled in, or that this machine cannot run, is a usage error (exit 2).
impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Failure::Input(e.into())
    }
}

fn run(cli: Cli, matches: &ArgMatches) -> Result<(), Failure> {
    use nc_vqvae::config::layer;
    let config_file = cli.config.clone();
    let sets = cli.set.clone();
    cli.backend.ensure_compiled()?;
    match cli.command {
        Command::Data { command: DataCommand::Inspect { dataset, data_dir, json } } => {
            // A UCR dataset, or a file of one's own series with its type's default labels.
            let mut spec = nc_vqvae::config::OnDataset::on(&dataset, ());
            spec.data_dir = data_dir;
            let data = spec.load_data()?;
            let report = DatasetReport::new(&data);
            if json {
                let text =
                    serde_json::to_string(&report).map_err(|e| Failure::Internal(e.into()))?;
                println!("{text}");
            } else {
                print!("{}", report.to_text(&data));
            }
        }
        Command::Stage2(args) => {
            let m = matches.subcommand_matches("stage2");
            let mut config = layer(
                &nc_vqvae::stage2::Stage2Config::default(),
                "stage2",
                config_file.as_deref(),
                &sets,
            )?;
            explicit_flags!(m, config, args: epochs, batch_size, seed, prior, eval_every, checkpoint_every);
            if args.argmin_tokens {
                config.stochastic_tokens = false;
            }
            if args.faithful {
                config.inverted_masking = true;
                config.loss_on_all_positions = true;
            }
            let device = cli.backend.device()?;
            let options = nc_vqvae::stage2::Stage2Options { resume: args.resume, progress: true };
            let summary = nc_vqvae::stage2::train(&config, &args.run, &device, &options)?;
            report(args.json, &summary, |s| {
                format!(
                    "prior ({}, {} tokens): test masked-token loss {:.4} nats (uniform: {:.4}), all positions {:.4}, {} epochs in {:.0}s -> {}",
                    s.variant,
                    s.n_tokens,
                    s.loss,
                    s.uniform_loss,
                    s.loss_all_positions,
                    s.epochs,
                    s.wall_seconds,
                    args.run.join("stage2.json").display()
                )
            })?;
        }
        Command::Run(args) => {
            use nc_vqvae::pipeline::{DEFAULT_DATASET, JobConfig};
            let dataset = args.dataset.clone().unwrap_or_else(|| DEFAULT_DATASET.to_string());
            let base = JobConfig::quick(&dataset);
            let mut job = JobConfig::layered(&base, config_file.as_deref(), &sets)?
                .with_dataset(&dataset, args.data_dir.clone());
            if let Some(epochs) = args.epochs {
                job.stage1.epochs = epochs;
                job.stage2.epochs = epochs;
            }
            if let Some(seed) = args.seed {
                job = job.with_seed(seed);
            }
            job.run.ssl = args.ssl.unwrap_or(job.run.ssl);
            job.run.aug = args.aug.unwrap_or(job.run.aug);
            let name = std::path::Path::new(&dataset)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("run")
                .replace("_TRAIN.tsv.gz", "")
                .replace("_TRAIN.tsv", "");
            let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name));
            let device = cli.backend.device()?;
            let (summary, base, nc) = nc_vqvae::report::job(&job, &out, &device, true)?;
            report(args.json, &summary, |s| {
                format!(
                    "{}: SVM probe {:.3} -> {:.3}, KNN probe {:.3} -> {:.3}, recon MSE {:.3} -> {:.3}, FID {:.2} -> {:.2}, CAS {:.3} -> {:.3} (baseline -> NC-VQVAE) in {:.0}s\nreport: {}",
                    s.dataset,
                    base.stage1.probe_svm_acc,
                    nc.stage1.probe_svm_acc,
                    base.stage1.probe_knn_acc,
                    nc.stage1.probe_knn_acc,
                    base.stage1.recon_mse_time,
                    nc.stage1.recon_mse_time,
                    base.eval.fid,
                    nc.eval.fid,
                    base.eval.cas_final_acc,
                    nc.eval.cas_final_acc,
                    s.wall_seconds,
                    out.join("report.md").display()
                )
            })?;
        }
        Command::Status { dir, json } => {
            let status = nc_vqvae::status::status(&dir)?;
            if json {
                let text =
                    serde_json::to_string(&status).map_err(|e| Failure::Internal(e.into()))?;
                println!("{text}");
            } else {
                print!("{}", status.to_text());
            }
        }
        Command::Sweep { command } => match command {
            SweepCommand::Expand { spec, out } => {
                let n = nc_vqvae::sweep::expand(&spec, &out)?;
                println!(
                    "{n} points in {} (indices 0..{}; Slurm: --array=0-{})",
                    out.display(),
                    n - 1,
                    n - 1
                );
            }
            SweepCommand::Run { dir, index, json } => {
                let device = cli.backend.device()?;
                let r = nc_vqvae::sweep::run(&dir, index, true, &device)?;
                let flat = r.flat();
                report(json, &flat, |_| {
                    format!(
                        "point {index}: {} {:?}/{:?} seed {}: SVM {:.3} KNN {:.3} recon {:.4}, prior loss {:.3}, FID {:.3} IS {:.3} CAS {:.3}",
                        r.stage1.dataset,
                        r.stage1.ssl,
                        r.stage1.aug,
                        r.stage1.seed,
                        r.stage1.probe_svm_acc,
                        r.stage1.probe_knn_acc,
                        r.stage1.recon_mse_time,
                        r.stage2.loss,
                        r.eval.fid,
                        r.eval.is_mean,
                        r.eval.cas_final_acc
                    )
                })?;
            }
            SweepCommand::Collect { dir }
                if !dir.join("sweep.toml").exists()
                    && !nc_vqvae::campaign::blocks(&dir).is_empty() =>
            {
                let c = nc_vqvae::campaign::collect(&dir)?;
                print!("{}", c.markdown);
                nc_vqvae::run_dir::write_atomic(&dir.join("tables.md"), c.markdown.as_bytes())
                    .map_err(|e| Failure::Internal(e.into()))?;
                eprintln!(
                    "{} of {} campaign points finished -> {}",
                    c.finished,
                    c.total,
                    dir.join("tables.md").display()
                );
            }
            SweepCommand::Collect { dir } => {
                let c = nc_vqvae::sweep::collect(&dir)?;
                print!("{}", c.markdown);
                eprintln!(
                    "{} of {} points finished -> {}, {}",
                    c.finished,
                    c.total,
                    dir.join("points.csv").display(),
                    dir.join("tables.csv").display()
                );
            }
        },
        Command::Bench(args) => {
            use nc_vqvae::bench::{BenchOptions, Case, THESIS_SHAPES};
            let options = BenchOptions {
                cases: if args.cases.is_empty() { Case::ALL.to_vec() } else { args.cases },
                shapes: if args.shapes.is_empty() { THESIS_SHAPES.to_vec() } else { args.shapes },
                warmup: args.warmup,
                steps: args.steps,
                projector_dim: args.projector_dim,
                release_memory: Some(|| {
                    ALLOCATOR.release();
                    nc_vqvae::alloc::trim_system_allocator();
                }),
                ..BenchOptions::default()
            };
            let device = cli.backend.device()?;
            let failure = |e: nc_vqvae::bench::BenchError| match e {
                nc_vqvae::bench::BenchError::Config(_) | nc_vqvae::bench::BenchError::Model(_) => {
                    Failure::Input(e.into())
                }
                _ => Failure::Internal(e.into()),
            };
            let agreement = if args.check {
                Some(check_backend(cli.backend, &device).map_err(failure)?)
            } else {
                None
            };
            let mut report = nc_vqvae::bench::run(&options, cli.backend.name(), &device, |t| {
                eprintln!(
                    "{:<16} {:>4} x {:<5} median {:>9.1} ms",
                    t.case, t.batch, t.length, t.median_ms
                );
            })
            .map_err(failure)?;
            report.agreement = agreement;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).map_err(|e| Failure::Internal(e.into()))?
                );
            } else {
                print!("{}", nc_vqvae::bench::table(&report));
            }
            if let Some(a) = report.agreement.as_ref().filter(|a| !a.agrees) {
                return Err(Failure::Internal(anyhow::anyhow!(
                    "the {} backend disagrees with the CPU: largest loss difference {:.2e} (tolerance {:.0e}), gradient difference {:.2e} (tolerance {:.0e})",
                    a.backend,
                    a.max_loss_difference,
                    nc_vqvae::bench::LOSS_TOLERANCE,
                    a.max_gradient_difference,
                    nc_vqvae::bench::GRADIENT_TOLERANCE
                )));
            }
        }
        Command::Evaluate(args) => {
            nc_vqvae::pipeline::check_guidance("--guidance", args.guidance)
                .map_err(|m| Failure::Input(anyhow::anyhow!(m)))?;
            let device = cli.backend.device()?;
            let opts = nc_vqvae::evaluate::EvaluateOptions {
                fcn: args.fcn,
                fcn_epochs: args.fcn_epochs,
                progress: true,
                scores: nc_vqvae::train::scores::ScoreConfig {
                    cas_epochs: args.cas_epochs,
                    cas_batch_size: args.cas_batch_size,
                    seed: args.seed,
                    max_fid_samples: args.max_fid_samples,
                    cas_samples: args.cas_samples,
                    guidance: args.guidance,
                    work_dir: None,
                },
            };
            let summary = nc_vqvae::evaluate::evaluate(&args.run, &opts, &device)?;
            report(args.json, &summary, |s| {
                format!(
                    "FID {:.3}, IS {:.3} ± {:.3}, CAS {:.3} (running, as the reference) / {:.3} (final test accuracy), probes KNN {:.3} SVM {:.3}; FCN test accuracy {:.3} -> {}",
                    s.fid,
                    s.is_mean,
                    s.is_std,
                    s.cas,
                    s.cas_final_acc,
                    s.probe_knn_acc,
                    s.probe_svm_acc,
                    s.fcn_test_acc,
                    args.run.join("eval.json").display()
                )
            })?;
            if !args.json
                && let Some(line) = thesis_generation_line(&args.run)
            {
                println!("{line}");
            }
        }
        Command::Fcn { command: FcnCommand::Train(args) } => {
            let m = matches.subcommand_matches("fcn").and_then(|m| m.subcommand_matches("train"));
            let mut config = layer(
                &nc_vqvae::fcn::FcnTrainConfig::new(&args.dataset),
                "fcn",
                config_file.as_deref(),
                &sets,
            )?;
            config.dataset = args.dataset;
            if args.data_dir.is_some() {
                config.data_dir = args.data_dir;
            }
            explicit_flags!(m, config, args: epochs, batch_size, seed, eval_every, checkpoint_every);
            let device = cli.backend.device()?;
            let summary = nc_vqvae::fcn::train(&config, &args.out, &device, true)?;
            report(args.json, &summary, |s| {
                format!(
                    "FCN on {}: test accuracy {:.4} after {} epochs in {:.0}s -> {}",
                    s.dataset,
                    s.test_acc,
                    s.epochs,
                    s.wall_seconds,
                    args.out.display()
                )
            })?;
        }
        Command::Encode(args) => {
            let device = cli.backend.device()?;
            let summary = nc_vqvae::encode::encode(&args.run, &args.input, &args.out, &device)?;
            report(args.json, &summary, |s| {
                let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
                format!(
                    "{} series of length {}: tokens {:?}, features {:?} -> {}",
                    s.n,
                    s.length,
                    s.tokens_shape,
                    s.features_shape,
                    files.join(", ")
                )
            })?;
        }
        Command::Sample(args) => {
            if args.n == 0 {
                return Err(Failure::Input(anyhow::anyhow!("--n must be at least 1")));
            }
            nc_vqvae::pipeline::check_guidance("--guidance", args.guidance)
                .map_err(|m| Failure::Input(anyhow::anyhow!(m)))?;
            let device = cli.backend.device()?;
            let generator = nc_vqvae::stage2::Generator::load(&args.run, &device)?;
            let groups: Vec<(i64, Option<usize>)> = if args.per_class {
                generator
                    .data
                    .classes
                    .iter()
                    .enumerate()
                    .map(|(i, &label)| (label, Some(i)))
                    .collect()
            } else if let Some(label) = args.class {
                let index = generator.class_index(label).ok_or_else(|| {
                    Failure::Input(anyhow::anyhow!(
                        "--class {label}: {} has the labels {:?}",
                        generator.data.name,
                        generator.data.classes
                    ))
                })?;
                vec![(label, Some(index))]
            } else {
                vec![(-1, None)]
            };
            let labels: Vec<i64> =
                groups.iter().flat_map(|&(label, _)| std::iter::repeat_n(label, args.n)).collect();
            let classes: Option<Vec<usize>> = groups
                .iter()
                .map(|&(_, c)| c.map(|c| std::iter::repeat_n(c, args.n)))
                .collect::<Option<Vec<_>>>()
                .map(|v| v.into_iter().flatten().collect());
            let sampler = nc_vqvae::maskgit::SamplerConfig::new().with_guidance(args.guidance);
            let series = generator.generate(
                labels.len(),
                classes.as_deref(),
                &sampler,
                args.seed,
                true,
                &device,
            )?;
            nc_vqvae::stage2::write_tsv(&args.out, &labels, &series)?;
            if let Some(plot) = &args.plot {
                let panels = generator.comparison_panels(&groups, &labels, &series, 10);
                let title = format!("{}: real test series vs generated", generator.data.name);
                nc_vqvae::plot::panel_grid(plot, &title, 2, &panels)
                    .map_err(|e| Failure::Internal(e.into()))?;
            }
            println!(
                "{} series of length {} -> {}",
                series.len(),
                series.first().map_or(0, Vec::len),
                args.out.display()
            );
        }
        Command::Stage1(args) => {
            let m = matches.subcommand_matches("stage1");
            let mut config =
                layer(&Stage1Config::new(&args.dataset), "stage1", config_file.as_deref(), &sets)?;
            config.dataset = own_file_path(args.dataset);
            if args.data_dir.is_some() {
                config.data_dir = args.data_dir;
            }
            for (given, field) in
                [(args.labels, &mut config.labels), (args.test_labels, &mut config.test_labels)]
            {
                if given.is_some() {
                    *field = given;
                }
            }
            if args.test.is_some() {
                config.test = args.test;
            }
            // Own files are recorded by absolute path, so the run loads them from any directory.
            config.test =
                config.test.map(|t| PathBuf::from(own_file_path(t.display().to_string())));
            for labels in [&mut config.labels, &mut config.test_labels] {
                *labels = labels.take().map(|l| match nc_vqvae::ucr_data::Labels::parse(&l) {
                    nc_vqvae::ucr_data::Labels::File(file) => {
                        own_file_path(file.display().to_string())
                    }
                    keyword => keyword.spec(),
                });
            }
            explicit_flags!(m, config, args: ssl, aug, epochs, batch_size, seed, checkpoint_every, probe_every);
            if args.faithful {
                config.faithful_probes = true;
                config.faithful_aug_zeros = true;
            }
            let device = cli.backend.device()?;
            let options = Stage1Options { resume: args.resume, progress: true };
            let summary = nc_vqvae::stage1::train(&config, &args.out, &device, &options)?;
            report(args.json, &summary, |s| {
                let probes = if s.probe_knn_acc.is_nan() {
                    "no probes (they need labels)".to_string()
                } else {
                    format!("probes KNN {:.3} SVM {:.3}", s.probe_knn_acc, s.probe_svm_acc)
                };
                format!(
                    "{} ({:?}): test recon MSE {:.4} (time) {:.4} (time-freq), {probes}, perplexity {:.1}, {} epochs in {:.0}s -> {}",
                    s.dataset,
                    s.ssl,
                    s.recon_mse_time,
                    s.recon_mse_timefreq,
                    s.codebook_perplexity,
                    s.epochs,
                    s.wall_seconds,
                    args.out.join("stage1.json").display()
                )
            })?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    nc_vqvae::alloc::tune_system_allocator();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place =
            info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("internal error: {}{place} (please report this)", message.replace('\n', " "));
    }));
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    nc_vqvae::progress::set_mode(cli.progress);
    // On a worker of the CPU backend's thread pool: its parallel kernels then split their work in
    // place instead of waking the pool and sleeping at every op (kernels::on_pool).
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kernels::on_pool(|| run(cli, &matches))
    })) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failure::Input(e))) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(2)
        }
        Ok(Err(Failure::Internal(e))) if disk_full(&e) => {
            eprintln!(
                "error: out of disk space: {}; every file written before is intact (the run's last complete checkpoint is kept): free space and run the same command again to continue (stage1 / stage2: add --resume)",
                e.to_string().replace('\n', " ")
            );
            ExitCode::from(1)
        }
        Ok(Err(Failure::Internal(e))) => {
            eprintln!("internal error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}
