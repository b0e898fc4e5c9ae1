//! `nc-vqvae run`: the main job (both models, both stages, evaluation, report).

use std::path::PathBuf;

use nc_vqvae::stage1::{Recipe, SslChoice};

use super::{Ctx, Failure, choice, report};

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// A UCR name, a path to a *_TRAIN.tsv[.gz] file or a labelled file of one's own series. Default: the bundled SyntheticControl.
    pub(crate) dataset: Option<String>,
    /// Job folder (created; rerunning the same command finishes an interrupted job). Default: runs/DATASET.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Epochs of stage 1 and of stage 2 (quick default: 80 and 60; thesis: 1000, see configs/thesis.toml).
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// SSL branch of the NC-VQVAE model.
    #[arg(long, value_parser = choice::<SslChoice>(SslChoice::ALL.map(SslChoice::name)))]
    pub(crate) ssl: Option<SslChoice>,
    /// Augmentation of the NC-VQVAE model.
    #[arg(long, value_parser = choice::<Recipe>(Recipe::ALL.map(Recipe::name)))]
    pub(crate) aug: Option<Recipe>,
    /// Seed of every stage.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print summary.json on stdout when done.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs the main job.
pub(crate) fn run(args: RunArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    use nc_vqvae::pipeline::{DEFAULT_DATASET, JobConfig};
    let dataset = args.dataset.clone().unwrap_or_else(|| DEFAULT_DATASET.to_string());
    let base = JobConfig::quick(&dataset);
    let mut job = JobConfig::layered(&base, ctx.config_file, ctx.sets)?
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
    let device = ctx.backend.device()?;
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
    Ok(())
}
