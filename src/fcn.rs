//! `nc-vqvae fcn train`: the supervised FCN ([`train::fcn`]) for any dataset, in files.
//!
//! Files: the weights at `FILE` (Burn record), `FILE.json` (`test_acc`, `epochs`, `wall_seconds`,
//! plus identification) and `FILE.metrics.jsonl` (one line per epoch). All written atomically.
//! While training, `FILE.run/` holds the run's `config.toml`, `metrics.jsonl` and checkpoints (every
//! `checkpoint_every` epochs); training the same FILE again with the same settings continues from
//! the last checkpoint (same result as an uninterrupted run on the CPU backend), and the folder is
//! removed once FILE is written.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use metrics::{Fcn, FcnConfig};
use serde::{Deserialize, Serialize};
use train::persist::{claim_config, load_weights, save_weights};
use ucr_data::UcrDataset;

pub use train::fcn::accuracy;

use crate::config::OnDataset;
use crate::progress::Bar;
use crate::run_dir::{RunDir, io, write_atomic, write_json};
use crate::stage1::RunError;

/// Settings of an FCN training run: the dataset and the reference's recipe.
pub type FcnTrainConfig = OnDataset<train::fcn::FcnTrainConfig>;

impl FcnTrainConfig {
    /// Reference defaults for `dataset`.
    pub fn new(dataset: &str) -> Self {
        OnDataset::on(dataset, train::fcn::FcnTrainConfig::default())
    }
}

/// `FILE.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FcnSummary {
    /// Final accuracy on the whole test split (eval mode).
    pub test_acc: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time, seconds.
    pub wall_seconds: f64,
    /// Dataset name.
    pub dataset: String,
    /// Number of classes.
    pub n_classes: usize,
    /// Series length.
    pub length: usize,
    /// Seed.
    pub seed: u64,
}

/// `path` with `suffix` appended to its file name (`fcn.bpk` → `fcn.bpk.json`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses data without labels ([`UcrDataset::labelled`]) for the FCN and the scores it judges;
/// `what` names the data or run in the message.
pub fn require_labels(data: &UcrDataset, what: &str) -> Result<(), RunError> {
    if data.labelled() {
        return Ok(());
    }
    Err(RunError::Input(format!(
        "{what}: {} class label(s) in the train split; the FCN classifier and FID / IS / CAS, which it judges, need a labelled dataset of two classes or more",
        data.num_classes()
    )))
}

/// Trains an FCN on `config.dataset` and writes `out`, `out.json` and `out.metrics.jsonl`.
pub fn train(config: &FcnTrainConfig, out: &Path, device: &Device, progress: bool) -> Result<FcnSummary, RunError> {
    let data = config.load_data()?;
    train_on(config, &data, out, device, progress)
}

/// [`train`] on an already loaded dataset.
/// An interrupted run of the same `config` at `out` (in `FILE.run/`) is continued; one with other
/// settings is refused.
pub fn train_on(config: &FcnTrainConfig, data: &UcrDataset, out: &Path, device: &Device, progress: bool) -> Result<FcnSummary, RunError> {
    require_labels(data, &data.train.origin)?;
    if config.checkpoint_every == 0 {
        return Err(RunError::config("fcn checkpoint_every must be at least 1"));
    }
    let run_path = with_suffix(out, ".run");
    let run = RunDir::create(&run_path)?;
    claim_config(&run.path("config.toml"), config, || {
        format!("{}: holds an interrupted FCN run with other settings; rerun with those settings to finish it, or delete the folder", run_path.display())
    })?;
    let fitted = train::fcn::fit_fcn(&data.train, &data.test, data.num_classes(), &config.recipe, false, device, Some(&run), &mut Bar::new(progress))?;
    write_atomic(&with_suffix(out, ".metrics.jsonl"), fitted.log.as_bytes())?;
    save_weights(fitted.model, out)?;
    let summary = FcnSummary {
        test_acc: fitted.test_acc,
        epochs: config.epochs,
        wall_seconds: fitted.seconds,
        dataset: data.name.clone(),
        n_classes: data.num_classes(),
        length: data.length(),
        seed: config.seed,
    };
    write_json(&with_suffix(out, ".json"), &summary)?;
    std::fs::remove_dir_all(&run_path).map_err(io(&run_path))?;
    Ok(summary)
}

/// Loads an FCN written by [`train`] for `n_classes` classes.
pub fn load(path: &Path, n_classes: usize, device: &Device) -> Result<Fcn, RunError> {
    Ok(load_weights(FcnConfig::new(n_classes).init(device), path)?)
}
