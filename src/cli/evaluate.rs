//! `nc-vqvae evaluate`: FID, IS and CAS of a finished run.

use std::path::PathBuf;

use super::{Ctx, Failure, report};

#[derive(Debug, clap::Args)]
pub(crate) struct EvaluateArgs {
    /// A run folder with a finished stage 1 and stage 2.
    #[arg(long, value_name = "DIR")]
    pub(crate) run: PathBuf,
    /// FCN weights (from `fcn train`); trained there with the reference recipe if the file is missing. Default: DIR/fcn.bpk.
    #[arg(long, value_name = "FILE")]
    pub(crate) fcn: Option<PathBuf>,
    /// Epochs if the FCN has to be trained (reference: 1000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub(crate) fcn_epochs: usize,
    /// Epochs of the CAS classifier trained on synthetic data (reference: 1000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub(crate) cas_epochs: usize,
    /// Batch size of the CAS classifier (reference: 256).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub(crate) cas_batch_size: usize,
    /// Seed of the sampling, the IS shuffle and the CAS classifier.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// At most N generated and N real test series for FID / IS (0: all test series, as the reference; fewer bias FID upwards).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) max_fid_samples: usize,
    /// Synthetic series the CAS classifier is trained on (0: the reference's ≈ 1000).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) cas_samples: usize,
    /// Classifier-free guidance weight of the class-conditional samples CAS trains on (1: the plain conditional prior, as the reference).
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub(crate) guidance: f64,
    /// Print eval.json on stdout when done.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `evaluate`.
pub(crate) fn run(args: EvaluateArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    nc_vqvae::pipeline::check_guidance("--guidance", args.guidance)
        .map_err(|m| Failure::Input(anyhow::anyhow!(m)))?;
    let device = ctx.backend.device()?;
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
    Ok(())
}

/// The thesis' FID / IS / CAS for the dataset and model of the stage-1 run `run`, as one line, if
/// the thesis reports them.
fn thesis_generation_line(run: &std::path::Path) -> Option<String> {
    let s1: nc_vqvae::stage1::Stage1Summary =
        nc_vqvae::train::run_dir::read_json(&run.join("stage1.json")).ok()?;
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
