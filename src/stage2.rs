//! Stage 2: training the MaskGIT prior on a finished stage-1 run (reference spec §9), and sampling
//! synthetic series from it.
//!
//! The frozen tokenizer encodes both splits once, in eval mode; the distances `−‖z − e_k‖²` of every
//! latent vector to every codeword are kept in memory, and each time a series is seen its training
//! tokens are drawn from `softmax` of them (the reference, quirk Q8) or taken as the nearest code.
//! Per batch: one mask ratio from the cosine schedule, class dropout `p = 0.2` (training only,
//! quirk Q10), cross-entropy on the masked positions (or on all, quirk Q6), AdamW with the
//! reference's settings and the same cosine step counter as stage 1.
//!
//! Files, inside the stage-1 run folder `DIR`: `DIR/stage2/` holds this stage's `config.toml`,
//! `metrics.jsonl`, checkpoints and the final `prior.bpk`; `DIR/stage2.json` is the summary.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use maskgit::{MaskGit, MaskGitConfig, MaskMode, SamplerConfig, TrunkConfig, Variant, draw_codes, draw_mask, drop_classes, int_tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use ucr_data::{Split, UcrDataset, epoch_batches};
use vqvae::VqVae;

use crate::run_dir::{RunDir, write_atomic, write_json};
use crate::stage1::{
    RunError, SslChoice, Stage1Config, cosine_lr, load_finished, load_weights, mix, progress_bar, read, read_toml, restore, run_config,
    save_checkpoint, save_weights,
};

/// Which prior to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PriorChoice {
    /// The thesis' pairing (quirk Q7): token embeddings (variant A) for the baseline tokenizer,
    /// fine-tuned codebook embeddings (variant B) for NC-VQVAE tokenizers.
    Auto,
    /// Variant A for any tokenizer.
    Token,
    /// Variant B for any tokenizer.
    Embedding,
}

/// Everything that defines a stage-2 run; written to `DIR/stage2/config.toml`. Defaults are the
/// reference's settings with the sane choices of spec §13.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage2Config {
    /// Training epochs. Thesis: 1000.
    pub epochs: usize,
    /// Batch size. Thesis: 256.
    pub batch_size: usize,
    /// Seed of the prior's initialisation, shuffling, token draws, masks and class dropout.
    pub seed: u64,
    /// Prior variant.
    pub prior: PriorChoice,
    /// AdamW peak learning rate. Thesis: 1e-3.
    pub lr: f64,
    /// AdamW weight decay on all parameters. Reference code: 1e-3.
    pub weight_decay: f64,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// AdamW ε (PyTorch's 1e-8).
    pub epsilon: f64,
    /// Class dropout probability in training. Thesis: 0.2.
    pub p_unconditional: f64,
    /// Draw training/test tokens from `softmax(−‖z − e‖²)` (reference, quirk Q8) instead of argmin.
    pub stochastic_tokens: bool,
    /// Variant A only: the reference's inverted masking (quirk Q5, faithful). Default: standard.
    pub inverted_masking: bool,
    /// Cross-entropy over all positions (quirk Q6, faithful). Default: masked positions only.
    pub loss_on_all_positions: bool,
    /// Test-token loss every this many epochs (0: only at the end). Reference: 20.
    pub eval_every: usize,
    /// Checkpoint every this many epochs (and at the end).
    pub checkpoint_every: usize,
}

impl Default for Stage2Config {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: 256,
            seed: 1,
            prior: PriorChoice::Auto,
            lr: 1e-3,
            weight_decay: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            p_unconditional: 0.2,
            stochastic_tokens: true,
            inverted_masking: false,
            loss_on_all_positions: false,
            eval_every: 20,
            checkpoint_every: 50,
        }
    }
}

impl Stage2Config {
    /// Checks values that would fail later.
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |m: String| Err(RunError::Config(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.p_unconditional) {
            return bad(format!("p_unconditional must be in [0, 1), got {}", self.p_unconditional));
        }
        Ok(())
    }

    /// The variant this config trains on a tokenizer from `ssl`.
    pub fn variant(&self, ssl: SslChoice) -> Variant {
        match (self.prior, ssl) {
            (PriorChoice::Token, _) | (PriorChoice::Auto, SslChoice::None) => Variant::Token,
            _ => Variant::Embedding,
        }
    }
}

/// `DIR/stage2.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage2Summary {
    /// Cross-entropy (nats per token) of the test tokens at masked positions: standard cosine
    /// masking, true class labels, the same token draws as training.
    pub loss: f64,
    /// The same over all positions (masked and visible), as the reference's validation loss.
    pub loss_all_positions: f64,
    /// `ln K`: the loss of a prior that knows nothing (uniform over the codes).
    pub uniform_loss: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training and evaluation wall time, seconds (summed over resumed segments).
    pub wall_seconds: f64,
    /// `token` or `embedding`.
    pub variant: String,
    /// Tokens per series.
    pub n_tokens: usize,
    /// Seed.
    pub seed: u64,
}

/// The frozen tokenizer's view of one split: distances of every latent vector to every codeword.
struct TokenSource {
    /// `(n · N, K)` row-major.
    neg_dist: Vec<f32>,
    labels: Vec<usize>,
    n_tokens: usize,
    k: usize,
}

impl TokenSource {
    fn encode(model: &VqVae, split: &Split, device: &Device) -> Result<Self, RunError> {
        let mut neg_dist = Vec::new();
        let mut n_tokens = 0;
        for idx in epoch_batches(split.n(), 256, false, 0, 0)? {
            let x = split.batch(&idx, device).x;
            let (_, z) = model.encode(x);
            let [b, d, h, w] = z.dims();
            n_tokens = h * w;
            let flat = z.permute([0, 2, 3, 1]).reshape([b * h * w, d]);
            neg_dist.extend(read::<f32, 2, _>(model.quantizer().neg_distances(flat))?);
        }
        let k = model.quantizer().codebook_size();
        Ok(Self { neg_dist, labels: split.labels.clone(), n_tokens, k })
    }

    /// Tokens `(idx.len() · N)` for the series `idx`.
    fn tokens(&self, idx: &[usize], stochastic: bool, rng: &mut StdRng) -> Vec<i64> {
        let row = self.n_tokens * self.k;
        idx.iter().flat_map(|&i| draw_codes(&self.neg_dist[i * row..(i + 1) * row], self.k, stochastic, rng)).collect()
    }
}

/// One batch's tensors.
struct PriorBatch {
    ids: Tensor<2, Int>,
    classes: Tensor<1, Int>,
    targets: Tensor<2, Int>,
    weights: Tensor<2>,
}

/// Builds a training or evaluation batch: tokens, a mask, the input ids and the loss weights.
#[allow(clippy::too_many_arguments)]
fn make_batch(
    source: &TokenSource,
    idx: &[usize],
    mode: MaskMode,
    all_positions: bool,
    stochastic: bool,
    p_drop: f64,
    null: usize,
    rng: &mut StdRng,
    device: &Device,
) -> PriorBatch {
    let (b, n, k) = (idx.len(), source.n_tokens, source.k);
    let targets = source.tokens(idx, stochastic, rng);
    let hidden = draw_mask(b, n, mode, rng);
    let ids: Vec<i64> = targets.iter().zip(&hidden).map(|(&t, &h)| if h { k as i64 } else { t }).collect();
    let weights: Vec<f32> = hidden.iter().map(|&h| if h || all_positions { 1.0 } else { 0.0 }).collect();
    let labels: Vec<usize> = idx.iter().map(|&i| source.labels[i]).collect();
    let classes: Vec<i64> = drop_classes(&labels, null, p_drop, rng).into_iter().map(|c| c as i64).collect();
    PriorBatch {
        ids: int_tensor(ids, [b, n], device),
        classes: Tensor::from_data(TensorData::new(classes, [b]), device),
        targets: int_tensor(targets, [b, n], device),
        weights: Tensor::from_data(TensorData::new(weights, [b, n]), device),
    }
}

/// Test-token losses (masked positions, all positions) of a prior: standard masking, true labels,
/// draws seeded from `seed` alone, so every evaluation of a run sees the same masks.
fn evaluate(prior: &MaskGit, test: &TokenSource, config: &Stage2Config, device: &Device) -> Result<(f64, f64), RunError> {
    let (mut masked, mut all, mut n) = (0.0, 0.0, 0.0);
    for (b, idx) in epoch_batches(test.labels.len(), 256, false, 0, 0)?.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(mix(config.seed, u64::MAX, b as u64));
        let batch = make_batch(test, &idx, MaskMode::Standard, false, config.stochastic_tokens, 0.0, prior.n_classes(), &mut rng, device);
        let w = idx.len() as f64;
        masked += prior.loss(batch.ids.clone(), batch.classes.clone(), batch.targets.clone(), batch.weights).into_scalar::<f32>() as f64 * w;
        let ones = Tensor::ones(batch.targets.dims(), device);
        all += prior.loss(batch.ids, batch.classes, batch.targets, ones).into_scalar::<f32>() as f64 * w;
        n += w;
    }
    Ok((masked / n, all / n))
}

/// Options of one `stage2` invocation.
#[derive(Debug, Clone, Default)]
pub struct Stage2Options {
    /// Continue from the last checkpoint with the stored config.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// Trains (or resumes) the prior of the finished stage-1 run `run` and writes `run/stage2.json`.
pub fn train(config: &Stage2Config, run: &Path, device: &Device, options: &Stage2Options) -> Result<Stage2Summary, RunError> {
    config.validate()?;
    let (stage1, data, tokenizer) = load_finished(run, device)?;
    let folder = RunDir::create(&run.join("stage2"))?;
    let config: Stage2Config = run_config(
        &folder.path("config.toml"),
        options.resume,
        config,
        || format!("{}: no stage-2 run to resume (config.toml missing)", folder.root().display()),
        || format!("{}: already holds a stage-2 run; pass --resume to continue it", folder.root().display()),
    )?;
    config.validate()?;

    let vq = tokenizer.vqvae();
    let train_tokens = TokenSource::encode(vq, &data.train, device)?;
    let test_tokens = TokenSource::encode(vq, &data.test, device)?;
    let variant = config.variant(stage1.ssl);
    let train_device = device.clone().autodiff();
    train_device.seed(config.seed);
    let prior = MaskGitConfig::new(TrunkConfig::new(train_tokens.n_tokens, data.num_classes()), variant).init(vq.quantizer().codebook(), &train_device)?;
    let optim = crate::stage1::adamw(config.beta1, config.beta2, config.epsilon, config.weight_decay);
    let steps_per_epoch = epoch_batches(data.train.n(), config.batch_size, false, 0, 0)?.len();
    let t_max = config.epochs * (steps_per_epoch + 1);
    let (mut prior, mut optim, start_epoch, mut step, mut wall) = restore(&folder, options.resume, "prior.bpk", prior, optim)?;

    let mode = if variant == Variant::Token && config.inverted_masking { MaskMode::Inverted } else { MaskMode::Standard };
    let null = data.num_classes();
    let bar = progress_bar(options.progress, (config.epochs * steps_per_epoch) as u64, (start_epoch * steps_per_epoch) as u64);
    let mut segment_start = Instant::now();
    for epoch in start_epoch..config.epochs {
        let epoch_start = Instant::now();
        let (mut sum, mut batches) = (0.0, 0usize);
        for (b, idx) in epoch_batches(data.train.n(), config.batch_size, true, config.seed, epoch as u64)?.into_iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(mix(config.seed, epoch as u64, b as u64));
            let batch = make_batch(
                &train_tokens,
                &idx,
                mode,
                config.loss_on_all_positions,
                config.stochastic_tokens,
                config.p_unconditional,
                null,
                &mut rng,
                &train_device,
            );
            let loss = prior.loss(batch.ids, batch.classes, batch.targets, batch.weights);
            step += 1;
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                bar.abandon();
                return Err(RunError::NonFinite { term: "prior_loss", value, epoch: epoch + 1, step });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &prior);
            prior = optim.step(cosine_lr(config.lr, step, t_max), prior, grads);
            sum += value as f64;
            batches += 1;
            bar.set_message(format!("epoch {}/{} loss {:.4}", epoch + 1, config.epochs, value));
            bar.inc(1);
        }
        step += 1; // the framework's extra scheduler step per epoch (quirk Q13)
        let done = epoch + 1 == config.epochs;
        let mut line = serde_json::Map::new();
        line.insert("epoch".into(), (epoch + 1).into());
        line.insert("step".into(), step.into());
        line.insert("loss".into(), (sum / batches.max(1) as f64).into());
        line.insert("lr".into(), cosine_lr(config.lr, step, t_max).into());
        if config.eval_every > 0 && (epoch + 1) % config.eval_every == 0 && !done {
            let (masked, all) = evaluate(&prior.valid(), &test_tokens, &config, device)?;
            line.insert("test_loss".into(), masked.into());
            line.insert("test_loss_all_positions".into(), all.into());
        }
        line.insert("seconds".into(), epoch_start.elapsed().as_secs_f64().into());
        folder.append_metrics(&serde_json::Value::Object(line))?;
        if (epoch + 1) % config.checkpoint_every == 0 || done {
            wall += segment_start.elapsed().as_secs_f64();
            segment_start = Instant::now();
            save_checkpoint(&folder, "prior.bpk", prior.clone(), &optim, (epoch + 1, step, wall))?;
        }
    }
    bar.finish_and_clear();

    let prior = prior.valid();
    let (loss, loss_all) = evaluate(&prior, &test_tokens, &config, device)?;
    save_weights(prior, &folder.path("prior.bpk"))?;
    wall += segment_start.elapsed().as_secs_f64();
    let summary = Stage2Summary {
        loss,
        loss_all_positions: loss_all,
        uniform_loss: (vq.quantizer().codebook_size() as f64).ln(),
        epochs: config.epochs,
        wall_seconds: wall,
        variant: match variant {
            Variant::Token => "token".into(),
            Variant::Embedding => "embedding".into(),
        },
        n_tokens: train_tokens.n_tokens,
        seed: config.seed,
    };
    write_json(&run.join("stage2.json"), &summary)?;
    Ok(summary)
}

/// A finished stage-1 + stage-2 run, loaded for sampling.
pub struct Generator {
    /// The stage-1 run's config.
    pub stage1: Stage1Config,
    /// Its dataset (class labels, normaliser, length).
    pub data: UcrDataset,
    tokenizer: crate::stage1::Stage1Model,
    prior: MaskGit,
}

impl Generator {
    /// Loads the tokenizer and the trained prior of `run` on `device`.
    pub fn load(run: &Path, device: &Device) -> Result<Self, RunError> {
        let (stage1, data, tokenizer) = load_finished(run, device)?;
        let prior_path = run.join("stage2").join("prior.bpk");
        let config_path = run.join("stage2").join("config.toml");
        if !prior_path.exists() || !config_path.exists() {
            return Err(RunError::NotReady(format!(
                "{}: no trained prior here (stage2/prior.bpk missing); run `nc-vqvae stage2 --run {}` first",
                run.display(),
                run.display()
            )));
        }
        let config: Stage2Config = read_toml(&config_path)?;
        let vq = tokenizer.vqvae();
        let n_tokens = 5 * latent_width(vq, device);
        let prior = MaskGitConfig::new(TrunkConfig::new(n_tokens, data.num_classes()), config.variant(stage1.ssl)).init(vq.quantizer().codebook(), device)?;
        let prior = load_weights(prior, &prior_path)?;
        Ok(Self { stage1, data, tokenizer, prior })
    }

    /// Maps a label as written in the dataset files to the class index, if it is one.
    pub fn class_index(&self, label: i64) -> Option<usize> {
        self.data.classes.iter().position(|&c| c == label)
    }

    /// The stage-1 tokenizer.
    pub fn tokenizer(&self) -> &VqVae {
        self.tokenizer.vqvae()
    }

    /// Draws `n` series of length `2⌊L/2⌋` for the class indices `classes` (one per series) or
    /// unconditionally, in the data's original scale or (`original_scale = false`) in the
    /// z-normalised scale the models work in. Returns `n` rows.
    pub fn generate(
        &self,
        n: usize,
        classes: Option<&[usize]>,
        sampler: &SamplerConfig,
        seed: u64,
        original_scale: bool,
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, RunError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let vq = self.tokenizer.vqvae();
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let b = (n - start).min(256);
            let chunk = classes.map(|c| &c[start..start + b]);
            let tokens = maskgit::sample(&self.prior, b, chunk, sampler, device, &mut rng)?;
            let tokens = int_tensor(tokens, [b, self.prior.n_tokens()], device);
            let z = vq.quantizer().decode_tokens(tokens, 5);
            let (_, x_hat) = vq.decode(z);
            let len = x_hat.dims()[2];
            let mut values = read::<f32, 3, _>(x_hat)?;
            if original_scale {
                self.data.normalizer.invert(&mut values);
            }
            out.extend(values.chunks(len).map(<[f32]>::to_vec));
            start += b;
        }
        Ok(out)
    }
}

impl Generator {
    /// Plot panels, one row per `(label, class index)` group: up to `max` real test series of the
    /// class (all test series when unconditional) next to up to `max` generated ones, in the data's
    /// original scale.
    pub fn comparison_panels(&self, groups: &[(i64, Option<usize>)], labels: &[i64], series: &[Vec<f32>], max: usize) -> Vec<crate::plot::Panel> {
        let test = &self.data.test;
        let mut panels = Vec::new();
        for &(label, class) in groups {
            let real: Vec<Vec<f32>> = (0..test.n())
                .filter(|&i| class.is_none_or(|c| test.labels[i] == c))
                .take(max)
                .map(|i| {
                    let mut v = test.series(i).to_vec();
                    self.data.normalizer.invert(&mut v);
                    v
                })
                .collect();
            let generated: Vec<Vec<f32>> = labels.iter().zip(series).filter(|(l, _)| **l == label).map(|(_, s)| s.clone()).take(max).collect();
            let name = if class.is_some() { format!("class {label}") } else { "unconditional".into() };
            panels.push(crate::plot::Panel { title: format!("{name}: real ({})", real.len()), series: real, color: (30, 90, 200) });
            panels.push(crate::plot::Panel { title: format!("{name}: generated ({})", generated.len()), series: generated, color: (220, 80, 30) });
        }
        panels
    }
}

/// The latent width W' of a tokenizer (one forward pass of a zero series).
pub(crate) fn latent_width(model: &VqVae, device: &Device) -> usize {
    let x = Tensor::<3>::zeros([1, 1, model.length()], device);
    model.encode(x).1.dims()[3]
}

/// Writes series as a UCR TSV file (label, then values), atomically.
pub fn write_tsv(path: &Path, labels: &[i64], series: &[Vec<f32>]) -> Result<(), RunError> {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (label, row) in labels.iter().zip(series) {
        let _ = write!(text, "{label}");
        for v in row {
            let _ = write!(text, "\t{v}");
        }
        text.push('\n');
    }
    Ok(write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> TokenSource {
        // 3 series × 6 tokens × 4 codes; code j is nearest for every token of series j % 4.
        let (n, k) = (6, 4);
        let neg_dist = (0..3 * n).flat_map(|r| (0..k).map(move |j| if j == (r / n) % k { 0.0 } else { -50.0 })).collect();
        TokenSource { neg_dist, labels: vec![0, 1, 2], n_tokens: n, k }
    }

    fn host<const D: usize, K: burn::tensor::kind::Basic>(t: Tensor<D, K>) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn loss_weights_follow_the_configured_positions() {
        let device = Device::flex();
        let src = source();
        for seed in 0..20 {
            for all in [false, true] {
                for mode in [MaskMode::Standard, MaskMode::Inverted] {
                    let mut rng = StdRng::seed_from_u64(seed);
                    let b = make_batch(&src, &[0, 1, 2], mode, all, false, 0.0, 3, &mut rng, &device);
                    let ids = host(b.ids);
                    let hidden: Vec<bool> = ids.iter().map(|&i| i == 4.0).collect();
                    let weights = host(b.weights);
                    for (h, w) in hidden.iter().zip(&weights) {
                        assert_eq!(*w, if *h || all { 1.0 } else { 0.0 }, "mode {mode:?}, all positions {all}");
                    }
                    // Visible inputs are the targets; targets are the nearest codes (argmin draws).
                    let targets = host(b.targets);
                    assert_eq!(targets, (0..18).map(|r| (r / 6) as f32).collect::<Vec<_>>());
                    for ((&i, &t), &h) in ids.iter().zip(&targets).zip(&hidden) {
                        if !h {
                            assert_eq!(i, t);
                        }
                    }
                    assert_eq!(host(b.classes), vec![0.0, 1.0, 2.0], "no class dropout at p = 0");
                }
            }
        }
    }
}
