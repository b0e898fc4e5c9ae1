//! Stage 1: training the tokenizer (baseline VQ-VAE or NC-VQVAE), reference spec §8.
//!
//! The loop follows the reference: AdamW on all parameters (settings written out explicitly, Burn's
//! defaults differ from PyTorch's), a cosine learning rate stepped before every optimiser step and
//! once more at the end of every epoch (spec §8.1, quirk Q13), shuffled batches with the last partial
//! batch kept, a fresh augmented view per series per epoch for NC-VQVAE. Evaluation is on the full
//! test split in eval mode (BatchNorm running statistics, no EMA, quirks Q1/Q2 sane); with
//! `faithful_probes` the probes run in training mode as the reference's do (quirk Q2 faithful).
//!
//! Reproducibility: the shuffle order depends only on (seed, epoch), the augmented views only on
//! (seed, epoch, batch), and the device is seeded once; so on the CPU backend a run resumed from a
//! checkpoint continues exactly as the uninterrupted run would.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor, TensorData};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ssl_losses::SslMethod;
use ucr_data::{Resolver, Split, UcrDataset, epoch_batches};
use vqvae::{NcVqVae, NcVqVaeConfig, Stage1Losses, VqVae, VqVaeConfig, mse};

use crate::run_dir::{CheckpointInfo, RunDir, RunDirError, io, write_atomic, write_json};

/// The SSL branch of a stage-1 run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    /// The SSL method, `None` for the baseline.
    pub fn method(self) -> Option<SslMethod> {
        match self {
            SslChoice::None => None,
            SslChoice::BarlowTwins => Some(SslMethod::BarlowTwins),
            SslChoice::Vibcreg => Some(SslMethod::Vibcreg),
        }
    }
}

/// The augmentation recipe of an NC-VQVAE run (ignored by the baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AugChoice {
    /// Window warp then amplitude resize.
    Warp,
    /// Slice-and-shuffle.
    Slice,
    /// Gaussian noise.
    Gauss,
}

impl From<AugChoice> for augment::Recipe {
    fn from(a: AugChoice) -> Self {
        match a {
            AugChoice::Warp => augment::Recipe::Warp,
            AugChoice::Slice => augment::Recipe::Slice,
            AugChoice::Gauss => augment::Recipe::Gauss,
        }
    }
}

/// Everything that defines a stage-1 run; written to `config.toml`. Defaults are the thesis settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Config {
    /// Dataset name or path (as given on the command line).
    pub dataset: String,
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
    /// The SSL branch.
    pub ssl: SslChoice,
    /// The augmentation recipe (NC-VQVAE only).
    pub aug: AugChoice,
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
    /// Write a checkpoint every this many epochs (and always at the end).
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

impl Stage1Config {
    /// Thesis defaults for `dataset`.
    pub fn new(dataset: &str) -> Self {
        Self {
            dataset: dataset.to_string(),
            data_dir: None,
            ssl: SslChoice::None,
            aug: AugChoice::Slice,
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

    /// Checks the values that would otherwise fail deep inside training.
    pub fn validate(&self) -> Result<(), Stage1Error> {
        let bad = |m: String| Err(Stage1Error::Config(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(format!("batch_size must be at least 2 (BatchNorm needs two samples), got {}", self.batch_size));
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if self.projector_dim == 0 {
            return bad("projector_dim must be at least 1".into());
        }
        if let Some(method) = self.ssl.method() {
            ssl_losses::SslHeadConfig::new(method).with_hidden_dim(self.projector_dim).check().map_err(|e| Stage1Error::Config(format!("projector_dim: {e}")))?;
        }
        Ok(())
    }
}

/// `DIR/stage1.json` (keys promised in docs/cli.md, plus run identification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage1Summary {
    /// Test-set time-domain reconstruction MSE (full test set, sample-weighted).
    pub recon_mse_time: f64,
    /// Test-set STFT-domain reconstruction MSE.
    pub recon_mse_timefreq: f64,
    /// KNN (k = 5) probe test accuracy.
    pub probe_knn_acc: f64,
    /// Linear SVM probe test accuracy.
    pub probe_svm_acc: f64,
    /// Perplexity of the codebook usage over all test tokens.
    pub codebook_perplexity: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training and evaluation wall time, seconds (summed over resumed segments).
    pub wall_seconds: f64,
    /// Dataset name.
    pub dataset: String,
    /// SSL branch.
    pub ssl: SslChoice,
    /// Augmentation (`null` for the baseline).
    pub aug: Option<AugChoice>,
    /// Seed.
    pub seed: u64,
}

/// What can stop a training run (stage 1, stage 2) or sampling.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The dataset cannot be found or read (bad input).
    #[error(transparent)]
    Data(#[from] ucr_data::Error),
    /// The model cannot be built for this data (bad input).
    #[error("{dataset}: {source}")]
    Model {
        /// Dataset name.
        dataset: String,
        /// Cause.
        #[source]
        source: vqvae::Error,
    },
    /// An invalid setting (bad input).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The output folder holds another run (bad input).
    #[error("{0}")]
    RunExists(String),
    /// Reading or writing the run folder failed.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// Saving or loading weights failed.
    #[error("{path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The loss became NaN or infinite; the last checkpoint is kept.
    #[error("training diverged: {term} = {value} at epoch {epoch}, step {step}; the last good checkpoint is kept (lower --set lr or check the data)")]
    NonFinite {
        /// The loss term.
        term: &'static str,
        /// Its value.
        value: f32,
        /// Epoch (1-based).
        epoch: usize,
        /// Optimiser step.
        step: usize,
    },
    /// A probe failed.
    #[error(transparent)]
    Probe(#[from] metrics::ProbeError),
    /// Reading results back from the device failed.
    #[error("reading results from the device failed: {0}")]
    Device(String),
    /// The run folder does not hold what the command needs (e.g. no finished stage 1; bad input).
    #[error("{0}")]
    NotReady(String),
    /// The prior rejected its settings or input (bad input).
    #[error(transparent)]
    Prior(#[from] maskgit::Error),
    /// A generative score could not be computed.
    #[error(transparent)]
    Score(#[from] metrics::ScoreError),
}

/// The historical name of [`RunError`].
pub type Stage1Error = RunError;

impl RunError {
    /// Whether the user's input is at fault (exit code 2) rather than the program (exit code 1).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            RunError::Data(_)
                | RunError::Model { .. }
                | RunError::Config(_)
                | RunError::RunExists(_)
                | RunError::NotReady(_)
                | RunError::Prior(_)
                | RunError::RunDir(RunDirError::Unwritable { .. })
        )
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
    pub fn new(config: &Stage1Config, length: usize, device: &Device) -> Result<Self, vqvae::Error> {
        let tokenizer = VqVaeConfig::new(length);
        Ok(match config.ssl.method() {
            None => Stage1Model::Baseline(tokenizer.init(device)?),
            Some(method) => Stage1Model::NcVqVae(NcVqVaeConfig::new(tokenizer, method).with_projector_dim(config.projector_dim).init(device)?),
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

/// Cosine learning rate after `step` scheduler steps out of `t_max`: `lr·(1 + cos(π·step/t_max))/2`.
pub fn cosine_lr(lr: f64, step: usize, t_max: usize) -> f64 {
    0.5 * lr * (1.0 + (std::f64::consts::PI * step as f64 / t_max.max(1) as f64).cos())
}

/// Mixes a seed with two counters into one RNG seed (splitmix64 finaliser).
pub(crate) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-epoch sums of the loss terms.
#[derive(Default)]
struct EpochLog {
    batches: usize,
    sums: [f64; 8],
}

const TERMS: [&str; 8] = ["loss", "recon_time", "recon_timefreq", "commitment", "aug_recon_time", "aug_recon_timefreq", "ssl", "perplexity"];

fn scalars(l: &Stage1Losses) -> [f32; 8] {
    [&l.total, &l.recon_time, &l.recon_timefreq, &l.commitment, &l.aug_recon_time, &l.aug_recon_timefreq, &l.ssl, &l.perplexity]
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

/// Reads a tensor back from the device.
pub(crate) fn read<T: burn::tensor::Element, const D: usize, K: burn::tensor::kind::Basic>(t: Tensor<D, K>) -> Result<Vec<T>, Stage1Error> {
    t.try_into_vec_as::<T>().map_err(|e| Stage1Error::Device(format!("{e:?}")))
}

/// Pooled `z_q` features of a whole split, `(n, D)` row-major (batches of 128, in order).
fn features(model: &VqVae, split: &Split, device: &Device) -> Result<Vec<f32>, Stage1Error> {
    let mut out = Vec::new();
    for idx in epoch_batches(split.n(), 128, false, 0, 0)? {
        let batch = split.batch(&idx, device);
        out.extend(read::<f32, 2, _>(model.pooled_features(batch.x))?);
    }
    Ok(out)
}

/// Reconstruction errors, token perplexity and probes of a tokenizer in eval mode (spec §10.1 with
/// quirk Q2 sane: BatchNorm running statistics, no EMA update).
pub fn evaluate(model: &VqVae, data: &UcrDataset, device: &Device) -> Result<Evaluation, Stage1Error> {
    let mut eval = reconstruction(model, data, device)?;
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
fn reconstruction(model: &VqVae, data: &UcrDataset, device: &Device) -> Result<Evaluation, Stage1Error> {
    let (mut time, mut tf) = (0.0, 0.0);
    let mut usage = vec![0usize; model.quantizer().codebook_size()];
    for idx in epoch_batches(data.test.n(), 128, false, 0, 0)? {
        let batch = data.test.batch(&idx, device);
        let rec = model.forward(batch.x.clone());
        time += mse(batch.x, rec.x_hat).into_scalar::<f32>() as f64 * idx.len() as f64;
        tf += mse(rec.u, rec.u_hat).into_scalar::<f32>() as f64 * idx.len() as f64;
        for t in read::<i64, 2, _>(rec.quantized.tokens)? {
            usage[t as usize] += 1;
        }
    }
    let n = data.test.n() as f64;
    let total: usize = usage.iter().sum();
    let entropy: f64 = usage.iter().filter(|&&c| c > 0).map(|&c| c as f64 / total as f64).map(|p| -p * p.ln()).sum();
    Ok(Evaluation { recon_time: time / n, recon_timefreq: tf / n, perplexity: entropy.exp(), knn: f64::NAN, svm: f64::NAN })
}

/// The probes as the reference runs them (quirk Q2, faithful): `model` lives on the training
/// (autodiff) device, so every forward pass is a training one. The train split is encoded first,
/// shuffled in batches of `batch_size` like a training epoch, then the test split in order in
/// batches of 128; BatchNorm normalises with each batch's statistics and updates its running
/// statistics, and the EMA codebook moves towards every batch, test batches included. The model
/// keeps those updates.
pub fn train_mode_probes(model: &VqVae, data: &UcrDataset, batch_size: usize, seed: u64, device: &Device) -> Result<metrics::ProbeAccuracy, Stage1Error> {
    let (mut train, mut train_y) = (Vec::new(), Vec::new());
    for idx in epoch_batches(data.train.n(), batch_size, true, seed, 0)? {
        let batch = data.train.batch(&idx, device);
        train.extend(read::<f32, 2, _>(model.pooled_features(batch.x).detach())?);
        train_y.extend(idx.iter().map(|&i| data.train.labels[i]));
    }
    let test = features(model, &data.test, device)?;
    let dim = model.quantizer().codebook().dims()[1];
    Ok(metrics::probe_accuracy(&train, &train_y, &test, &data.test.labels, dim)?)
}

pub(crate) fn record_err(path: &Path) -> impl FnOnce(burn::store::RecordError) -> Stage1Error + '_ {
    move |e| Stage1Error::Record { path: path.to_path_buf(), message: e.to_string() }
}

/// Parses the TOML text of a file the program wrote (a run's `config.toml`).
fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, RunError> {
    toml::from_str(text).map_err(|e| RunError::Config(format!("{}: {}", path.display(), e.to_string().replace('\n', " "))))
}

/// Reads a run's TOML config file.
pub(crate) fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, RunError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse_toml(path, &text)
}

/// The config of a training run at `path`: when resuming, the stored one (`missing` if there is
/// none); otherwise `given`, written there atomically (`exists` if a run is already there).
pub(crate) fn run_config<T: Serialize + DeserializeOwned + Clone>(
    path: &Path,
    resume: bool,
    given: &T,
    missing: impl FnOnce() -> String,
    exists: impl FnOnce() -> String,
) -> Result<T, RunError> {
    if resume {
        let text = std::fs::read_to_string(path).map_err(|_| RunError::RunExists(missing()))?;
        return parse_toml(path, &text);
    }
    if path.exists() {
        return Err(RunError::RunExists(exists()));
    }
    let text = toml::to_string_pretty(given).map_err(|e| RunError::Config(e.to_string()))?;
    write_atomic(path, text.as_bytes())?;
    Ok(given.clone())
}

/// Writes `config` to `path`, or checks that the run already there has the same config; a
/// different one is refused with the message `differs`.
pub(crate) fn claim_config<T: Serialize + DeserializeOwned + PartialEq>(path: &Path, config: &T, differs: impl FnOnce() -> String) -> Result<(), RunError> {
    if path.exists() {
        let stored: T = read_toml(path)?;
        if &stored != config {
            return Err(RunError::RunExists(differs()));
        }
        return Ok(());
    }
    let text = toml::to_string_pretty(config).map_err(|e| RunError::Config(e.to_string()))?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes `text` to `path` atomically, or checks that the same text is already there (`differs`
/// gives the error's message when it is not).
pub(crate) fn claim_text(path: &Path, text: &str, differs: impl FnOnce() -> String) -> Result<(), RunError> {
    if path.exists() {
        let old = std::fs::read_to_string(path).map_err(io(path))?;
        if old != text {
            return Err(RunError::RunExists(differs()));
        }
        return Ok(());
    }
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Where a training loop starts: fresh, or from the run's latest checkpoint when resuming (the
/// model file `model_file` and `optim.bpk` of that checkpoint; `metrics.jsonl` is cut back to it).
/// Returns the model, the optimiser, and the checkpoint's epoch, step and wall seconds.
pub(crate) fn restore<M: Module>(
    run: &RunDir,
    resume: bool,
    model_file: &str,
    model: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, usize, usize, f64), RunError> {
    if !resume {
        return Ok((model, optim, 0, 0, 0.0));
    }
    let Some(info) = run.checkpoint()? else {
        run.truncate_metrics(0)?;
        return Ok((model, optim, 0, 0, 0.0));
    };
    let folder = run.path(&info.folder);
    let model = load_weights(model, &folder.join(model_file))?;
    let optim_path = folder.join("optim.bpk");
    let record = burn::optim::OptimizerRecord::load(&optim_path).map_err(record_err(&optim_path))?;
    run.truncate_metrics(info.epoch)?;
    Ok((model, optim.load_record(record), info.epoch, info.step, info.wall_seconds))
}

/// Writes a checkpoint (`model_file` + `optim.bpk` in its own folder) and makes it current.
pub(crate) fn save_checkpoint<M: Module>(
    run: &RunDir,
    model_file: &str,
    model: M,
    optim: &ModuleOptimizer,
    (epoch, step, wall_seconds): (usize, usize, f64),
) -> Result<(), RunError> {
    let (folder, path) = run.new_checkpoint_folder(epoch)?;
    let model_path = path.join(model_file);
    model.into_record().save(&model_path).map_err(record_err(&model_path))?;
    let optim_path = path.join("optim.bpk");
    optim.to_record().save(&optim_path).map_err(record_err(&optim_path))?;
    run.commit_checkpoint(&CheckpointInfo { epoch, step, wall_seconds, folder })?;
    Ok(())
}

/// Loads weights saved by [`save_weights`] (or a checkpoint) into `model`.
pub(crate) fn load_weights<M: Module>(model: M, path: &Path) -> Result<M, RunError> {
    let record = ModuleRecord::load(path).map_err(record_err(path))?;
    model.try_load_record(record).map_err(record_err(path))
}

/// Saves a module's weights atomically (a temporary file in the same folder, then a rename).
pub(crate) fn save_weights<M: Module>(model: M, path: &Path) -> Result<(), RunError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("weights");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    model.into_record().save(&tmp).map_err(record_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// PyTorch's AdamW (the reference's optimizer) with every setting written out, fused into one
/// pass per parameter tensor on the CPU backend (`train::FusedAdamW`); the learning rate is given
/// per step. Its state is Burn's `AdamWState`, so checkpoints keep their format.
pub(crate) fn adamw(beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64) -> ModuleOptimizer {
    train::FusedAdamWConfig::new().with_beta_1(beta1).with_beta_2(beta2).with_epsilon(epsilon).with_weight_decay(weight_decay).init()
}

/// Options of one invocation (not part of the run's identity).
#[derive(Debug, Clone, Default)]
pub struct Stage1Options {
    /// Continue the run in the output folder from its last checkpoint.
    pub resume: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Trains (or resumes) a stage-1 run in `out` on `device` (a plain device; autodiff is added here)
/// and writes `stage1.json`.
pub fn train(config: &Stage1Config, out: &Path, device: &Device, options: &Stage1Options) -> Result<Stage1Summary, Stage1Error> {
    config.validate()?;
    if !options.resume {
        // The config is claimed in the folder before the run folder is opened below.
        crate::run_dir::ensure_writable(out)?;
    }
    let config: Stage1Config = run_config(
        &out.join("config.toml"),
        options.resume,
        config,
        || format!("{}: no run to resume (config.toml missing)", out.display()),
        || format!("{}: already holds a run; pass --resume to continue it or choose another --out", out.display()),
    )?;
    config.validate()?;
    let run = RunDir::create(out)?;

    let source = Resolver::new(config.data_dir.clone()).resolve(&config.dataset)?;
    let data = UcrDataset::load(&source)?;
    let train_device = device.clone().autodiff();
    train_device.seed(config.seed);
    let model = Stage1Model::new(&config, data.length(), &train_device)
        .map_err(|source| Stage1Error::Model { dataset: data.name.clone(), source })?;
    let optim = adamw(config.beta1, config.beta2, config.epsilon, config.weight_decay);

    let steps_per_epoch = epoch_batches(data.train.n(), config.batch_size, false, 0, 0)?.len();
    let t_max = config.epochs * (steps_per_epoch + 1);
    let (mut model, mut optim, start_epoch, mut step, mut wall) = restore(&run, options.resume, "model.bpk", model, optim)?;

    let augmenter = augment::Augmenter::new(config.aug.into()).with_faithful_stft_zeros(config.faithful_aug_zeros);
    let length = data.length();
    let bar = progress_bar(options.progress, (config.epochs * steps_per_epoch) as u64, (start_epoch * steps_per_epoch) as u64);
    let mut segment_start = Instant::now();
    // Quirk Q2 faithful: the reference probes once before training, which moves the EMA codebook
    // and the BatchNorm statistics towards the data (a data-dependent initialisation).
    let mut initial_probe = None;
    if config.faithful_probes && start_epoch == 0 {
        initial_probe = Some(train_mode_probes(model.vqvae(), &data, config.batch_size, probe_seed(&config, 0), &train_device)?);
    }
    for epoch in start_epoch..config.epochs {
        let epoch_start = Instant::now();
        let mut log = EpochLog::default();
        for (b, idx) in epoch_batches(data.train.n(), config.batch_size, true, config.seed, epoch as u64)?.into_iter().enumerate() {
            let batch = data.train.batch(&idx, &train_device);
            let losses = match &model {
                Stage1Model::Baseline(m) => m.losses(batch.x),
                Stage1Model::NcVqVae(m) => {
                    let raw: Vec<f32> = idx.iter().flat_map(|&i| data.train.series(i).iter().copied()).collect();
                    let views = augmenter.apply_batch(&raw, length, mix(config.seed, epoch as u64, b as u64));
                    let x_aug = Tensor::<3>::from_data(TensorData::new(views, [idx.len(), 1, length]), &train_device);
                    m.losses(batch.x, x_aug)
                }
            };
            step += 1;
            let values = scalars(&losses);
            if let Some((k, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                bar.abandon();
                return Err(Stage1Error::NonFinite { term: TERMS[k], value: *v, epoch: epoch + 1, step });
            }
            let grads = GradientsParams::from_grads(losses.total.backward(), &model);
            model = optim.step(cosine_lr(config.lr, step, t_max), model, grads);
            log.batches += 1;
            for (s, v) in log.sums.iter_mut().zip(values) {
                *s += v as f64;
            }
            bar.set_message(format!("epoch {}/{} loss {:.4}", epoch + 1, config.epochs, values[0]));
            bar.inc(1);
        }
        step += 1; // the framework's extra scheduler step at each epoch end (quirk Q13)
        let mut line = serde_json::Map::new();
        line.insert("epoch".into(), (epoch + 1).into());
        line.insert("step".into(), step.into());
        for (name, sum) in TERMS.iter().zip(log.sums) {
            line.insert((*name).into(), (sum / log.batches.max(1) as f64).into());
        }
        line.insert("lr".into(), cosine_lr(config.lr, step, t_max).into());
        let done = epoch + 1 == config.epochs;
        if let Some(p) = initial_probe.take() {
            line.insert("initial_probe_knn_acc".into(), p.knn.into());
            line.insert("initial_probe_svm_acc".into(), p.svm.into());
        }
        if config.probe_every > 0 && (epoch + 1) % config.probe_every == 0 && !done {
            let eval = evaluate_run(&model, &config, &data, epoch + 1, device, &train_device)?;
            line.insert("probe_knn_acc".into(), eval.knn.into());
            line.insert("probe_svm_acc".into(), eval.svm.into());
            line.insert("test_recon_time".into(), eval.recon_time.into());
        }
        line.insert("seconds".into(), epoch_start.elapsed().as_secs_f64().into());
        run.append_metrics(&serde_json::Value::Object(line))?;
        if (epoch + 1) % config.checkpoint_every == 0 || done {
            wall += segment_start.elapsed().as_secs_f64();
            segment_start = Instant::now();
            // Burn's RunningState (BatchNorm statistics, the EMA codebook) keeps its latest update
            // pending until it is synced, and recording reads the synced value: `valid()` syncs
            // every running state in place, so the checkpoint holds the current buffers.
            let _ = model.valid();
            save_checkpoint(&run, "model.bpk", model.clone(), &optim, (epoch + 1, step, wall))?;
        }
    }
    bar.finish_and_clear();

    let eval = evaluate_run(&model, &config, &data, config.epochs, device, &train_device)?;
    save_weights(model.valid(), &run.path("model.bpk"))?;
    wall += segment_start.elapsed().as_secs_f64(); // the final evaluation
    let summary = Stage1Summary {
        recon_mse_time: eval.recon_time,
        recon_mse_timefreq: eval.recon_timefreq,
        probe_knn_acc: eval.knn,
        probe_svm_acc: eval.svm,
        codebook_perplexity: eval.perplexity,
        epochs: config.epochs,
        wall_seconds: wall,
        dataset: data.name.clone(),
        ssl: config.ssl,
        aug: (config.ssl != SslChoice::None).then_some(config.aug),
        seed: config.seed,
    };
    write_json(&run.path("stage1.json"), &summary)?;
    Ok(summary)
}

/// The shuffling seed of the faithful probe pass after `epoch` epochs.
fn probe_seed(config: &Stage1Config, epoch: usize) -> u64 {
    mix(config.seed, 0x0050_524f_4245, epoch as u64)
}

/// The evaluation of the training model after `epoch` epochs: reconstruction and perplexity in
/// eval mode, then the probes in eval mode or, with `faithful_probes`, in training mode on
/// `train_device` (which updates the model, quirk Q2).
fn evaluate_run(model: &Stage1Model, config: &Stage1Config, data: &UcrDataset, epoch: usize, device: &Device, train_device: &Device) -> Result<Evaluation, Stage1Error> {
    if !config.faithful_probes {
        return evaluate(model.valid().vqvae(), data, device);
    }
    let mut eval = reconstruction(model.valid().vqvae(), data, device)?;
    let probe = train_mode_probes(model.vqvae(), data, config.batch_size, probe_seed(config, epoch), train_device)?;
    (eval.knn, eval.svm) = (probe.knn, probe.svm);
    Ok(eval)
}

/// A finished stage-1 run loaded back: its config, its dataset and the tokenizer in eval mode on
/// `device`.
pub fn load_finished(run: &Path, device: &Device) -> Result<(Stage1Config, UcrDataset, Stage1Model), RunError> {
    let model_path = run.join("model.bpk");
    if !run.join("stage1.json").exists() || !model_path.exists() {
        return Err(RunError::NotReady(format!(
            "{}: no finished stage-1 run here (stage1.json and model.bpk missing); run `nc-vqvae stage1 DATASET --out {}` first",
            run.display(),
            run.display()
        )));
    }
    let config: Stage1Config = read_toml(&run.join("config.toml"))?;
    let source = Resolver::new(config.data_dir.clone()).resolve(&config.dataset)?;
    let data = UcrDataset::load(&source)?;
    let model = Stage1Model::new(&config, data.length(), device).map_err(|source| RunError::Model { dataset: data.name.clone(), source })?;
    Ok((config, data, load_weights(model, &model_path)?))
}

pub(crate) fn progress_bar(show: bool, total: u64, done: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_reaches_zero_at_t_max() {
        assert_eq!(cosine_lr(1e-3, 0, 100), 1e-3);
        assert!((cosine_lr(1e-3, 50, 100) - 5e-4).abs() < 1e-12);
        assert!(cosine_lr(1e-3, 100, 100).abs() < 1e-15);
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
                    let v = if class == 1 { (t as f32 * 0.3 + i as f32).sin() } else { t as f32 / 65.0 - 0.5 + 0.05 * i as f32 };
                    text.push_str(&format!("\t{}", gain * v));
                }
                text.push('\n');
            }
            ucr_data::parse(&text, "toy").unwrap()
        };
        UcrDataset::from_raw("toy", split(12, 1.0), split(10, test_gain)).unwrap()
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
        let Stage1Model::Baseline(initial) = Stage1Model::new(&Stage1Config::new("toy"), 65, &train_device).unwrap() else {
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

    #[test]
    fn mixed_seeds_differ() {
        assert_ne!(mix(1, 0, 0), mix(1, 0, 1));
        assert_ne!(mix(1, 1, 0), mix(1, 0, 1));
        assert_eq!(mix(3, 4, 5), mix(3, 4, 5));
    }
}
