//! `nc-vqvae fcn train`: the supervised FCN ([`train::fcn`]) for any dataset, in files.
//!
//! Files: the weights at `FILE` (Burn record), `FILE.json` (`test_acc`, `epochs`, `wall_seconds`,
//! plus identification) and `FILE.metrics.jsonl` (one line per epoch). All written atomically.
//! While training, `FILE.run/` holds the run's `config.toml`, `metrics.jsonl` and checkpoints (every
//! `checkpoint_every` epochs); training the same FILE again with the same settings continues from
//! the last checkpoint (same result as an uninterrupted run on the CPU backend), and the folder is
//! removed once FILE is written. `FILE.lock` (an empty file holding an OS lock while training)
//! keeps two processes from training the same FILE at once ([`ensure_trained`]).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use metrics::{Fcn, FcnConfig};
use serde::{Deserialize, Serialize};
use train::RunContext;
use train::persist::{claim_config, load_weights, save_weights};
use ucr_data::UcrDataset;

pub use train::fcn::accuracy;

use crate::RunError;
use crate::config::OnDataset;
use crate::progress::Bar;
use train::run_dir::{RunDir, RunDirError, write_atomic, write_json};

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
pub fn train(
    config: &FcnTrainConfig,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<FcnSummary, RunError> {
    let data = config.load_data()?;
    train_on(config, &data, out, device, progress)
}

/// [`train()`] on an already loaded dataset.
/// An interrupted run of the same `config` at `out` (in `FILE.run/`) is continued; one with other
/// settings is refused. The training holds `FILE.lock` ([`lock`]): a second process training the
/// same FILE waits for the first and then trains again (use [`ensure_trained`] to reuse it instead).
pub fn train_on(
    config: &FcnTrainConfig,
    data: &UcrDataset,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<FcnSummary, RunError> {
    let _lock = lock(out, progress)?;
    train_locked(config, data, out, device, progress)
}

/// An FCN at `out` exists: its weights, written last ([`train_on`]), or a user's own file.
fn finished(out: &Path) -> bool {
    out.is_file()
}

/// Makes sure the FCN at `out` exists, training it (on `data`, or on `config`'s dataset loaded
/// here) only if it does not: the FCN shared by the points of a sweep and by `run`. Exactly one
/// process trains it: the others block on `FILE.lock` until it is written and then reuse it; a
/// training that was killed is continued by the next process (its `FILE.run/` checkpoints).
pub fn ensure_trained(
    config: &FcnTrainConfig,
    data: Option<&UcrDataset>,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<(), RunError> {
    if finished(out) {
        return Ok(());
    }
    let _lock = lock(out, progress)?;
    if finished(out) {
        // Written by the process this one waited for (or by one killed after writing FILE,
        // before removing its run folder).
        let run_path = with_suffix(out, ".run");
        if run_path.exists() {
            std::fs::remove_dir_all(&run_path).map_err(RunDirError::io(&run_path))?;
        }
        return Ok(());
    }
    match data {
        Some(data) => train_locked(config, data, out, device, progress)?,
        None => train_locked(config, &config.load_data()?, out, device, progress)?,
    };
    Ok(())
}

/// Takes the exclusive OS lock on `FILE.lock` (created if missing, left in place: removing a lock
/// file others may have opened would let two processes hold "the" lock), waiting while another
/// process holds it. The lock goes with the returned file, and with the process if it dies.
/// `flock(2)` on Linux, also across the hosts of a cluster on NFSv4 and Lustre.
pub fn lock(out: &Path, progress: bool) -> Result<std::fs::File, RunError> {
    let path = with_suffix(out, ".lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        train::run_dir::ensure_writable(dir)?;
    }
    let (file, held) = crate::status::try_lock_file(&path)?;
    if !held {
        if progress {
            eprintln!("waiting for another process that trains {}", out.display());
        }
        file.lock().map_err(RunDirError::io(&path))?;
    }
    Ok(file)
}

/// [`train_on`] with `FILE.lock` already held.
fn train_locked(
    config: &FcnTrainConfig,
    data: &UcrDataset,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<FcnSummary, RunError> {
    require_labels(data, &data.train.origin)?;
    if config.checkpoint_every == 0 {
        return Err(RunError::config("fcn checkpoint_every must be at least 1"));
    }
    let run_path = with_suffix(out, ".run");
    let run = RunDir::create(&run_path)?;
    claim_config(&run.path("config.toml"), config, || {
        format!(
            "{}: holds an interrupted FCN run with other settings; rerun with those settings to finish it, or delete the folder",
            run_path.display()
        )
    })?;
    let fitted = train::fcn::train_fcn(
        &data.train,
        &data.test,
        data.num_classes(),
        &config.recipe,
        false,
        device,
        RunContext::in_folder(&run, true, &mut Bar::phase(progress, "FCN for FID / IS")),
    )?;
    write_atomic(&with_suffix(out, ".metrics.jsonl"), fitted.log.as_bytes())?;
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
    // The weights last: FILE existing means the training is complete ([`ensure_trained`]).
    save_weights(fitted.model, out)?;
    std::fs::remove_dir_all(&run_path).map_err(RunDirError::io(&run_path))?;
    Ok(summary)
}

/// Loads an FCN written by [`train()`] for `n_classes` classes.
pub fn load(path: &Path, n_classes: usize, device: &Device) -> Result<Fcn, RunError> {
    Ok(load_weights(FcnConfig::new(n_classes).init(device), path)?)
}
