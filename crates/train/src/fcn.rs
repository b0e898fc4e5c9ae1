//! The supervised FCN classifier (docs/reference.md §10.2) trained with the reference's recipe:
//! cross-entropy, AdamW (learning rate 1e-3, weight decay 1e-5), batches of 256, the cosine
//! schedule with the stage-1 step counter, 1000 epochs, the test split for monitoring only. It is
//! the judge behind FID and IS and, trained on synthetic series, the CAS classifier.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int};
use metrics::{Fcn, FcnConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ucr_data::{Split, epoch_batches};

use crate::error::Error;
use crate::fit::{FitConfig, Progress, StepLoss, Task, fit};
use crate::persist::read;
use crate::run_dir::{RunDir, io};

/// The FCN's training recipe; defaults ([`Default`]) are the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcnTrainConfig {
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
    /// With a run folder: a checkpoint every this many epochs (and at the end).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
}

fn default_checkpoint_every() -> usize {
    10
}

impl Default for FcnTrainConfig {
    fn default() -> Self {
        Self { epochs: 1000, batch_size: 256, seed: 1, lr: 1e-3, weight_decay: 1e-5, eval_every: 50, checkpoint_every: default_checkpoint_every() }
    }
}

/// Test-split accuracy of an FCN in eval mode.
pub fn accuracy(model: &Fcn, split: &Split, device: &Device) -> Result<f64, Error> {
    let correct: usize = correct_per_batch(model, split, device)?.iter().map(|&(c, _)| c).sum();
    Ok(correct as f64 / split.n().max(1) as f64)
}

/// Correct predictions and size of every batch of 256 of `split` (in order).
fn correct_per_batch(model: &Fcn, split: &Split, device: &Device) -> Result<Vec<(usize, usize)>, Error> {
    let mut out = Vec::new();
    for idx in epoch_batches(split.n(), 256, false, 0, 0)? {
        let batch = split.batch(&idx, device);
        let predicted = read::<i64, 1, Int>(model.forward(batch.x).argmax(1).reshape([idx.len()]))?;
        out.push((predicted.iter().zip(&idx).filter(|(p, i)| **p as usize == split.labels[**i]).count(), idx.len()));
    }
    Ok(out)
}

/// The result of [`fit_fcn`].
pub struct FittedFcn {
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

/// Trains an FCN for `n_classes` classes on `train` with the recipe `opts`, monitoring on `test` (reference recipe: cross-entropy,
/// AdamW, cosine schedule with the stage-1 step counter). With `running_accuracy` it validates on
/// `test` after every epoch and keeps the reference's running accuracy (CAS, quirk Q21) instead of
/// the `eval_every` checks. With `run`, the epochs' lines go to its `metrics.jsonl`, a checkpoint
/// is written there every `checkpoint_every` epochs, and training starts from its last checkpoint
/// if it has one.
#[allow(clippy::too_many_arguments)]
pub fn fit_fcn(
    train: &Split,
    test: &Split,
    n_classes: usize,
    opts: &FcnTrainConfig,
    running_accuracy: bool,
    device: &Device,
    run: Option<&RunDir>,
    progress: &mut dyn Progress,
) -> Result<FittedFcn, Error> {
    if opts.epochs == 0 || opts.batch_size < 2 {
        return Err(Error::Config(format!("epochs must be ≥ 1 and batch_size ≥ 2, got {} and {}", opts.epochs, opts.batch_size)));
    }
    crate::check_adamw(opts.lr, opts.weight_decay, 0.9, 0.999, 1e-8).map_err(|e| Error::Config(format!("fcn {e}")))?;
    let train_device = device.clone().autodiff();
    train_device.seed(opts.seed);
    let model = FcnConfig::new(n_classes).init(&train_device);
    let optim = crate::adamw(0.9, 0.999, 1e-8, opts.weight_decay);
    let fit_config = FitConfig::new(opts.epochs, opts.batch_size, opts.lr).with_seed(opts.seed).with_checkpoint_every(opts.checkpoint_every.max(1));
    let mut task = FcnTask { opts, train, test, running_accuracy, running: metrics::RunningAccuracy::default(), device, train_device: &train_device };
    let fitted = fit(&fit_config, model, optim, train.n(), &mut task, run, run.is_some(), progress)?;
    let log = match run {
        Some(run) => {
            let path = run.path("metrics.jsonl");
            std::fs::read_to_string(&path).map_err(io(&path))?
        }
        None => fitted.lines.iter().map(|line| format!("{line}\n")).collect(),
    };
    let eval_start = Instant::now();
    let model = fitted.model.valid();
    let test_acc = accuracy(&model, test, device)?;
    let seconds = fitted.seconds + eval_start.elapsed().as_secs_f64();
    Ok(FittedFcn { model, test_acc, running_acc: running_accuracy.then_some(task.running.value()), log, seconds })
}

/// The FCN inside the fit loop: cross-entropy per batch; after each epoch the running test
/// accuracy (CAS) or, every `eval_every` epochs, the test accuracy.
struct FcnTask<'a> {
    opts: &'a FcnTrainConfig,
    train: &'a Split,
    test: &'a Split,
    running_accuracy: bool,
    running: metrics::RunningAccuracy,
    device: &'a Device,
    train_device: &'a Device,
}

impl Task<Fcn> for FcnTask<'_> {
    type Error = Error;

    fn step(&mut self, model: &Fcn, _epoch: usize, _batch: usize, idx: &[usize]) -> Result<StepLoss, Error> {
        let batch = self.train.batch(idx, self.train_device);
        let logp = log_softmax(model.forward(batch.x), 1);
        Ok(StepLoss::of(logp.gather(1, batch.y.reshape([idx.len(), 1])).mean().neg()))
    }

    fn after_epoch(&mut self, model: &Fcn, epoch: usize, last: bool, line: &mut Map<String, Value>) -> Result<(), Error> {
        if self.running_accuracy {
            let eval = model.valid();
            for (correct, n) in correct_per_batch(&eval, self.test, self.device)? {
                self.running.update(correct as f64 / n as f64);
            }
            line.insert("running_acc".into(), self.running.value().into());
        } else if self.opts.eval_every > 0 && epoch.is_multiple_of(self.opts.eval_every) && !last {
            line.insert("test_acc".into(), accuracy(&model.valid(), self.test, self.device)?.into());
        }
        Ok(())
    }
}
