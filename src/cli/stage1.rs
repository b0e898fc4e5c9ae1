//! `nc-vqvae stage1`: the tokenizer trained in a run folder.

use std::path::PathBuf;

use nc_vqvae::config::layer;
use nc_vqvae::stage1::{Recipe, SslChoice, Stage1Options, Stage1Run};

use super::{Ctx, Failure, choice, explicit_flags, own_file_path, report};

#[derive(Debug, clap::Args)]
pub(crate) struct Stage1Args {
    /// A UCR name (see `data inspect --help`), a path to a *_TRAIN.tsv[.gz] file, or a file of one's
    /// own series: CSV / TSV / space-separated text (gzip allowed) or a 2-D float .npy array (rows = series).
    pub(crate) dataset: String,
    /// Labels of one's own file: first-column (text files' default), none (unlabelled; .npy files'
    /// default) or a 1-D labels .npy for a .npy file. Without labels stage 1 trains and reports
    /// reconstruction and codebook usage; the probes need labels.
    #[arg(long, value_name = "first-column|none|FILE.npy")]
    pub(crate) labels: Option<String>,
    /// Test file of one's own series (same format); without it every fifth series of DATASET is held out.
    #[arg(long, value_name = "FILE")]
    pub(crate) test: Option<PathBuf>,
    /// Labels of the --test file, as --labels.
    #[arg(long, value_name = "first-column|none|FILE.npy")]
    pub(crate) test_labels: Option<String>,
    /// Run folder: config.toml, metrics.jsonl, checkpoints, model.bpk, stage1.json.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Self-supervised branch: none (baseline VQ-VAE), barlow-twins or vibcreg.
    #[arg(long, default_value = "none", value_parser = choice::<SslChoice>(SslChoice::ALL.map(SslChoice::name)))]
    pub(crate) ssl: SslChoice,
    /// Augmentation of the second view (NC-VQVAE): warp, slice or gauss.
    #[arg(long, default_value = "slice", value_parser = choice::<Recipe>(Recipe::ALL.map(Recipe::name)))]
    pub(crate) aug: Recipe,
    /// Training epochs (thesis: 1000).
    #[arg(long, default_value_t = 1000)]
    pub(crate) epochs: usize,
    /// Training batch size (thesis: 128).
    #[arg(long, default_value_t = 128)]
    pub(crate) batch_size: usize,
    /// Seed for initialisation, shuffling and augmentations.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Write a checkpoint every N epochs (and at the end).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) checkpoint_every: usize,
    /// Run the KNN/SVM probes every N epochs (0: at the end only).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) probe_every: usize,
    /// Continue the run in --out from its last checkpoint (with the run's own config.toml).
    #[arg(long)]
    pub(crate) resume: bool,
    /// Reproduce the reference's quirks: probes in training mode, updating BatchNorm statistics and the
    /// EMA codebook on train and test series (Q2), and augmented views with their last L mod 8 samples zeroed (Q3).
    #[arg(long)]
    pub(crate) faithful: bool,
    /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print stage1.json on stdout when done.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `stage1`.
pub(crate) fn run(args: Stage1Args, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let m = ctx.matches.subcommand_matches("stage1");
    let mut config = layer(&Stage1Run::new(&args.dataset), "stage1", ctx.config_file, ctx.sets)?;
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
    config.test = config.test.map(|t| PathBuf::from(own_file_path(t.display().to_string())));
    for labels in [&mut config.labels, &mut config.test_labels] {
        *labels = labels.take().map(|l| match nc_vqvae::ucr_data::Labels::parse(&l) {
            nc_vqvae::ucr_data::Labels::File(file) => own_file_path(file.display().to_string()),
            keyword => keyword.spec(),
        });
    }
    explicit_flags!(m, config, args: ssl, aug, epochs, batch_size, seed, checkpoint_every, probe_every);
    if args.faithful {
        config.faithful_probes = true;
        config.faithful_aug_zeros = true;
    }
    let device = ctx.backend.device()?;
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
    Ok(())
}
