//! Stage 1: training the tokenizer (baseline VQ-VAE or NC-VQVAE) with the reference's recipe, and
//! evaluating it (docs/reference.md §8, §10.1).
//!
//! [`train_tokenizer`] takes the splits in memory (a [`UcrDataset`], which
//! [`UcrDataset::from_raw`] builds from any labelled series) and, optionally, a run folder to
//! checkpoint into and resume from. The recipe: AdamW on all parameters with PyTorch's settings,
//! the cosine learning rate with the reference's step counter (quirk Q13), shuffled batches with
//! the last partial batch kept, a fresh augmented view per series per epoch for NC-VQVAE.
//! Evaluation is on the full test split in eval mode (BatchNorm running statistics, no EMA update,
//! quirks Q1/Q2 sane); with `faithful_probes` the probes run in training mode as the reference's do
//! (quirk Q2 faithful).
//!
//! Reproducibility: the shuffle order depends only on (seed, epoch), the augmented views only on
//! (seed, epoch, batch), and the device is seeded once; so on the CPU backend a run resumed from a
//! checkpoint continues exactly as the uninterrupted run would.

use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ssl_losses::SslMethod;
use ucr_data::{Split, UcrDataset, epoch_batches};
use vqvae::{NcVqVae, NcVqVaeConfig, Stage1Losses, VqVae, VqVaeConfig, mse};

use crate::error::{Error, InvalidSetting, at_least, batch_norm_batch};
use crate::fit::{FitConfig, RunContext, StepLoss, Task, fit};
use crate::schedule::mix;
use crate::to_host;

/// The SSL branch of a stage-1 run: none (the baseline VQ-VAE) or one of NC-VQVAE's methods.
/// Written `none`, `barlow-twins`, `vibcreg` (configs, the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslChoice {
    /// The baseline VQ-VAE (no SSL branch).
    None,
    /// NC-VQVAE with Barlow Twins.
    BarlowTwins,
    /// NC-VQVAE with VIbCReg.
    Vibcreg,
}

impl SslChoice {
    /// Every choice, in the order of the thesis' tables.
    pub const ALL: [SslChoice; 3] = [SslChoice::None, SslChoice::BarlowTwins, SslChoice::Vibcreg];

    /// The SSL method, `None` for the baseline.
    pub fn method(self) -> Option<SslMethod> {
        match self {
            SslChoice::None => None,
            SslChoice::BarlowTwins => Some(SslMethod::BarlowTwins),
            SslChoice::Vibcreg => Some(SslMethod::Vibcreg),
        }
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SslChoice::None => "none",
            SslChoice::BarlowTwins => "barlow-twins",
            SslChoice::Vibcreg => "vibcreg",
        }
    }
}

impl std::fmt::Display for SslChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SslChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SslChoice::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown SSL branch `{s}` (none, barlow-twins or vibcreg)"))
    }
}

/// The recipe of a stage-1 run. Defaults ([`Default`]) are the thesis settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Config {
    /// The SSL branch.
    pub ssl: SslChoice,
    /// The augmentation recipe (NC-VQVAE only).
    pub aug: augment::Recipe,
    /// Training epochs. Thesis: 1000.
    pub epochs: usize,
    /// Training batch size. Thesis: 128.
    pub batch_size: usize,
    /// Seed of the device, the shuffling and the augmentations.
    pub seed: u64,
    /// AdamW learning rate (peak of the cosine schedule). Thesis: 1e-3.
    pub lr: f64,
    /// AdamW decoupled weight decay, on all parameters. Reference code: 1e-3 (quirk Q14).
    pub weight_decay: f64,
    /// AdamW β₁. PyTorch default: 0.9.
    pub beta1: f64,
    /// AdamW β₂. PyTorch default: 0.999.
    pub beta2: f64,
    /// AdamW ε. PyTorch default: 1e-8 (Burn's default is 1e-5).
    pub epsilon: f64,
    /// With a run folder: a checkpoint every this many epochs (and always at the end).
    pub checkpoint_every: usize,
    /// Run the probes every this many epochs (0: only at the end).
    pub probe_every: usize,
    /// Reproduce quirk Q3 (zero the last `L mod 8` samples of every augmented view).
    pub faithful_aug_zeros: bool,
    /// Reproduce quirk Q2: probe with the tokenizer in training mode (BatchNorm batch statistics
    /// and running-stat updates, EMA codebook updates on the train *and test* encodings), before
    /// the first epoch, at every probe epoch and before saving, so the probes change the model.
    /// Default: eval-mode probes that leave the model untouched.
    #[serde(default)]
    pub faithful_probes: bool,
    /// Projector width. Thesis: 4096.
    pub projector_dim: usize,
}

impl Default for Stage1Config {
    fn default() -> Self {
        Self {
            ssl: SslChoice::None,
            aug: augment::Recipe::Slice,
            epochs: 1000,
            batch_size: 128,
            seed: 1,
            lr: 1e-3,
            weight_decay: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            checkpoint_every: 10,
            probe_every: 0,
            faithful_aug_zeros: false,
            faithful_probes: false,
            projector_dim: 4096,
        }
    }
}

impl Stage1Config {
    /// The thesis settings for the SSL branch `ssl` (augmentation slice-and-shuffle).
    pub fn new(ssl: SslChoice) -> Self {
        Self { ssl, ..Self::default() }
    }

    /// Checks the values that would otherwise fail deep inside training; the message names the
    /// field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least("epochs", self.epochs, 1)?;
        batch_norm_batch(self.batch_size)?;
        at_least("checkpoint_every", self.checkpoint_every, 1)?;
        crate::adamw::check_adamw(
            self.lr,
            self.weight_decay,
            self.beta1,
            self.beta2,
            self.epsilon,
        )?;
        at_least("projector_dim", self.projector_dim, 1)?;
        if let Some(method) = self.ssl.method() {
            ssl_losses::SslHeadConfig::new(method)
                .with_hidden_dim(self.projector_dim)
                .check()
                .map_err(|e| {
                    InvalidSetting::new("projector_dim", &e.to_string(), self.projector_dim)
                })?;
        }
        Ok(())
    }

    /// The optimiser of this recipe: PyTorch's AdamW with these settings.
    pub fn optimizer(&self) -> ModuleOptimizer {
        crate::adamw(self.beta1, self.beta2, self.epsilon, self.weight_decay)
    }
}

#[allow(clippy::large_enum_variant)] // one model per run; boxing would complicate the derived Module
/// The stage-1 model: the baseline or NC-VQVAE.
#[derive(Module, Debug)]
pub enum Stage1Model {
    /// Plain VQ-VAE.
    Baseline(VqVae),
    /// VQ-VAE with an SSL branch.
    NcVqVae(NcVqVae),
}

impl Stage1Model {
    /// Builds the model of `config` for series of `length`.
    pub fn new(
        config: &Stage1Config,
        length: usize,
        device: &Device,
    ) -> Result<Self, vqvae::Error> {
        let tokenizer = VqVaeConfig::new(length);
        Ok(match config.ssl.method() {
            None => Stage1Model::Baseline(tokenizer.init(device)?),
            Some(method) => Stage1Model::NcVqVae(
                NcVqVaeConfig::new(tokenizer, method)
                    .with_projector_dim(config.projector_dim)
                    .init(device)?,
            ),
        })
    }

    /// The tokenizer.
    pub fn vqvae(&self) -> &VqVae {
        match self {
            Stage1Model::Baseline(m) => m,
            Stage1Model::NcVqVae(m) => m.vqvae(),
        }
    }
}

const TERMS: [&str; 8] = [
    "loss",
    "recon_time",
    "recon_timefreq",
    "commitment",
    "aug_recon_time",
    "aug_recon_timefreq",
    "ssl",
    "perplexity",
];

fn scalars(l: &Stage1Losses) -> [f32; 8] {
    [
        &l.total,
        &l.recon_time,
        &l.recon_timefreq,
        &l.commitment,
        &l.aug_recon_time,
        &l.aug_recon_timefreq,
        &l.ssl,
        &l.perplexity,
    ]
    .map(|t| t.clone().into_scalar::<f32>())
}

/// Evaluation of a (non-autodiff) tokenizer on the test split and the probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Test time-domain MSE.
    pub recon_time: f64,
    /// Test STFT-domain MSE.
    pub recon_timefreq: f64,
    /// Test token perplexity.
    pub perplexity: f64,
    /// KNN probe accuracy.
    pub knn: f64,
    /// SVM probe accuracy.
    pub svm: f64,
}

/// Pooled `z_q` features of a whole split, `(n, D)` row-major (batches of 128, in order).
fn features(model: &VqVae, split: &Split, device: &Device) -> Result<Vec<f32>, Error> {
    let mut out = Vec::new();
    for idx in epoch_batches(split.n(), 128, false, 0, 0)? {
        let batch = split.batch(&idx, device);
        out.extend(to_host::<f32, 2, _>(model.pooled_features(batch.x))?);
    }
    Ok(out)
}

/// What a tokenizer makes of series: per series its token grid (frequency-major, `grid = [5, W']`)
/// and the pooled feature vector the probes use (docs/reference.md §10.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Series encoded.
    pub n: usize,
    /// `[5, W']`: token rows (frequency) and columns (time) per series.
    pub grid: [usize; 2],
    /// `n · 5 · W'` token ids, series by series, row-major.
    pub tokens: Vec<i64>,
    /// Width of a feature vector (the codebook dimension, 64).
    pub feature_dim: usize,
    /// `n · feature_dim` features, series by series.
    pub features: Vec<f32>,
}

/// Encodes every series of `split` (already scaled as the tokenizer's training data was, e.g. by
/// the training set's `Normalizer`) with `model` in eval mode, in batches of 128.
pub fn encode(model: &VqVae, split: &Split, device: &Device) -> Result<Encoded, Error> {
    let (mut tokens, mut features) = (Vec::new(), Vec::new());
    let mut n_tokens = 0;
    for idx in epoch_batches(split.n(), 128, false, 0, 0)? {
        let x = split.batch(&idx, device).x;
        let t = model.tokens(x.clone());
        n_tokens = t.dims()[1];
        tokens.extend(to_host::<i64, 2, _>(t)?);
        features.extend(to_host::<f32, 2, _>(model.pooled_features(x))?);
    }
    let feature_dim = model.quantizer().codebook().dims()[1];
    Ok(Encoded { n: split.n(), grid: [5, n_tokens / 5], tokens, feature_dim, features })
}

/// Reconstruction errors, token perplexity and probes of a tokenizer in eval mode (docs/reference.md §10.1 with
/// quirk Q2 sane: BatchNorm running statistics, no EMA update). Without labels
/// ([`UcrDataset::labelled`]) the probe fields are NaN (`null` in JSON).
pub fn evaluate(model: &VqVae, data: &UcrDataset, device: &Device) -> Result<Evaluation, Error> {
    let mut eval = reconstruction(model, data, device)?;
    if !data.labelled() {
        return Ok(eval);
    }
    let dim = model.quantizer().codebook().dims()[1];
    let probe = metrics::probe_accuracy(
        &features(model, &data.train, device)?,
        &data.train.labels,
        &features(model, &data.test, device)?,
        &data.test.labels,
        dim,
    )?;
    (eval.knn, eval.svm) = (probe.knn, probe.svm);
    Ok(eval)
}

/// Test reconstruction errors and token perplexity in eval mode; the probe fields are NaN.
fn reconstruction(model: &VqVae, data: &UcrDataset, device: &Device) -> Result<Evaluation, Error> {
    let (mut time, mut tf) = (0.0, 0.0);
    let mut usage = vec![0usize; model.quantizer().codebook_size()];
    for idx in epoch_batches(data.test.n(), 128, false, 0, 0)? {
        let batch = data.test.batch(&idx, device);
        let rec = model.forward(batch.x.clone());
        time += mse(batch.x, rec.x_hat).into_scalar::<f32>() as f64 * idx.len() as f64;
        tf += mse(rec.u, rec.u_hat).into_scalar::<f32>() as f64 * idx.len() as f64;
        for t in to_host::<i64, 2, _>(rec.quantized.tokens)? {
            usage[t as usize] += 1;
        }
    }
    let n = data.test.n() as f64;
    let total: usize = usage.iter().sum();
    let entropy: f64 = usage
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64 / total as f64)
        .map(|p| -p * p.ln())
        .sum();
    Ok(Evaluation {
        recon_time: time / n,
        recon_timefreq: tf / n,
        perplexity: entropy.exp(),
        knn: f64::NAN,
        svm: f64::NAN,
    })
}

/// The probes as the reference runs them (quirk Q2, faithful): `model` lives on the training
/// (autodiff) device, so every forward pass is a training one. The train split is encoded first,
/// shuffled in batches of `batch_size` like a training epoch, then the test split in order in
/// batches of 128; BatchNorm normalises with each batch's statistics and updates its running
/// statistics, and the EMA codebook moves towards every batch, test batches included. The model
/// keeps those updates.
pub fn train_mode_probes(
    model: &VqVae,
    data: &UcrDataset,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<metrics::ProbeAccuracy, Error> {
    let (mut train, mut train_y) = (Vec::new(), Vec::new());
    for idx in epoch_batches(data.train.n(), batch_size, true, seed, 0)? {
        let batch = data.train.batch(&idx, device);
        train.extend(to_host::<f32, 2, _>(model.pooled_features(batch.x).detach())?);
        train_y.extend(idx.iter().map(|&i| data.train.labels[i]));
    }
    let test = features(model, &data.test, device)?;
    let dim = model.quantizer().codebook().dims()[1];
    Ok(metrics::probe_accuracy(&train, &train_y, &test, &data.test.labels, dim)?)
}

/// A trained tokenizer: the model in eval mode on the plain device, its final evaluation, the
/// training wall time (earlier segments of a resumed run and the final evaluation included) and the
/// metrics lines of the epochs trained by this call.
pub struct TrainedTokenizer {
    /// The tokenizer (eval mode).
    pub model: Stage1Model,
    /// Test reconstruction, perplexity and probes after the last epoch.
    pub evaluation: Evaluation,
    /// Wall time, seconds.
    pub seconds: f64,
    /// One JSON object per epoch trained by this call.
    pub lines: Vec<Value>,
}

/// Trains a stage-1 tokenizer on `data.train` as `config` says and evaluates it on `data.test`.
/// `device` is a plain device (autodiff is added here; it is seeded with `config.seed`). With
/// `run`, the epochs are logged to its `metrics.jsonl` and checkpointed there, and with `resume`
/// training continues from its latest checkpoint.
pub fn train_tokenizer(
    config: &Stage1Config,
    data: &UcrDataset,
    device: &Device,
    ctx: RunContext<'_>,
) -> Result<TrainedTokenizer, Error> {
    config.validate()?;
    let train_device = device.clone().autodiff();
    train_device.seed(config.seed);
    let model = Stage1Model::new(config, data.length(), &train_device)
        .map_err(|source| Error::Model { dataset: data.name.clone(), source })?;
    let fit_config = FitConfig::new(config.epochs, config.batch_size, config.lr)
        .with_seed(config.seed)
        .with_checkpoint_every(config.checkpoint_every);
    let mut task = Stage1Task {
        config,
        data,
        augmenter: augment::Augmenter::new(config.aug)
            .with_faithful_stft_zeros(config.faithful_aug_zeros),
        device,
        train_device: &train_device,
        initial_probe: None,
    };
    let fitted = fit(&fit_config, model, config.optimizer(), data.train.n(), &mut task, ctx)?;
    let eval_start = Instant::now();
    let evaluation =
        evaluate_run(&fitted.model, config, data, config.epochs, device, &train_device)?;
    Ok(TrainedTokenizer {
        model: fitted.model.valid(),
        evaluation,
        seconds: fitted.seconds + eval_start.elapsed().as_secs_f64(),
        lines: fitted.lines,
    })
}

/// Stage 1 inside the fit loop: the tokenizer's losses per batch (NC-VQVAE with a fresh augmented
/// view per series, seeded by `(seed, epoch, batch)`), probes every `probe_every` epochs.
struct Stage1Task<'a> {
    config: &'a Stage1Config,
    data: &'a UcrDataset,
    augmenter: augment::Augmenter,
    device: &'a Device,
    train_device: &'a Device,
    initial_probe: Option<metrics::ProbeAccuracy>,
}

impl Task<Stage1Model> for Stage1Task<'_> {
    type Error = Error;

    fn terms(&self) -> &'static [&'static str] {
        &TERMS
    }

    fn begin(&mut self, model: &Stage1Model, start_epoch: usize) -> Result<(), Error> {
        // Quirk Q2 faithful: the reference probes once before training, which moves the EMA
        // codebook and the BatchNorm statistics towards the data (a data-dependent initialisation).
        if self.config.faithful_probes && start_epoch == 0 && self.data.labelled() {
            self.initial_probe = Some(train_mode_probes(
                model.vqvae(),
                self.data,
                self.config.batch_size,
                probe_seed(self.config, 0),
                self.train_device,
            )?);
        }
        Ok(())
    }

    fn step(
        &mut self,
        model: &Stage1Model,
        epoch: usize,
        b: usize,
        idx: &[usize],
    ) -> Result<StepLoss, Error> {
        let batch = self.data.train.batch(idx, self.train_device);
        let losses = match model {
            Stage1Model::Baseline(m) => m.losses(batch.x),
            Stage1Model::NcVqVae(m) => {
                let length = self.data.length();
                let raw: Vec<f32> =
                    idx.iter().flat_map(|&i| self.data.train.series(i).iter().copied()).collect();
                let views = self.augmenter.apply_batch(
                    &raw,
                    length,
                    mix(self.config.seed, epoch as u64, b as u64),
                );
                let x_aug = Tensor::<3>::from_data(
                    TensorData::new(views, [idx.len(), 1, length]),
                    self.train_device,
                );
                m.losses(batch.x, x_aug)
            }
        };
        let values = scalars(&losses).to_vec();
        Ok(StepLoss { loss: losses.total, values })
    }

    fn after_epoch(
        &mut self,
        model: &Stage1Model,
        epoch: usize,
        last: bool,
        line: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        if let Some(p) = self.initial_probe.take() {
            line.insert("initial_probe_knn_acc".into(), p.knn.into());
            line.insert("initial_probe_svm_acc".into(), p.svm.into());
        }
        let probe_every = self.config.probe_every;
        if probe_every > 0 && epoch.is_multiple_of(probe_every) && !last {
            let eval =
                evaluate_run(model, self.config, self.data, epoch, self.device, self.train_device)?;
            line.insert("probe_knn_acc".into(), eval.knn.into());
            line.insert("probe_svm_acc".into(), eval.svm.into());
            line.insert("test_recon_time".into(), eval.recon_time.into());
        }
        Ok(())
    }
}

/// The shuffling seed of the faithful probe pass after `epoch` epochs.
fn probe_seed(config: &Stage1Config, epoch: usize) -> u64 {
    mix(config.seed, 0x0050_524f_4245, epoch as u64)
}

/// The evaluation of the training model after `epoch` epochs: reconstruction and perplexity in
/// eval mode, then the probes in eval mode or, with `faithful_probes`, in training mode on
/// `train_device` (which updates the model, quirk Q2).
fn evaluate_run(
    model: &Stage1Model,
    config: &Stage1Config,
    data: &UcrDataset,
    epoch: usize,
    device: &Device,
    train_device: &Device,
) -> Result<Evaluation, Error> {
    if !config.faithful_probes {
        return evaluate(model.valid().vqvae(), data, device);
    }
    let mut eval = reconstruction(model.valid().vqvae(), data, device)?;
    if !data.labelled() {
        return Ok(eval);
    }
    let probe = train_mode_probes(
        model.vqvae(),
        data,
        config.batch_size,
        probe_seed(config, epoch),
        train_device,
    )?;
    (eval.knn, eval.svm) = (probe.knn, probe.svm);
    Ok(eval)
}

#[cfg(test)]
mod tests {
    use super::*;

    mod settings {
        use proptest::prelude::*;

        use super::super::*;

        /// `good` most of the time (so that about a sixth of the cases pass every check and
        /// train), else one of `bad`.
        fn pick<T: Clone + std::fmt::Debug + 'static>(
            good: T,
            bad: &[T],
        ) -> impl Strategy<Value = T> {
            prop_oneof![6 => Just(good), 1 => prop::sample::select(bad.to_vec())]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

            /// Every setting `validate` lets through trains (one epoch on a toy dataset) without a
            /// panic; every one it refuses is a one-line message naming the field.
            #[test]
            fn validated_settings_train_and_refused_ones_name_the_field(
                ssl in prop::sample::select(SslChoice::ALL.to_vec()),
                projector_dim in prop_oneof![3 => prop::sample::select(vec![64usize, 128]), 1 => 0usize..200],
                batch_size in pick(4usize, &[0, 1, 2, 3, 5]),
                epochs in pick(1usize, &[0]),
                lr in pick(1e-3, &[0.0, -1.0, f64::NAN, f64::INFINITY]),
                weight_decay in pick(1e-3, &[0.0, -1e-3, f64::NAN]),
                beta1 in pick(0.9, &[0.0, 1.0, -0.1, f64::NAN]),
                beta2 in pick(0.999, &[1.0, 1.5]),
                epsilon in pick(1e-8, &[0.0, -1e-8, f64::INFINITY]),
                checkpoint_every in pick(1usize, &[0, 2]),
            ) {
                let config = Stage1Config { ssl, projector_dim, batch_size, epochs, lr, weight_decay, beta1, beta2, epsilon, checkpoint_every, ..Stage1Config::default() };
                match config.validate() {
                    Ok(()) => {
                        let data = super::toy(1.0);
                        match train_tokenizer(&config, &data, &Device::flex(), RunContext::in_memory(&mut crate::fit::Silent)) {
                            Ok(_) | Err(Error::NonFinite { .. }) => {}
                            Err(e) => prop_assert!(false, "{config:?} passed validate but failed: {e}"),
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        let fields = ["epochs", "batch_size", "checkpoint_every", "lr", "weight_decay", "beta1", "beta2", "epsilon", "projector_dim"];
                        prop_assert!(!message.contains('\n') && fields.iter().any(|f| message.contains(f)), "{message}");
                    }
                }
            }
        }
    }

    /// A toy two-class dataset of length 65: sines (class 1) and ramps (class 2); `test_gain`
    /// scales the test series.
    fn toy(test_gain: f32) -> UcrDataset {
        let split = |n: usize, gain: f32| {
            let mut text = String::new();
            for i in 0..n {
                let class = 1 + i % 2;
                text.push_str(&class.to_string());
                for t in 0..65 {
                    let v = if class == 1 {
                        (t as f32 * 0.3 + i as f32).sin()
                    } else {
                        t as f32 / 65.0 - 0.5 + 0.05 * i as f32
                    };
                    text.push_str(&format!("\t{}", gain * v));
                }
                text.push('\n');
            }
            ucr_data::parse(&text, "toy").unwrap()
        };
        UcrDataset::from_raw("toy", split(12, 1.0), split(10, test_gain)).unwrap()
    }

    #[test]
    fn optimiser_settings_pytorch_refuses_are_refused_before_training() {
        let with = |f: fn(&mut Stage1Config)| {
            let mut c = Stage1Config::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(with(|c| c.beta1 = 1.0).contains("beta1 must be in [0, 1), got 1"));
        assert!(with(|c| c.beta2 = -0.5).contains("beta2 must be in [0, 1)"));
        assert!(with(|c| c.epsilon = 0.0).contains("epsilon must be positive"));
        assert!(
            with(|c| c.weight_decay = f64::NAN).contains("weight_decay must be zero or positive")
        );
        assert!(with(|c| c.lr = f64::INFINITY).contains("lr must be positive"));
        assert!(Stage1Config::default().validate().is_ok());
    }

    fn codebook(model: &Stage1Model) -> Vec<f32> {
        model.valid().vqvae().quantizer().codebook().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn faithful_probes_update_the_tokenizer_with_train_and_test_batches() {
        let device = Device::flex();
        let train_device = device.clone().autodiff();
        // Copies of one initial model, each with its own EMA and BatchNorm state (re-seeding the
        // global CPU generator instead would race with tests running alongside).
        train_device.seed(5);
        let Stage1Model::Baseline(initial) =
            Stage1Model::new(&Stage1Config::default(), 65, &train_device).unwrap()
        else {
            unreachable!("the default config is the baseline")
        };
        let fresh = || {
            let blank = VqVaeConfig::new(65).init(&train_device).unwrap();
            Stage1Model::Baseline(blank.load_record(initial.clone().into_record()))
        };
        let data = toy(1.0);

        // Eval-mode probes (quirk Q2 sane) leave the model as it was.
        let model = fresh();
        let before = codebook(&model);
        let eval = evaluate(model.valid().vqvae(), &data, &device).unwrap();
        assert!((0.0..=1.0).contains(&eval.knn) && (0.0..=1.0).contains(&eval.svm));
        assert_eq!(codebook(&model), before);

        // Train-mode probes (faithful) move the EMA codebook, deterministically.
        let probe = train_mode_probes(model.vqvae(), &data, 4, 9, &train_device).unwrap();
        assert!((0.0..=1.0).contains(&probe.knn) && (0.0..=1.0).contains(&probe.svm));
        let after = codebook(&model);
        assert_ne!(after, before, "the EMA codebook moved");
        let again = fresh();
        assert_eq!(codebook(&again), before, "an independent copy of the initial model");
        assert_eq!(train_mode_probes(again.vqvae(), &data, 4, 9, &train_device).unwrap(), probe);
        assert_eq!(codebook(&again), after);

        // The test split enters the codebook too (the reference's leak).
        let other = fresh();
        train_mode_probes(other.vqvae(), &toy(3.0), 4, 9, &train_device).unwrap();
        assert_ne!(codebook(&other), after, "test series changed the codebook");
    }
}
