//! `nc-vqvae fcn train`: the supervised FCN of spec §10.2 for any dataset, trained with the
//! reference recipe (cross-entropy, AdamW lr 1e-3, weight decay 1e-5, batch 256, cosine schedule
//! with the stage-1 step counter, 1000 epochs, the test split for monitoring only).
//!
//! Files: the weights at `FILE` (Burn record), `FILE.json` (`test_acc`, `epochs`, `wall_seconds`,
//! plus identification) and `FILE.metrics.jsonl` (one line per epoch). All written atomically.
//! While training, `FILE.run/` holds the run's `config.toml`, `metrics.jsonl` and checkpoints (every
//! `checkpoint_every` epochs); training the same FILE again with the same settings continues from
//! the last checkpoint (same result as an uninterrupted run on the CPU backend), and the folder is
//! removed once FILE is written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int};
use metrics::{Fcn, FcnConfig};
use serde::{Deserialize, Serialize};
use ucr_data::{Resolver, Split, UcrDataset, epoch_batches};

use crate::run_dir::{RunDir, io, write_atomic, write_json};
use crate::stage1::{RunError, claim_config, cosine_lr, load_weights, progress_bar, read, restore, save_checkpoint, save_weights};

/// Settings of an FCN training run; defaults are the reference's recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcnTrainConfig {
    /// Dataset name or path.
    pub dataset: String,
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
    /// Epochs. Reference: 1000.
    pub epochs: usize,
    /// Batch size. Reference: 256.
    pub batch_size: usize,
    /// Seed of the initialisation and the shuffling.
    pub seed: u64,
    /// AdamW peak learning rate. Reference: 1e-3.
    pub lr: f64,
    /// AdamW weight decay. Reference (supervised-fcn): 1e-5.
    pub weight_decay: f64,
    /// Test accuracy every this many epochs (0: only at the end).
    pub eval_every: usize,
    /// Checkpoint every this many epochs (`fcn train` and the FCN of `evaluate`; not the CAS classifier).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
}

fn default_checkpoint_every() -> usize {
    10
}

impl FcnTrainConfig {
    /// Reference defaults for `dataset`.
    pub fn new(dataset: &str) -> Self {
        Self {
            dataset: dataset.into(),
            data_dir: None,
            epochs: 1000,
            batch_size: 256,
            seed: 1,
            lr: 1e-3,
            weight_decay: 1e-5,
            eval_every: 50,
            checkpoint_every: default_checkpoint_every(),
        }
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

/// Test-split accuracy of an FCN in eval mode.
pub fn accuracy(model: &Fcn, split: &Split, device: &Device) -> Result<f64, RunError> {
    let mut correct = 0usize;
    for idx in epoch_batches(split.n(), 256, false, 0, 0)? {
        let batch = split.batch(&idx, device);
        let predicted = read::<i64, 1, Int>(model.forward(batch.x).argmax(1).reshape([idx.len()]))?;
        correct += predicted.iter().zip(&idx).filter(|(p, i)| **p as usize == split.labels[**i]).count();
    }
    Ok(correct as f64 / split.n().max(1) as f64)
}

/// `path` with `suffix` appended to its file name (`fcn.bpk` → `fcn.bpk.json`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// The result of [`fit`].
pub struct Fitted {
    /// The trained network in eval mode (on the plain device).
    pub model: Fcn,
    /// Accuracy on the whole test split at the end.
    pub test_acc: f64,
    /// The running accuracy, if asked for.
    pub running_acc: Option<f64>,
    /// One JSON line per epoch.
    pub log: String,
    /// Training seconds, earlier segments of a resumed run included.
    pub seconds: f64,
}

/// Trains an FCN for `n_classes` classes on `train` with the optimisation settings of `opts`
/// (its dataset fields are not used), monitoring on `test` (reference recipe: cross-entropy,
/// AdamW, cosine schedule with the stage-1 step counter). With `running_accuracy` it validates on
/// `test` after every epoch and keeps the reference's running accuracy (CAS, quirk Q21) instead of
/// the `eval_every` checks. With `run`, the epochs' lines go to its `metrics.jsonl`, a checkpoint
/// is written there every `checkpoint_every` epochs, and training starts from its last checkpoint
/// if it has one.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    train: &Split,
    test: &Split,
    n_classes: usize,
    opts: &FcnTrainConfig,
    running_accuracy: bool,
    progress: bool,
    device: &Device,
    run: Option<&RunDir>,
) -> Result<Fitted, RunError> {
    if opts.epochs == 0 || opts.batch_size < 2 {
        return Err(RunError::Config(format!("epochs must be ≥ 1 and batch_size ≥ 2, got {} and {}", opts.epochs, opts.batch_size)));
    }
    let train_device = device.clone().autodiff();
    train_device.seed(opts.seed);
    let model = FcnConfig::new(n_classes).init(&train_device);
    let optim = crate::stage1::adamw(0.9, 0.999, 1e-8, opts.weight_decay);
    let (mut model, mut optim, start_epoch, mut step, mut wall) = match run {
        Some(run) => restore(run, true, "model.bpk", model, optim)?,
        None => (model, optim, 0, 0, 0.0),
    };
    let steps = epoch_batches(train.n(), opts.batch_size, false, 0, 0)?.len();
    let t_max = opts.epochs * (steps + 1);
    let bar = progress_bar(progress, (opts.epochs * steps) as u64, (start_epoch * steps) as u64);
    let mut segment_start = Instant::now();
    let mut log = String::new();
    let mut running = metrics::RunningAccuracy::default();
    for epoch in start_epoch..opts.epochs {
        let epoch_start = Instant::now();
        let (mut loss_sum, mut batches) = (0.0, 0);
        for idx in epoch_batches(train.n(), opts.batch_size, true, opts.seed, epoch as u64)? {
            let batch = train.batch(&idx, &train_device);
            let b = idx.len();
            let logp = log_softmax(model.forward(batch.x), 1);
            let loss = logp.gather(1, batch.y.reshape([b, 1])).mean().neg();
            step += 1;
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                bar.abandon();
                return Err(RunError::NonFinite { term: "cross_entropy", value, epoch: epoch + 1, step });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cosine_lr(opts.lr, step, t_max), model, grads);
            loss_sum += value as f64;
            batches += 1;
            bar.set_message(format!("epoch {}/{} loss {value:.4}", epoch + 1, opts.epochs));
            bar.inc(1);
        }
        step += 1;
        let mut line = serde_json::json!({"epoch": epoch + 1, "step": step, "loss": loss_sum / batches as f64, "lr": cosine_lr(opts.lr, step, t_max)});
        if running_accuracy {
            let eval = model.valid();
            for acc in batch_accuracies(&eval, test, device)? {
                running.update(acc);
            }
            line["running_acc"] = running.value().into();
        } else if opts.eval_every > 0 && (epoch + 1) % opts.eval_every == 0 && epoch + 1 < opts.epochs {
            line["test_acc"] = accuracy(&model.valid(), test, device)?.into();
        }
        line["seconds"] = epoch_start.elapsed().as_secs_f64().into();
        match run {
            Some(run) => {
                run.append_metrics(&line)?;
                if (epoch + 1) % opts.checkpoint_every.max(1) == 0 && epoch + 1 < opts.epochs {
                    wall += segment_start.elapsed().as_secs_f64();
                    segment_start = Instant::now();
                    let _ = model.valid(); // syncs the BatchNorm running statistics before recording
                    save_checkpoint(run, "model.bpk", model.clone(), &optim, (epoch + 1, step, wall))?;
                }
            }
            None => log.push_str(&format!("{line}\n")),
        }
    }
    bar.finish_and_clear();
    if let Some(run) = run {
        let path = run.path("metrics.jsonl");
        log = std::fs::read_to_string(&path).map_err(io(&path))?;
    }
    let model = model.valid();
    let test_acc = accuracy(&model, test, device)?;
    let seconds = wall + segment_start.elapsed().as_secs_f64();
    Ok(Fitted { model, test_acc, running_acc: running_accuracy.then_some(running.value()), log, seconds })
}

/// Accuracy of every test batch of 256 (in order).
fn batch_accuracies(model: &Fcn, split: &Split, device: &Device) -> Result<Vec<f64>, RunError> {
    let mut out = Vec::new();
    for idx in epoch_batches(split.n(), 256, false, 0, 0)? {
        let batch = split.batch(&idx, device);
        let predicted = read::<i64, 1, Int>(model.forward(batch.x).argmax(1).reshape([idx.len()]))?;
        let correct = predicted.iter().zip(&idx).filter(|(p, i)| **p as usize == split.labels[**i]).count();
        out.push(correct as f64 / idx.len() as f64);
    }
    Ok(out)
}

/// Trains an FCN on `config.dataset` and writes `out`, `out.json` and `out.metrics.jsonl`.
pub fn train(config: &FcnTrainConfig, out: &Path, device: &Device, progress: bool) -> Result<FcnSummary, RunError> {
    let source = Resolver::new(config.data_dir.clone()).resolve(&config.dataset)?;
    let data = UcrDataset::load(&source)?;
    train_on(config, &data, out, device, progress)
}

/// [`train`] on an already loaded dataset.
/// An interrupted run of the same `config` at `out` (in `FILE.run/`) is continued; one with other
/// settings is refused.
pub fn train_on(config: &FcnTrainConfig, data: &UcrDataset, out: &Path, device: &Device, progress: bool) -> Result<FcnSummary, RunError> {
    if config.checkpoint_every == 0 {
        return Err(RunError::Config("fcn checkpoint_every must be at least 1".into()));
    }
    let run_path = with_suffix(out, ".run");
    let run = RunDir::create(&run_path)?;
    claim_config(&run.path("config.toml"), config, || {
        format!("{}: holds an interrupted FCN run with other settings; rerun with those settings to finish it, or delete the folder", run_path.display())
    })?;
    let fitted = fit(&data.train, &data.test, data.num_classes(), config, false, progress, device, Some(&run))?;
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
    load_weights(FcnConfig::new(n_classes).init(device), path)
}
