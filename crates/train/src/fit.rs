//! The one training loop of every model here (stage-1 tokenizer, stage-2 prior, FCN classifier).
//!
//! Per epoch: the training split shuffled by `(seed, epoch)` into batches (the last partial one
//! kept), one optimiser step per batch at the reference's cosine learning rate, the NaN guard on
//! every term a step reports, then one JSON line of the epoch's mean terms plus whatever the task
//! adds (probes, test losses), and a checkpoint every `checkpoint_every` epochs and after the last.
//! What differs between models is a [`Task`]: how a batch becomes a loss and what is measured after
//! an epoch. Progress goes to a [`Progress`] the caller implements (the CLI draws a bar).
//!
//! With a run folder, the epochs' lines go to its `metrics.jsonl` and a resumed run restarts from
//! the latest checkpoint (model, optimiser state, step counter, wall time). Because the shuffle
//! depends only on `(seed, epoch)` and a task's random draws only on `(seed, epoch, batch)`
//! ([`crate::mix`]), a resumed run on the CPU backend continues exactly as the uninterrupted one.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde_json::{Map, Value};
use ucr_data::epoch_batches;

use crate::error::{Error, InvalidSetting, at_least};
use crate::persist::{restore, save_checkpoint};
use crate::run_dir::RunDir;
use crate::schedule::CosineScheduleConfig;

/// The loop's settings. The learning rate is the schedule's peak; the optimiser is given to
/// [`fit`] ready-made (e.g. [`FusedAdamWConfig`](crate::FusedAdamWConfig)).
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    /// Training epochs.
    pub epochs: usize,
    /// Batch size (the last partial batch of an epoch is kept).
    pub batch_size: usize,
    /// Seed of the shuffling.
    pub seed: u64,
    /// Peak learning rate of the cosine schedule.
    pub lr: f64,
    /// With a run folder: a checkpoint every this many epochs, and after the last.
    pub checkpoint_every: usize,
    /// File name of the model inside a checkpoint folder (`model.bpk`, `prior.bpk`).
    pub model_file: String,
}

impl FitConfig {
    /// `epochs` epochs of batches of `batch_size` at peak learning rate `lr`; seed 1, a
    /// checkpoint every 10 epochs into `model.bpk`.
    pub fn new(epochs: usize, batch_size: usize, lr: f64) -> Self {
        Self {
            epochs,
            batch_size,
            seed: 1,
            lr,
            checkpoint_every: 10,
            model_file: "model.bpk".into(),
        }
    }

    /// With this shuffling seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// With a checkpoint every `epochs` epochs.
    pub fn with_checkpoint_every(mut self, epochs: usize) -> Self {
        self.checkpoint_every = epochs;
        self
    }

    /// With this model file name in the checkpoints.
    pub fn with_model_file(mut self, name: &str) -> Self {
        self.model_file = name.into();
        self
    }

    /// Checks the settings the loop relies on.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least("epochs", self.epochs, 1)?;
        at_least("batch_size", self.batch_size, 1)?;
        at_least("checkpoint_every", self.checkpoint_every, 1)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(InvalidSetting::new("lr", "positive", self.lr));
        }
        Ok(())
    }
}

/// One training step's result: the loss to minimise and the values of the task's
/// [`terms`](Task::terms) (the loss first) for the NaN guard and the epoch means.
pub struct StepLoss {
    /// The loss the gradients are taken of.
    pub loss: Tensor<1>,
    /// One value per term, in the order of [`Task::terms`].
    pub values: Vec<f32>,
}

impl StepLoss {
    /// A step that reports only its loss.
    pub fn of(loss: Tensor<1>) -> Self {
        let value = loss.clone().into_scalar::<f32>();
        Self { loss, values: vec![value] }
    }
}

/// What one model's training does inside [`fit`].
pub trait Task<M> {
    /// What the task's methods can fail with (the loop's own errors convert into it).
    type Error: From<Error>;

    /// The names of the values a step reports, the minimised loss first; they become the keys of
    /// the epoch means in the metrics lines and name the term in a divergence error. Default: one
    /// value, `loss`.
    fn terms(&self) -> &'static [&'static str] {
        &["loss"]
    }

    /// Called once before the first epoch of this call (`start_epoch` > 0 when resumed).
    fn begin(&mut self, _model: &M, _start_epoch: usize) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The loss of batch number `batch` (the training-split indices `idx`) of epoch `epoch`
    /// (0-based).
    fn step(
        &mut self,
        model: &M,
        epoch: usize,
        batch: usize,
        idx: &[usize],
    ) -> Result<StepLoss, Self::Error>;

    /// After epoch `epoch` (1-based; `last` for the final one): adds measurements to the epoch's
    /// metrics line.
    fn after_epoch(
        &mut self,
        _model: &M,
        _epoch: usize,
        _last: bool,
        _line: &mut Map<String, Value>,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Where the loop reports progress (steps, not epochs). All methods default to doing nothing.
pub trait Progress {
    /// Training of `total` steps starts, `done` of them already taken (a resumed run).
    fn start(&mut self, _total: u64, _done: u64) {}
    /// A step of epoch `epoch` (1-based) of `epochs` finished with loss `loss`.
    fn step(&mut self, _epoch: usize, _epochs: usize, _loss: f32) {}
    /// Training ended: `ok` is false when it stopped on an error.
    fn finish(&mut self, _ok: bool) {}
    /// A phase outside the steps started or ended (e.g. sampling before the CAS classifier).
    fn note(&mut self, _text: &str) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// What [`fit`] returns.
pub struct Fitted<M> {
    /// The trained model (still on the training device: call `valid()` for evaluation).
    pub model: M,
    /// The optimiser, with its state.
    pub optim: ModuleOptimizer,
    /// Scheduler steps taken (the reference's counter, one extra per epoch).
    pub step: usize,
    /// Training wall time in seconds, earlier segments of a resumed run included.
    pub seconds: f64,
    /// The metrics lines of the epochs this call trained.
    pub lines: Vec<Value>,
}

/// Where a training call keeps its files and shows its progress; every trainer here takes one.
pub struct RunContext<'a> {
    /// The run folder: epochs logged to its `metrics.jsonl`, checkpoints written there. `None`
    /// trains in memory only.
    pub run: Option<&'a RunDir>,
    /// Continue from the run folder's latest checkpoint (from scratch if it has none).
    pub resume: bool,
    /// Where the steps and the end are reported.
    pub progress: &'a mut dyn Progress,
}

impl<'a> RunContext<'a> {
    /// Training in memory, reporting to `progress`.
    pub fn in_memory(progress: &'a mut dyn Progress) -> Self {
        Self { run: None, resume: false, progress }
    }

    /// Training in the folder `run`, continuing from its latest checkpoint when `resume`.
    pub fn in_folder(run: &'a RunDir, resume: bool, progress: &'a mut dyn Progress) -> Self {
        Self { run: Some(run), resume, progress }
    }
}

/// Trains `model` with `optim` on the `n_train` series of a training split as `task` says (see
/// the module docs), in the run folder and with the progress of `ctx`.
pub fn fit<M: Module, T: Task<M>>(
    config: &FitConfig,
    model: M,
    optim: ModuleOptimizer,
    n_train: usize,
    task: &mut T,
    ctx: RunContext<'_>,
) -> Result<Fitted<M>, T::Error> {
    let RunContext { run, resume, progress } = ctx;
    config.validate().map_err(Error::from)?;
    let (mut model, mut optim, start_epoch, mut step, mut wall) = match run {
        Some(run) => restore(run, resume, &config.model_file, model, optim)?,
        None => (model, optim, 0, 0, 0.0),
    };
    let steps_per_epoch =
        epoch_batches(n_train, config.batch_size, false, 0, 0).map_err(Error::from)?.len();
    let schedule =
        CosineScheduleConfig::new(config.epochs, steps_per_epoch).with_lr(config.lr).init();
    let terms = task.terms();
    progress
        .start((config.epochs * steps_per_epoch) as u64, (start_epoch * steps_per_epoch) as u64);
    let mut segment_start = Instant::now();
    let mut lines = Vec::new();
    // Reports the end to `progress` also when a step fails (`?` below).
    let mut bar = Finish { progress, ok: false };
    task.begin(&model, start_epoch)?;
    // Where the steps run (kernels::spinning acts on the flex CPU backend only).
    let device = model.devices().into_iter().next().unwrap_or_default();
    for epoch in start_epoch..config.epochs {
        let epoch_start = Instant::now();
        let (mut sums, mut batches) = (vec![0.0f64; terms.len()], 0usize);
        for (b, idx) in epoch_batches(n_train, config.batch_size, true, config.seed, epoch as u64)
            .map_err(Error::from)?
            .into_iter()
            .enumerate()
        {
            step += 1;
            // The step with the pool's idle workers spinning, not asleep, between its ops
            // (kernels::spinning: ready the moment an op splits its work).
            let (next, values) = kernels::spinning(&device, || -> Result<_, T::Error> {
                let StepLoss { loss, values } = task.step(&model, epoch, b, &idx)?;
                if let Some((k, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::NonFinite {
                        term: terms.get(k).copied().unwrap_or("loss"),
                        value: *v,
                        epoch: epoch + 1,
                        step,
                    }
                    .into());
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                Ok((optim.step(schedule.lr_at(step), model, grads), values))
            })?;
            model = next;
            batches += 1;
            for (s, v) in sums.iter_mut().zip(&values) {
                *s += *v as f64;
            }
            bar.progress.step(
                epoch + 1,
                config.epochs,
                values.first().copied().unwrap_or(f32::NAN),
            );
        }
        step += 1; // the framework's extra scheduler step at each epoch end (quirk Q13)
        let last = epoch + 1 == config.epochs;
        let mut line = Map::new();
        line.insert("epoch".into(), (epoch + 1).into());
        line.insert("step".into(), step.into());
        for (name, sum) in terms.iter().zip(&sums) {
            line.insert((*name).into(), (sum / batches.max(1) as f64).into());
        }
        line.insert("lr".into(), schedule.lr_at(step).into());
        task.after_epoch(&model, epoch + 1, last, &mut line)?;
        line.insert("seconds".into(), epoch_start.elapsed().as_secs_f64().into());
        let line = Value::Object(line);
        if let Some(run) = run {
            run.append_metrics(&line).map_err(Error::from)?;
            if (epoch + 1) % config.checkpoint_every == 0 || last {
                wall += segment_start.elapsed().as_secs_f64();
                segment_start = Instant::now();
                // Burn's RunningState (BatchNorm statistics, an EMA codebook) keeps its latest
                // update pending until it is synced, and recording reads the synced value:
                // `valid()` syncs every running state in place, so the checkpoint holds the
                // current buffers.
                let _ = model.valid();
                save_checkpoint(
                    run,
                    &config.model_file,
                    model.clone(),
                    &optim,
                    (epoch + 1, step, wall),
                )?;
            }
        }
        lines.push(line);
    }
    bar.ok = true;
    Ok(Fitted { model, optim, step, seconds: wall + segment_start.elapsed().as_secs_f64(), lines })
}

/// Calls [`Progress::finish`] when dropped, with `ok` as set by then.
struct Finish<'a> {
    progress: &'a mut dyn Progress,
    ok: bool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.progress.finish(self.ok);
    }
}
