//! `nc-vqvae run`: the main job. The baseline VQ-VAE and NC-VQVAE are trained on the same data
//! (stage 1), each gets its MaskGIT prior (stage 2) and is evaluated (probes, FID, IS, CAS) with
//! one shared FCN, and a report with plots compares the two.
//!
//! Layout of `--out DIR`:
//! - `config.toml`: the resolved job config (`[run]`, `[stage1]`, `[stage2]`, `[fcn]`),
//! - `baseline/` and `nc_vqvae/`: complete stage-1 run folders, each with `stage2/`,
//!   `stage2.json` and `eval.json`,
//! - `fcn.bpk` (+ `.json`, `.metrics.jsonl`): the FCN behind FID / IS,
//! - `summary.json`, `report.md`, `plots/*.png`.
//!
//! Every step is idempotent: a finished step (its summary file exists) is skipped, an interrupted
//! training resumes from its last checkpoint. Running the same command again therefore finishes
//! an interrupted job; a folder holding a job with a different config is refused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::RunError;
use crate::config::{ConfigError, layer};
use crate::evaluate::{EvalSummary, EvaluateOptions};
use crate::fcn::FcnTrainConfig;
use crate::stage1::{Recipe, SslChoice, Stage1Options, Stage1Run, Stage1Summary};
use crate::stage2::{Stage2Config, Stage2Options, Stage2Summary};
use train::persist::claim_text;
use train::run_dir::{read_json, write_json};
use train::scores::ScoreConfig;

/// The dataset `run` uses when none is named (bundled with the project).
pub const DEFAULT_DATASET: &str = "SyntheticControl";

/// The `[run]` table: what the job compares and how it is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Dataset name or path.
    pub dataset: String,
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
    /// The SSL branch of the NC-VQVAE model (the other model is always the baseline).
    pub ssl: SslChoice,
    /// Its augmentation.
    pub aug: Recipe,
    /// Epochs of the CAS classifier trained on synthetic series. Reference: 1000.
    pub cas_epochs: usize,
    /// Batch size of the CAS classifier. Reference: 256.
    #[serde(default = "reference_cas_batch_size")]
    pub cas_batch_size: usize,
    /// Synthetic series for CAS (0: the reference's ≈ 1000).
    pub cas_samples: usize,
    /// Classifier-free guidance weight of the class-conditional samples CAS trains on and the
    /// report plots (1: the plain conditional prior, as the reference, quirk Q11).
    #[serde(default = "reference_guidance")]
    pub guidance: f64,
    /// At most this many generated and real test series for FID / IS (0: the whole test split,
    /// as the reference).
    pub fid_samples: usize,
    /// Series per class drawn for the report's sample plots.
    pub plot_samples: usize,
}

/// The reference's CAS batch size (the FCN recipe's, docs/reference.md §10.2); also the value of
/// `config.toml` files written before the key existed.
pub fn reference_cas_batch_size() -> usize {
    256
}

/// The reference's guidance weight (1: no guidance, quirk Q11); also the value of `config.toml`
/// files written before the key existed.
pub fn reference_guidance() -> f64 {
    1.0
}

/// Checks a classifier-free guidance weight (any finite number; 1 is no guidance), named `what`
/// in the message (`run.guidance`, `--guidance`).
pub fn check_guidance(what: &str, weight: f64) -> Result<(), String> {
    if weight.is_finite() { Ok(()) } else { Err(format!("{what} must be a finite number")) }
}

/// Everything that defines a job; written to `DIR/config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The comparison.
    pub run: JobSettings,
    /// Stage-1 settings shared by both models (`ssl` and `aug` come from `[run]`).
    pub stage1: Stage1Run,
    /// Stage-2 settings of both priors.
    pub stage2: Stage2Config,
    /// The FCN behind FID / IS.
    pub fcn: FcnTrainConfig,
}

impl JobConfig {
    /// The thesis' settings (docs/reference.md §8, §9, §10: 1000 epochs everywhere, projector 4096) for
    /// `dataset`, comparing the baseline with Barlow Twins + slice-and-shuffle.
    pub fn thesis(dataset: &str) -> Self {
        let mut stage1 = Stage1Run::new(dataset);
        stage1.probe_every = 50;
        Self {
            run: JobSettings {
                dataset: dataset.into(),
                data_dir: None,
                ssl: SslChoice::BarlowTwins,
                aug: Recipe::Slice,
                cas_epochs: 1000,
                cas_batch_size: reference_cas_batch_size(),
                cas_samples: 0,
                guidance: reference_guidance(),
                fid_samples: 0,
                plot_samples: 10,
            },
            stage1,
            stage2: Stage2Config::default(),
            fcn: FcnTrainConfig::new(dataset),
        }
    }

    /// The quick default of `nc-vqvae run` (`configs/quick.toml` spells it out): the thesis models,
    /// except a 1024-wide projector and a prior of 2 blocks instead of 4, with short schedules in
    /// batches of 32 (several hundred steps per stage on the bundled SyntheticControl), so the
    /// whole job fits in under five minutes on a 2-core CPU, and CAS samples drawn with
    /// classifier-free guidance 3 (the reference evaluates with 1). See docs/results.md for what it
    /// shows and what it does not.
    pub fn quick(dataset: &str) -> Self {
        let mut job = Self::thesis(dataset);
        job.run.aug = Recipe::Warp;
        job.run.cas_epochs = 20;
        job.run.cas_batch_size = 32;
        job.run.cas_samples = 300;
        job.run.fid_samples = 256;
        job.run.guidance = 3.0;
        job.stage1.epochs = 80;
        job.stage1.batch_size = 32;
        job.stage1.probe_every = 0;
        job.stage1.checkpoint_every = 20;
        job.stage1.projector_dim = 1024;
        job.stage2.epochs = 60;
        job.stage2.depth = 2;
        job.stage2.batch_size = 32;
        job.stage2.eval_every = 0;
        job.stage2.checkpoint_every = 20;
        job.fcn.epochs = 30;
        job.fcn.batch_size = 32;
        job.fcn.eval_every = 0;
        job
    }

    /// Whether this is the quick default of `nc-vqvae run` (on any dataset, with any seed and
    /// SSL branch / augmentation).
    pub fn is_quick(&self) -> bool {
        let mut quick = Self::quick(&self.run.dataset)
            .with_dataset(&self.run.dataset, self.run.data_dir.clone())
            .with_seed(self.stage1.seed);
        quick.run.ssl = self.run.ssl;
        quick.run.aug = self.run.aug;
        quick == *self
    }

    /// `base` with the config file's tables and the `--set` arguments applied, section by section.
    pub fn layered(base: &Self, file: Option<&Path>, sets: &[String]) -> Result<Self, ConfigError> {
        Ok(Self {
            run: layer(&base.run, "run", file, sets)?,
            stage1: layer(&base.stage1, "stage1", file, sets)?,
            stage2: layer(&base.stage2, "stage2", file, sets)?,
            fcn: layer(&base.fcn, "fcn", file, sets)?,
        })
    }

    /// Sets the dataset (and its directory) everywhere it appears.
    pub fn with_dataset(mut self, dataset: &str, data_dir: Option<PathBuf>) -> Self {
        self.run.dataset = dataset.into();
        self.stage1.dataset = dataset.into();
        self.fcn.dataset = dataset.into();
        if data_dir.is_some() {
            self.run.data_dir = data_dir;
        }
        self.stage1.data_dir = self.run.data_dir.clone();
        self.fcn.data_dir = self.run.data_dir.clone();
        self
    }

    /// Sets the seed of every stage.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.stage1.seed = seed;
        self.stage2.seed = seed;
        self.fcn.seed = seed;
        self
    }

    /// The stage-1 config of one of the two models.
    pub fn stage1_for(&self, ssl: SslChoice) -> Stage1Run {
        let mut c = self.stage1.clone();
        c.dataset = self.run.dataset.clone();
        c.data_dir = self.run.data_dir.clone();
        c.ssl = ssl;
        c.aug = self.run.aug;
        c
    }

    /// Checks what would otherwise fail late.
    pub fn validate(&self) -> Result<(), RunError> {
        self.stage1.validate()?;
        self.stage2.validate()?;
        if self.run.ssl == SslChoice::None {
            return Err(RunError::config(
                "run.ssl must be barlow-twins or vibcreg: the job compares NC-VQVAE with the baseline",
            ));
        }
        if self.run.cas_epochs == 0 || self.fcn.epochs == 0 {
            return Err(RunError::config("run.cas_epochs and fcn.epochs must be at least 1"));
        }
        check_guidance("run.guidance", self.run.guidance).map_err(RunError::config)
    }
}

/// The results of one model: stage 1, stage 2 and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// `stage1.json`.
    pub stage1: Stage1Summary,
    /// `stage2.json`.
    pub stage2: Stage2Summary,
    /// `eval.json`.
    pub eval: EvalSummary,
}

impl ModelResult {
    /// One flat JSON object: the `stage1.json` and `eval.json` keys, plus `stage2_loss` and
    /// `stage2_epochs`.
    pub fn flat(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for part in [serde_json::to_value(&self.stage1), serde_json::to_value(&self.eval)] {
            if let Ok(serde_json::Value::Object(map)) = part {
                out.extend(map);
            }
        }
        out.remove("fcn");
        out.remove("wall_seconds");
        out.insert("stage1_wall_seconds".into(), self.stage1.wall_seconds.into());
        out.insert("stage2_loss".into(), self.stage2.loss.into());
        out.insert("stage2_epochs".into(), self.stage2.epochs.into());
        out.insert("stage2_wall_seconds".into(), self.stage2.wall_seconds.into());
        out.insert("eval_wall_seconds".into(), self.eval.wall_seconds.into());
        serde_json::Value::Object(out)
    }
}

/// Runs (or finishes) one model in `dir`: stage 1, stage 2, evaluation; each finished step is
/// read back instead of rerun. `eval.fcn` must name the FCN to use.
pub fn run_model(
    dir: &Path,
    stage1: &Stage1Run,
    stage2: &Stage2Config,
    eval: &EvaluateOptions,
    progress: bool,
    device: &Device,
) -> Result<ModelResult, RunError> {
    // Held while this process works on the folder: `status` reports it as running, and a second
    // process on the same folder is refused instead of training it twice.
    let _lock = crate::status::lock_run(dir)?;
    let stage1 = match dir.join("stage1.json").exists() {
        true => read_json(&dir.join("stage1.json"))?,
        false => {
            let resume = dir.join("config.toml").exists();
            crate::stage1::train(stage1, dir, device, &Stage1Options { resume, progress })?
        }
    };
    let stage2 = match dir.join("stage2.json").exists() {
        true => read_json(&dir.join("stage2.json"))?,
        false => {
            let resume = dir.join("stage2").join("config.toml").exists();
            crate::stage2::train(stage2, dir, device, &Stage2Options { resume, progress })?
        }
    };
    let eval = match dir.join("eval.json").exists() {
        true => read_json(&dir.join("eval.json"))?,
        false => crate::evaluate::evaluate(dir, eval, device)?,
    };
    Ok(ModelResult { stage1, stage2, eval })
}

/// Writes `config` to `path`, or checks that the job already there has the same config.
pub fn claim_folder(path: &Path, config: &JobConfig) -> Result<(), RunError> {
    Ok(train::persist::claim_config(path, config, || {
        format!(
            "{}: holds a job with a different config; choose another --out, or delete the folder to start over",
            path.display()
        )
    })?)
}

/// Writes `text` to `path`, or checks that the same text is already there (a sweep point's
/// `point.toml`).
pub fn claim_point(path: &Path, text: &str) -> Result<(), RunError> {
    Ok(claim_text(path, text, || {
        format!("{}: holds a different point; expand into another folder", path.display())
    })?)
}

/// `DIR/summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// Dataset name.
    pub dataset: String,
    /// The baseline VQ-VAE.
    pub baseline: serde_json::Value,
    /// NC-VQVAE.
    pub nc_vqvae: serde_json::Value,
    /// Test accuracy of the FCN behind FID / IS.
    pub fcn_test_acc: f64,
    /// Wall time of this invocation, seconds.
    pub wall_seconds: f64,
}

/// Prints a step header on stderr.
pub(crate) fn step(progress: bool, text: &str) {
    if progress {
        eprintln!("== {text}");
    }
}

/// Runs (or finishes) the job of `config` in `out`: the FCN, both models, `summary.json`. The
/// report and its plots are [`crate::report::job`]'s (which calls this).
pub fn run_job(
    config: &JobConfig,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<(JobSummary, ModelResult, ModelResult), RunError> {
    let start = Instant::now();
    config.validate()?;
    train::run_dir::ensure_writable(out)?;
    claim_folder(&out.join("config.toml"), config)?;

    let fcn_path = out.join("fcn.bpk");
    if !fcn_path.exists() {
        step(
            progress,
            &format!("FCN classifier for FID / IS / CAS ({} epochs)", config.fcn.epochs),
        );
    }
    let mut fcn = config.fcn.clone();
    fcn.dataset = config.run.dataset.clone();
    fcn.data_dir = config.run.data_dir.clone();
    crate::fcn::ensure_trained(&fcn, None, &fcn_path, device, progress)?;
    let eval = EvaluateOptions {
        fcn: Some(fcn_path.clone()),
        fcn_epochs: config.fcn.epochs,
        progress,
        scores: ScoreConfig {
            cas_epochs: config.run.cas_epochs,
            cas_batch_size: config.run.cas_batch_size,
            seed: config.stage2.seed,
            max_fid_samples: config.run.fid_samples,
            cas_samples: config.run.cas_samples,
            guidance: config.run.guidance,
            work_dir: None,
        },
    };
    let mut results = Vec::new();
    for (name, ssl) in [("baseline", SslChoice::None), ("nc_vqvae", config.run.ssl)] {
        let label = if ssl == SslChoice::None {
            "baseline VQ-VAE".to_string()
        } else {
            format!("NC-VQVAE ({:?} + {:?})", ssl, config.run.aug)
        };
        step(
            progress,
            &format!(
                "{label}: stage 1 ({} epochs), stage 2 ({} epochs), evaluation",
                config.stage1.epochs, config.stage2.epochs
            ),
        );
        results.push(run_model(
            &out.join(name),
            &config.stage1_for(ssl),
            &config.stage2,
            &eval,
            progress,
            device,
        )?);
    }
    let nc = results.pop().expect("two results");
    let base = results.pop().expect("two results");
    let summary = JobSummary {
        dataset: base.stage1.dataset.clone(),
        baseline: base.flat(),
        nc_vqvae: nc.flat(),
        fcn_test_acc: base.eval.fcn_test_acc,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok((summary, base, nc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_preset_matches_the_shipped_config_file() {
        // configs/quick.toml documents the default of `nc-vqvae run`; it must not drift.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quick.toml");
        let from_file =
            JobConfig::layered(&JobConfig::thesis(DEFAULT_DATASET), Some(&path), &[]).unwrap();
        assert_eq!(from_file, JobConfig::quick(DEFAULT_DATASET));
    }

    #[test]
    fn thesis_config_file_matches_the_thesis_settings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/thesis.toml");
        let from_file =
            JobConfig::layered(&JobConfig::quick(DEFAULT_DATASET), Some(&path), &[]).unwrap();
        assert_eq!(from_file, JobConfig::thesis(DEFAULT_DATASET));
        assert_eq!(from_file.stage1.epochs, 1000);
        assert_eq!(from_file.stage1.projector_dim, 4096);
    }

    #[test]
    fn the_report_knows_the_quick_profile_by_its_settings() {
        // On any dataset, seed and SSL branch / augmentation, but not with other schedules.
        let mut quick =
            JobConfig::quick("ECG5000").with_dataset("ECG5000", Some("/data".into())).with_seed(3);
        quick.run.ssl = SslChoice::Vibcreg;
        quick.run.aug = Recipe::Slice;
        assert!(quick.is_quick());
        assert!(!JobConfig::thesis(DEFAULT_DATASET).is_quick());
        let mut longer = JobConfig::quick(DEFAULT_DATASET);
        longer.stage2.epochs += 1;
        assert!(!longer.is_quick());
    }

    #[test]
    fn models_share_stage1_settings_but_not_the_branch() {
        let job = JobConfig::quick("ECG5000").with_seed(7);
        let (a, b) = (job.stage1_for(SslChoice::None), job.stage1_for(SslChoice::BarlowTwins));
        assert_eq!((a.ssl, b.ssl), (SslChoice::None, SslChoice::BarlowTwins));
        assert_eq!((a.epochs, a.seed, a.projector_dim), (b.epochs, b.seed, b.projector_dim));
        assert_eq!((job.stage2.seed, job.fcn.seed), (7, 7));
        let mut bad = job.clone();
        bad.run.ssl = SslChoice::None;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_job_file_written_before_the_guidance_key_reads_as_the_reference() {
        // Job folders written before `run.guidance` existed hold no such key: they read as 1 (no
        // guidance), so such a job is finished with its own settings, not refused.
        let job = JobConfig::thesis("ECG5000");
        let mut value = toml::Value::try_from(&job).unwrap();
        value["run"].as_table_mut().unwrap().remove("guidance").expect("the key is written");
        let old: JobConfig = toml::from_str(&toml::to_string(&value).unwrap()).unwrap();
        assert_eq!(old.run.guidance, 1.0);
        assert_eq!(old, job);
        let mut bad = job;
        bad.run.guidance = f64::NAN;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_folder_with_another_job_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        let job = JobConfig::quick("ECG5000");
        claim_folder(&path, &job).unwrap();
        claim_folder(&path, &job).unwrap();
        let other = job.with_seed(2);
        let e = claim_folder(&path, &other).unwrap_err();
        assert!(e.is_input_error() && e.to_string().contains("different config"), "{e}");
    }
}
