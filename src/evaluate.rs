//! `nc-vqvae evaluate`: FID, IS and CAS of a finished stage-2 run (docs/reference.md §10.3–§10.5),
//! judged by a supervised FCN trained on the run's dataset.
//!
//! - The FCN is read from `--fcn FILE` if that file exists; otherwise it is trained there with the
//!   reference recipe and reused by every later evaluation (default `DIR/fcn.bpk`).
//! - The scores themselves are [`train::scores::generative_scores`]: FID against `N_test`
//!   unconditional samples, IS on them, and CAS (class-conditional samples in proportion to the
//!   train-set class counts, ≈ 1000 when the train split is smaller, a fresh FCN trained on them).
//!   `cas` is the reference's running accuracy (quirk Q21); `cas_final_acc` is the plain final
//!   test accuracy. They go to `DIR/eval.json` with the tokenizer's probes and the FCN's accuracy.
//! - While it runs, `DIR/eval.run/` keeps the drawn samples and the CAS classifier's checkpoints:
//!   an interrupted evaluation with the same settings continues from there (other settings start
//!   it over). At the end the classifier's epoch lines are kept as `DIR/eval.cas.metrics.jsonl`
//!   and the folder is removed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use train::scores::{ScoreConfig, generative_scores};

use crate::RunError;
use crate::fcn::{accuracy, ensure_trained, load, require_labels};
use crate::progress::Bar;
use crate::stage1::Stage1Summary;
use crate::stage2::Generator;
use train::run_dir::{RunDirError, read_json, write_atomic, write_json};

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The FCN weights (trained there if missing). Default: `DIR/fcn.bpk`.
    pub fcn: Option<PathBuf>,
    /// Epochs when the FCN has to be trained (seeded with `scores.seed`). Reference: 1000.
    pub fcn_epochs: usize,
    /// Show progress bars.
    pub progress: bool,
    /// The scores' settings: CAS epochs, seed, sample counts.
    pub scores: ScoreConfig,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        Self { fcn: None, fcn_epochs: 1000, progress: false, scores: ScoreConfig::default() }
    }
}

/// `DIR/eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// Fréchet distance between FCN features of real test and generated series.
    pub fid: f64,
    /// Inception score (mean over 10 splits).
    pub is_mean: f64,
    /// Its population standard deviation over the splits.
    pub is_std: f64,
    /// CAS as the reference reports it: the running accuracy over test batches (quirk Q21).
    pub cas: f64,
    /// CAS as the final full-test-set accuracy of the classifier trained on synthetic data.
    pub cas_final_acc: f64,
    /// KNN probe accuracy of the tokenizer (from `stage1.json`).
    pub probe_knn_acc: f64,
    /// SVM probe accuracy of the tokenizer (from `stage1.json`).
    pub probe_svm_acc: f64,
    /// Test accuracy of the FCN used for FID / IS.
    pub fcn_test_acc: f64,
    /// The FCN file used.
    pub fcn: PathBuf,
    /// Unconditional samples used for FID / IS.
    pub n_generated: usize,
    /// Class-conditional samples the CAS classifier was trained on.
    pub n_cas_samples: usize,
    /// Epochs of the CAS classifier.
    pub cas_epochs: usize,
    /// Its batch size.
    #[serde(default = "crate::pipeline::reference_cas_batch_size")]
    pub cas_batch_size: usize,
    /// Classifier-free guidance weight of the CAS samples (1: the reference's plain conditional
    /// prior; also the value of files written before the key existed).
    #[serde(default = "crate::pipeline::reference_guidance")]
    pub guidance: f64,
    /// Wall time, seconds.
    pub wall_seconds: f64,
}

/// Evaluates the finished run `run` and writes `run/eval.json`.
pub fn evaluate(
    run: &Path,
    opts: &EvaluateOptions,
    device: &Device,
) -> Result<EvalSummary, RunError> {
    let start = Instant::now();
    let generator = Generator::load(run, device)?;
    let stage1: Stage1Summary = read_json(&run.join("stage1.json"))?;
    let data = &generator.data;
    let k = data.num_classes();
    require_labels(data, &run.display().to_string())?;

    let fcn_path = opts.fcn.clone().unwrap_or_else(|| run.join("fcn.bpk"));
    let mut config = generator.stage1.same_data(train::fcn::FcnTrainConfig::default());
    config.epochs = opts.fcn_epochs;
    config.seed = opts.scores.seed;
    ensure_trained(&config, Some(data), &fcn_path, device, opts.progress)?;
    let fcn = load(&fcn_path, k, device)?;
    let fcn_test_acc = accuracy(&fcn, &data.test, device)?;

    // The work folder that makes the scores resumable, kept while the settings are the same.
    let work = run.join("eval.run");
    let settings = serde_json::json!({
        "cas_epochs": opts.scores.cas_epochs,
        "cas_batch_size": opts.scores.cas_batch_size,
        "seed": opts.scores.seed,
        "max_fid_samples": opts.scores.max_fid_samples,
        "cas_samples": opts.scores.cas_samples,
        "guidance": opts.scores.guidance,
        "fcn": fcn_path,
        "fcn_test_acc": fcn_test_acc,
    });
    let settings_path = work.join("settings.json");
    if work.exists()
        && read_json::<serde_json::Value>(&settings_path).ok().as_ref() != Some(&settings)
    {
        std::fs::remove_dir_all(&work).map_err(RunDirError::io(&work))?;
    }
    if !settings_path.exists() {
        std::fs::create_dir_all(&work).map_err(RunDirError::io(&work))?;
        write_json(&settings_path, &settings)?;
    } else if opts.progress {
        eprintln!("continuing the interrupted evaluation in {}", work.display());
    }
    let mut score_config = opts.scores.clone();
    score_config.work_dir = Some(work.clone());
    let scores = generative_scores(
        generator.tokenizer(),
        generator.prior(),
        &fcn,
        data,
        &score_config,
        device,
        &mut Bar::phase(opts.progress, "evaluation"),
    )?;

    let summary = EvalSummary {
        fid: scores.fid,
        is_mean: scores.is_mean,
        is_std: scores.is_std,
        cas: scores.cas,
        cas_final_acc: scores.cas_final_acc,
        probe_knn_acc: stage1.probe_knn_acc,
        probe_svm_acc: stage1.probe_svm_acc,
        fcn_test_acc,
        fcn: fcn_path,
        n_generated: scores.n_generated,
        n_cas_samples: scores.n_cas_samples,
        cas_epochs: opts.scores.cas_epochs,
        cas_batch_size: opts.scores.cas_batch_size,
        guidance: opts.scores.guidance,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&run.join("eval.json"), &summary)?;
    // The CAS classifier's epoch lines stay beside eval.json; samples and checkpoints go.
    let cas_log = work.join("cas").join("metrics.jsonl");
    if let Ok(text) = std::fs::read(&cas_log) {
        write_atomic(&run.join("eval.cas.metrics.jsonl"), &text)?;
    }
    std::fs::remove_dir_all(&work).map_err(RunDirError::io(&work))?;
    Ok(summary)
}
