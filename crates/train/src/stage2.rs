//! Stage 2: training the MaskGIT prior on a frozen stage-1 tokenizer with the reference's recipe
//! (docs/reference.md §9).
//!
//! The tokenizer encodes both splits once, in eval mode; the distances `−‖z − e_k‖²` of every
//! latent vector to every codeword are kept in memory, and each time a series is seen its training
//! tokens are drawn from `softmax` of them (the reference, quirk Q8) or taken as the nearest code.
//! Per batch: one mask ratio from the cosine schedule, class dropout `p = 0.2` (training only,
//! quirk Q10), cross-entropy on the masked positions (or on all, quirk Q6), AdamW with the
//! reference's settings and the same cosine step counter as stage 1.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use maskgit::{
    MaskGit, MaskGitConfig, MaskMode, TrunkConfig, Variant, draw_codes, draw_mask, drop_classes,
    int_tensor,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ucr_data::{Split, UcrDataset, epoch_batches};
use vqvae::VqVae;

use crate::error::{Error, InvalidSetting, at_least};
use crate::fit::{FitConfig, RunContext, StepLoss, Task, fit};
use crate::schedule::mix;
use crate::stage1::SslChoice;
use crate::to_host;

/// Which prior to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl PriorChoice {
    /// Every choice.
    pub const ALL: [PriorChoice; 3] =
        [PriorChoice::Auto, PriorChoice::Token, PriorChoice::Embedding];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PriorChoice::Auto => "auto",
            PriorChoice::Token => "token",
            PriorChoice::Embedding => "embedding",
        }
    }
}

impl std::fmt::Display for PriorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PriorChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PriorChoice::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown prior `{s}` (auto, token or embedding)"))
    }
}

/// The recipe of a stage-2 run. Defaults are the reference's settings with the sane choices of
/// docs/reference.md §13.
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
    /// Transformer blocks of the prior. Reference: 4 (docs/reference.md §9.2).
    #[serde(default = "reference_depth")]
    pub depth: usize,
}

fn reference_depth() -> usize {
    4
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
            depth: reference_depth(),
        }
    }
}

impl Stage2Config {
    /// The prior's trunk for `n_tokens` positions and `n_classes` classes: the reference's, with
    /// `depth` blocks.
    pub fn trunk(&self, n_tokens: usize, n_classes: usize) -> TrunkConfig {
        TrunkConfig::new(n_tokens, n_classes).with_depth(self.depth)
    }

    /// Checks values that would fail later.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least("depth", self.depth, 1)?;
        at_least("epochs", self.epochs, 1)?;
        at_least("batch_size", self.batch_size, 1)?;
        at_least("checkpoint_every", self.checkpoint_every, 1)?;
        crate::adamw::check_adamw(
            self.lr,
            self.weight_decay,
            self.beta1,
            self.beta2,
            self.epsilon,
        )?;
        if !(0.0..1.0).contains(&self.p_unconditional) {
            return Err(InvalidSetting::new("p_unconditional", "in [0, 1)", self.p_unconditional));
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

/// The frozen tokenizer's view of one split: distances of every latent vector to every codeword.
struct TokenSource {
    /// `(n · N, K)` row-major.
    neg_dist: Vec<f32>,
    labels: Vec<usize>,
    n_tokens: usize,
    k: usize,
}

impl TokenSource {
    fn encode(model: &VqVae, split: &Split, device: &Device) -> Result<Self, Error> {
        let mut neg_dist = Vec::new();
        let mut n_tokens = 0;
        for idx in epoch_batches(split.n(), 256, false, 0, 0)? {
            let x = split.batch(&idx, device).x;
            let (_, z) = model.encode(x);
            let [b, d, h, w] = z.dims();
            n_tokens = h * w;
            let flat = z.permute([0, 2, 3, 1]).reshape([b * h * w, d]);
            neg_dist.extend(to_host::<f32, 2, _>(model.quantizer().neg_distances(flat))?);
        }
        let k = model.quantizer().codebook_size();
        Ok(Self { neg_dist, labels: split.labels.clone(), n_tokens, k })
    }

    /// Tokens `(idx.len() · N)` for the series `idx`.
    fn tokens(&self, idx: &[usize], stochastic: bool, rng: &mut StdRng) -> Vec<i64> {
        let row = self.n_tokens * self.k;
        idx.iter()
            .flat_map(|&i| {
                draw_codes(&self.neg_dist[i * row..(i + 1) * row], self.k, stochastic, rng)
            })
            .collect()
    }
}

/// One batch's tensors.
struct PriorBatch {
    ids: Tensor<2, Int>,
    classes: Tensor<1, Int>,
    targets: Tensor<2, Int>,
    weights: Tensor<2>,
}

/// How a batch is drawn: the masking, which positions carry loss, tokens drawn or nearest, the
/// class dropout and the null class it drops to.
#[derive(Clone, Copy)]
struct BatchRule {
    mode: MaskMode,
    all_positions: bool,
    stochastic: bool,
    p_drop: f64,
    null: usize,
}

/// Builds a training or evaluation batch: tokens, a mask, the input ids and the loss weights.
fn make_batch(
    source: &TokenSource,
    idx: &[usize],
    rule: &BatchRule,
    rng: &mut StdRng,
    device: &Device,
) -> PriorBatch {
    let BatchRule { mode, all_positions, stochastic, p_drop, null } = *rule;
    let (b, n, k) = (idx.len(), source.n_tokens, source.k);
    let targets = source.tokens(idx, stochastic, rng);
    let hidden = draw_mask(b, n, mode, rng);
    let ids: Vec<i64> =
        targets.iter().zip(&hidden).map(|(&t, &h)| if h { k as i64 } else { t }).collect();
    let weights: Vec<f32> =
        hidden.iter().map(|&h| if h || all_positions { 1.0 } else { 0.0 }).collect();
    let labels: Vec<usize> = idx.iter().map(|&i| source.labels[i]).collect();
    let classes: Vec<i64> =
        drop_classes(&labels, null, p_drop, rng).into_iter().map(|c| c as i64).collect();
    PriorBatch {
        ids: int_tensor(ids, [b, n], device),
        classes: Tensor::from_data(TensorData::new(classes, [b]), device),
        targets: int_tensor(targets, [b, n], device),
        weights: Tensor::from_data(TensorData::new(weights, [b, n]), device),
    }
}

/// Test-token losses (masked positions, all positions) of a prior: standard masking, true labels,
/// draws seeded from `seed` alone, so every evaluation of a run sees the same masks.
fn evaluate(
    prior: &MaskGit,
    test: &TokenSource,
    config: &Stage2Config,
    device: &Device,
) -> Result<(f64, f64), Error> {
    let (mut masked, mut all, mut n) = (0.0, 0.0, 0.0);
    for (b, idx) in epoch_batches(test.labels.len(), 256, false, 0, 0)?.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(mix(config.seed, u64::MAX, b as u64));
        let rule = BatchRule {
            mode: MaskMode::Standard,
            all_positions: false,
            stochastic: config.stochastic_tokens,
            p_drop: 0.0,
            null: prior.n_classes(),
        };
        let batch = make_batch(test, &idx, &rule, &mut rng, device);
        let w = idx.len() as f64;
        masked += prior
            .loss(batch.ids.clone(), batch.classes.clone(), batch.targets.clone(), batch.weights)
            .into_scalar::<f32>() as f64
            * w;
        let ones = Tensor::ones(batch.targets.dims(), device);
        all += prior.loss(batch.ids, batch.classes, batch.targets, ones).into_scalar::<f32>()
            as f64
            * w;
        n += w;
    }
    Ok((masked / n, all / n))
}

/// A trained prior: the model in eval mode on the plain device, its test-token losses, the
/// training wall time (resumed segments and the final evaluation included) and the metrics lines
/// of the epochs this call trained.
pub struct TrainedPrior {
    /// The prior (eval mode).
    pub prior: MaskGit,
    /// The variant trained.
    pub variant: Variant,
    /// Tokens per series.
    pub n_tokens: usize,
    /// Test cross-entropy at masked positions (standard masking, true labels), nats per token.
    pub loss: f64,
    /// The same over all positions.
    pub loss_all_positions: f64,
    /// `ln K`, the loss of a prior that knows nothing.
    pub uniform_loss: f64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// One JSON object per epoch trained by this call.
    pub lines: Vec<Value>,
}

/// Trains a MaskGIT prior on the tokens of the frozen `tokenizer` (trained with the SSL branch
/// `ssl`, which picks the variant under [`PriorChoice::Auto`]) for `data.train`, and measures its
/// test-token losses on `data.test`. `device` is a plain device. With `run`, the epochs are
/// logged and checkpointed there, and with `resume` training continues from its latest
/// checkpoint.
pub fn train_prior(
    config: &Stage2Config,
    tokenizer: &VqVae,
    ssl: SslChoice,
    data: &UcrDataset,
    device: &Device,
    ctx: RunContext<'_>,
) -> Result<TrainedPrior, Error> {
    config.validate()?;
    let train_tokens = TokenSource::encode(tokenizer, &data.train, device)?;
    let test_tokens = TokenSource::encode(tokenizer, &data.test, device)?;
    let variant = config.variant(ssl);
    let train_device = device.clone().autodiff();
    train_device.seed(config.seed);
    let prior =
        MaskGitConfig::new(config.trunk(train_tokens.n_tokens, data.num_classes()), variant)
            .init(tokenizer.quantizer().codebook(), &train_device)?;
    let optim = crate::adamw(config.beta1, config.beta2, config.epsilon, config.weight_decay);
    let mode = if variant == Variant::Token && config.inverted_masking {
        MaskMode::Inverted
    } else {
        MaskMode::Standard
    };
    let fit_config = FitConfig::new(config.epochs, config.batch_size, config.lr)
        .with_seed(config.seed)
        .with_checkpoint_every(config.checkpoint_every)
        .with_model_file("prior.bpk");
    let mut task = PriorTask {
        config,
        train: &train_tokens,
        test: &test_tokens,
        mode,
        null: data.num_classes(),
        device,
        train_device: &train_device,
    };
    let fitted = fit(&fit_config, prior, optim, data.train.n(), &mut task, ctx)?;

    let eval_start = Instant::now();
    let prior = fitted.model.valid();
    let (loss, loss_all_positions) = evaluate(&prior, &test_tokens, config, device)?;
    Ok(TrainedPrior {
        prior,
        variant,
        n_tokens: train_tokens.n_tokens,
        loss,
        loss_all_positions,
        uniform_loss: (tokenizer.quantizer().codebook_size() as f64).ln(),
        seconds: fitted.seconds + eval_start.elapsed().as_secs_f64(),
        lines: fitted.lines,
    })
}

/// Stage 2 inside the fit loop: per batch, tokens drawn from the frozen tokenizer's distances, one
/// mask and class dropout, all seeded by `(seed, epoch, batch)`; the test-token losses every
/// `eval_every` epochs.
struct PriorTask<'a> {
    config: &'a Stage2Config,
    train: &'a TokenSource,
    test: &'a TokenSource,
    mode: MaskMode,
    null: usize,
    device: &'a Device,
    train_device: &'a Device,
}

impl Task<MaskGit> for PriorTask<'_> {
    type Error = Error;

    fn step(
        &mut self,
        prior: &MaskGit,
        epoch: usize,
        b: usize,
        idx: &[usize],
    ) -> Result<StepLoss, Error> {
        let c = self.config;
        let mut rng = StdRng::seed_from_u64(mix(c.seed, epoch as u64, b as u64));
        let rule = BatchRule {
            mode: self.mode,
            all_positions: c.loss_on_all_positions,
            stochastic: c.stochastic_tokens,
            p_drop: c.p_unconditional,
            null: self.null,
        };
        let batch = make_batch(self.train, idx, &rule, &mut rng, self.train_device);
        Ok(StepLoss::of(prior.loss(batch.ids, batch.classes, batch.targets, batch.weights)))
    }

    fn after_epoch(
        &mut self,
        prior: &MaskGit,
        epoch: usize,
        last: bool,
        line: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        if self.config.eval_every > 0 && epoch.is_multiple_of(self.config.eval_every) && !last {
            let (masked, all) = evaluate(&prior.valid(), self.test, self.config, self.device)?;
            line.insert("test_loss".into(), masked.into());
            line.insert("test_loss_all_positions".into(), all.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> TokenSource {
        // 3 series × 6 tokens × 4 codes; code j is nearest for every token of series j % 4.
        let (n, k) = (6, 4);
        let neg_dist = (0..3 * n)
            .flat_map(|r| (0..k).map(move |j| if j == (r / n) % k { 0.0 } else { -50.0 }))
            .collect();
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
                    let rule = BatchRule {
                        mode,
                        all_positions: all,
                        stochastic: false,
                        p_drop: 0.0,
                        null: 3,
                    };
                    let b = make_batch(&src, &[0, 1, 2], &rule, &mut rng, &device);
                    let ids = host(b.ids);
                    let hidden: Vec<bool> = ids.iter().map(|&i| i == 4.0).collect();
                    let weights = host(b.weights);
                    for (h, w) in hidden.iter().zip(&weights) {
                        assert_eq!(
                            *w,
                            if *h || all { 1.0 } else { 0.0 },
                            "mode {mode:?}, all positions {all}"
                        );
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
