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

use crate::error::{Error, at_least, batch_norm_batch};
use crate::fit::{FitConfig, RunContext, StepLoss, Task, fit};
use crate::run_dir::{RunDir, io};
use crate::to_host;

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
        Self {
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

/// Test-split accuracy of an FCN in eval mode.
pub fn accuracy(model: &Fcn, split: &Split, device: &Device) -> Result<f64, Error> {
    let correct: usize = correct_per_batch(model, split, device)?.iter().map(|&(c, _)| c).sum();
    Ok(correct as f64 / split.n().max(1) as f64)
}

/// Correct predictions and size of every batch of 256 of `split` (in order).
fn correct_per_batch(
    model: &Fcn,
    split: &Split,
    device: &Device,
) -> Result<Vec<(usize, usize)>, Error> {
    let mut out = Vec::new();
    for idx in epoch_batches(split.n(), 256, false, 0, 0)? {
        let batch = split.batch(&idx, device);
        let predicted =
            to_host::<i64, 1, Int>(model.forward(batch.x).argmax(1).reshape([idx.len()]))?;
        out.push((
            predicted.iter().zip(&idx).filter(|(p, i)| **p as usize == split.labels[**i]).count(),
            idx.len(),
        ));
    }
    Ok(out)
}

/// The result of [`train_fcn`].
pub struct TrainedFcn {
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

/// The total weight in the reported running accuracy (CAS, quirk Q21) below which a validation
/// pass is skipped: see [`cas_first_counted_epoch`].
pub const CAS_NEGLIGIBLE_WEIGHT: f64 = 1e-6;

/// The first epoch (1-based) whose validation pass can move the reported CAS by `tolerance` or
/// more, for `epochs` epochs of `batches_per_epoch` test batches each.
///
/// The running accuracy starts at 0 and folds in each batch accuracy `a` as `0.01·a + 0.99·v`, so
/// everything folded in up to the end of epoch `e` (a value in [0, 1]) weighs `0.99^((E − e)·b)`
/// in the final value. Skipping the passes of every epoch whose weight is below `tolerance`
/// changes the reported value by less than `tolerance`, and training not at all (the passes run
/// in eval mode on the test split and draw no random numbers). A tolerance of 1e-6 needs 1375
/// batches after a pass, so of the reference's 1000 epochs the first 1000 − ⌈1375 / b⌉ passes
/// are skipped (SonyAIBORobotSurface1, b = 3: 541; ECG5000, b = 18: 923).
pub fn cas_first_counted_epoch(epochs: usize, batches_per_epoch: usize, tolerance: f64) -> usize {
    if tolerance <= 0.0 || batches_per_epoch == 0 {
        return 1;
    }
    // Batches that must follow a pass for its weight to drop below `tolerance`.
    let batches = (tolerance.ln() / 0.99f64.ln()).ceil().max(0.0) as usize;
    let later_epochs = batches.div_ceil(batches_per_epoch);
    // The last epoch with that many batches after it is `epochs − later_epochs`.
    epochs.saturating_sub(later_epochs) + 1
}

/// Trains an FCN for `n_classes` classes on `train` with the recipe `opts`, monitoring on `test` (reference recipe: cross-entropy,
/// AdamW, cosine schedule with the stage-1 step counter). With `running_accuracy` it validates on
/// `test` after every epoch whose pass can still move the result by [`CAS_NEGLIGIBLE_WEIGHT`] and
/// keeps the reference's running accuracy (CAS, quirk Q21) instead of the `eval_every` checks.
/// With `run`, the epochs' lines go to its `metrics.jsonl`, a checkpoint is written there every
/// `checkpoint_every` epochs, and training (with its running accuracy) starts from its last
/// checkpoint if it has one.
pub fn train_fcn(
    train: &Split,
    test: &Split,
    n_classes: usize,
    opts: &FcnTrainConfig,
    running_accuracy: bool,
    device: &Device,
    ctx: RunContext<'_>,
) -> Result<TrainedFcn, Error> {
    train_fcn_skipping(
        train,
        test,
        n_classes,
        opts,
        running_accuracy.then_some(CAS_NEGLIGIBLE_WEIGHT),
        device,
        ctx,
    )
}

/// [`train_fcn`] with the running accuracy's skipping tolerance given (`None`: no running accuracy;
/// `Some(0.0)`: validate after every epoch).
fn train_fcn_skipping(
    train: &Split,
    test: &Split,
    n_classes: usize,
    opts: &FcnTrainConfig,
    running_accuracy: Option<f64>,
    device: &Device,
    ctx: RunContext<'_>,
) -> Result<TrainedFcn, Error> {
    at_least("epochs", opts.epochs, 1)?;
    batch_norm_batch(opts.batch_size)?;
    crate::check_adamw(opts.lr, opts.weight_decay, 0.9, 0.999, 1e-8)
        .map_err(|e| e.in_section("fcn"))?;
    let run = ctx.run;
    let train_device = device.clone().autodiff();
    train_device.seed(opts.seed);
    let model = FcnConfig::new(n_classes).init(&train_device);
    let optim = crate::adamw(0.9, 0.999, 1e-8, opts.weight_decay);
    let fit_config = FitConfig::new(opts.epochs, opts.batch_size, opts.lr)
        .with_seed(opts.seed)
        .with_checkpoint_every(opts.checkpoint_every.max(1));
    let first_counted = running_accuracy
        .map(|tolerance| cas_first_counted_epoch(opts.epochs, test.n().div_ceil(256), tolerance));
    let mut task = FcnTask {
        opts,
        train,
        test,
        first_counted,
        running: metrics::RunningAccuracy::default(),
        run,
        device,
        train_device: &train_device,
    };
    let fitted = fit(&fit_config, model, optim, train.n(), &mut task, ctx)?;
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
    Ok(TrainedFcn {
        model,
        test_acc,
        running_acc: first_counted.map(|_| task.running.value()),
        log,
        seconds,
    })
}

/// The FCN inside the fit loop: cross-entropy per batch; after each epoch from `first_counted` on
/// the running test accuracy (CAS) or, without it, every `eval_every` epochs the test accuracy.
struct FcnTask<'a> {
    opts: &'a FcnTrainConfig,
    train: &'a Split,
    test: &'a Split,
    first_counted: Option<usize>,
    running: metrics::RunningAccuracy,
    run: Option<&'a RunDir>,
    device: &'a Device,
    train_device: &'a Device,
}

impl Task<Fcn> for FcnTask<'_> {
    type Error = Error;

    fn step(
        &mut self,
        model: &Fcn,
        _epoch: usize,
        _batch: usize,
        idx: &[usize],
    ) -> Result<StepLoss, Error> {
        let batch = self.train.batch(idx, self.train_device);
        let logp = log_softmax(model.forward(batch.x), 1);
        Ok(StepLoss::of(logp.gather(1, batch.y.reshape([idx.len(), 1])).mean().neg()))
    }

    /// A resumed run takes its running accuracy back from the checkpoint's epoch line (the metrics
    /// are truncated to it; JSON keeps an `f64` exactly).
    fn begin(&mut self, _model: &Fcn, start_epoch: usize) -> Result<(), Error> {
        if let (Some(run), Some(_), true) = (self.run, self.first_counted, start_epoch > 0) {
            let path = run.path("metrics.jsonl");
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let value = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|v| v.get("epoch").and_then(Value::as_u64) == Some(start_epoch as u64))
                .and_then(|v| v.get("running_acc").and_then(Value::as_f64))
                .unwrap_or(0.0);
            self.running = metrics::RunningAccuracy::starting_at(value);
        }
        Ok(())
    }

    fn after_epoch(
        &mut self,
        model: &Fcn,
        epoch: usize,
        last: bool,
        line: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        if let Some(first) = self.first_counted {
            if epoch >= first {
                let eval = model.valid();
                for (correct, n) in correct_per_batch(&eval, self.test, self.device)? {
                    self.running.update(correct as f64 / n as f64);
                }
            }
            line.insert("running_acc".into(), self.running.value().into());
        } else if self.opts.eval_every > 0 && epoch.is_multiple_of(self.opts.eval_every) && !last {
            line.insert(
                "test_acc".into(),
                accuracy(&model.valid(), self.test, self.device)?.into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{Progress, Silent};
    use ucr_data::SplitStats;

    /// `n` series of length 16 of two classes (a rising and a falling ramp) with noise from a
    /// fixed sequence.
    fn ramps(n: usize, seed: u32) -> Split {
        let length = 16;
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 - 0.5) * 1.5
        };
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let values = labels
            .iter()
            .flat_map(|&c| {
                (0..length)
                    .map(|t| if c == 0 { t as f32 / 8.0 - 1.0 } else { 1.0 - t as f32 / 8.0 })
                    .collect::<Vec<_>>()
            })
            .map(|v| v + noise())
            .collect();
        Split {
            values,
            labels,
            length,
            origin: "ramps".into(),
            stats: SplitStats {
                n,
                length_min: length,
                length_max: length,
                classes: 2,
                nan_values: 0,
            },
        }
    }

    fn running_accuracies(log: &str) -> Vec<f64> {
        log.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["running_acc"].as_f64().unwrap())
            .collect()
    }

    #[test]
    fn skipping_passes_of_negligible_weight_keeps_the_running_accuracy_to_the_tolerance() {
        // The running average over random batch accuracies, every pass vs the passes from the
        // first counted epoch on, at the reference's 1000 epochs and test splits of 1–40 batches.
        let mut state = 0x9e37_79b9_u32;
        for b in [1usize, 2, 3, 18, 40] {
            let accuracies: Vec<f64> = (0..1000 * b)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    0.5 + 0.5 * (state as f64 / u32::MAX as f64)
                })
                .collect();
            let first = cas_first_counted_epoch(1000, b, CAS_NEGLIGIBLE_WEIGHT);
            assert_eq!(
                first > 1,
                1000 * b > 1375,
                "{b} batches: skipped only when the run is long enough"
            );
            let (mut all, mut counted) =
                (metrics::RunningAccuracy::default(), metrics::RunningAccuracy::default());
            for (i, &a) in accuracies.iter().enumerate() {
                all.update(a);
                if i / b + 1 >= first {
                    counted.update(a);
                }
            }
            let diff = (all.value() - counted.value()).abs();
            assert!(
                diff < CAS_NEGLIGIBLE_WEIGHT,
                "{b} batches per epoch, first counted {first}: differs by {diff}"
            );
        }
        assert_eq!(
            cas_first_counted_epoch(1000, 3, 1e-6),
            542,
            "SonyAIBORobotSurface1: 601 test series"
        );
        assert_eq!(cas_first_counted_epoch(1000, 18, 1e-6), 924, "ECG5000: 4500 test series");
        assert_eq!(cas_first_counted_epoch(100, 3, 1e-6), 1, "short runs validate every epoch");
        assert_eq!(cas_first_counted_epoch(1000, 3, 0.0), 1);
    }

    #[test]
    fn skipped_passes_leave_training_alone_and_the_running_accuracy_as_the_formula_says() {
        let _rng = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
        let (train, test) = (ramps(8, 1), ramps(300, 2)); // 2 test batches per epoch
        let opts = FcnTrainConfig {
            epochs: 12,
            batch_size: 4,
            eval_every: 0,
            ..FcnTrainConfig::default()
        };
        let full = train_fcn_skipping(
            &train,
            &test,
            2,
            &opts,
            Some(0.0),
            &device,
            RunContext::in_memory(&mut Silent),
        )
        .unwrap();
        // Tolerance 0.9: passes followed by ≥ 11 batches (0.99^11 < 0.9) are skipped: epochs 1–6.
        let first = cas_first_counted_epoch(12, 2, 0.9);
        assert_eq!(first, 7);
        let skipped = train_fcn_skipping(
            &train,
            &test,
            2,
            &opts,
            Some(0.9),
            &device,
            RunContext::in_memory(&mut Silent),
        )
        .unwrap();
        assert_eq!(full.test_acc, skipped.test_acc, "training is the same");
        let (full_acc, skipped_acc) =
            (running_accuracies(&full.log), running_accuracies(&skipped.log));
        assert!(skipped_acc[..first - 1].iter().all(|&v| v == 0.0), "{skipped_acc:?}");
        assert!(full_acc[first - 2] > 0.0);
        // What the skipped passes had folded in, decayed by the batches after them.
        let decay = 0.99f64.powi(((12 - first + 1) * 2) as i32);
        let want = full.running_acc.unwrap() - decay * full_acc[first - 2];
        assert!(
            (skipped.running_acc.unwrap() - want).abs() < 1e-12,
            "{} vs {want}",
            skipped.running_acc.unwrap()
        );
    }

    /// The device's random generator is one per process: tests that compare two trainings
    /// seed and draw from it one at a time.
    static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_resumed_cas_classifier_ends_as_an_uninterrupted_one() {
        let _rng = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
        let (train, test) = (ramps(8, 3), ramps(300, 4));
        let opts = FcnTrainConfig {
            epochs: 9,
            batch_size: 4,
            eval_every: 0,
            checkpoint_every: 4,
            ..FcnTrainConfig::default()
        };
        let whole = train_fcn_skipping(
            &train,
            &test,
            2,
            &opts,
            Some(0.0),
            &device,
            RunContext::in_memory(&mut Silent),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        // An interruption after the checkpoint of epoch 8: a run of the same recipe stopped by
        // an error in its progress report during epoch 9.
        struct StopIn(usize);
        impl Progress for StopIn {
            fn step(&mut self, epoch: usize, _epochs: usize, _loss: f32) {
                assert!(epoch < self.0, "stopped");
            }
        }
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train_fcn_skipping(
                &train,
                &test,
                2,
                &opts,
                Some(0.0),
                &device,
                RunContext::in_folder(&run, true, &mut StopIn(9)),
            )
        }));
        assert!(stopped.is_err());
        assert_eq!(run.checkpoint().unwrap().unwrap().epoch, 8);
        let resumed = train_fcn_skipping(
            &train,
            &test,
            2,
            &opts,
            Some(0.0),
            &device,
            RunContext::in_folder(&run, true, &mut Silent),
        )
        .unwrap();
        assert_eq!(running_accuracies(&resumed.log), running_accuracies(&whole.log));
        assert_eq!(
            resumed.running_acc, whole.running_acc,
            "the running accuracy is carried over exactly"
        );
        assert_eq!(resumed.test_acc, whole.test_acc);
        assert_eq!(running_accuracies(&resumed.log), running_accuracies(&whole.log));
    }
}
