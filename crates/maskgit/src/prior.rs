//! The MaskGIT prior: the trunk plus the input embedding and output head of the two thesis
//! variants (docs/reference.md §9.3, §9.4).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use kernels::gelu;

use crate::{Error, Trunk, TrunkConfig};

/// Which prior of the thesis.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Variant A (the thesis' baseline prior): a token-id embedding of `K + 1` rows initialised
    /// from the stage-1 codebook (the mask row random), an output head tied to it, and a learned
    /// per-position bias.
    Token,
    /// Variant B (the thesis' NC-VQVAE prior): embeddings are a trainable copy of the stage-1
    /// codebook plus a learned mask vector; an untied linear output head.
    Embedding,
}

/// Settings of [`MaskGit`]; defaults are the reference's (docs/reference.md §9).
#[derive(Config, Debug)]
pub struct MaskGitConfig {
    /// The transformer trunk: token positions N (`5 · W'` of the stage-1 latent), classes (the
    /// null class is index `n_classes`), token-stream width (= codebook dimension) and block sizes.
    pub trunk: TrunkConfig,
    /// The prior variant.
    pub variant: Variant,
    /// Codebook size K; the mask id is `K`. Reference: 32.
    #[config(default = 32)]
    pub codebook_size: usize,
}

/// Variant A's embedding table and output bias.
#[derive(Module, Debug)]
pub struct TokenEmbedding {
    /// `(K + 1, E)`: rows `0..K` start as the stage-1 codebook, row `K` is the mask token.
    table: Param<Tensor<2>>,
    /// Per-position output bias `(N, K + 1)`, initialised to 0.
    bias: Param<Tensor<2>>,
}

/// Variant B's fine-tuned codebook, mask vector and output layer.
#[derive(Module, Debug)]
pub struct CodebookEmbedding {
    /// `(K, E)`: a trainable copy of the stage-1 codebook.
    codebook: Param<Tensor<2>>,
    /// `(E)`: the mask token's embedding.
    mask: Param<Tensor<1>>,
    /// `E → K` with bias.
    out: Linear,
}

/// The variant-specific parts.
#[derive(Module, Debug)]
pub enum Embedder {
    /// Variant A.
    Token(TokenEmbedding),
    /// Variant B.
    Embedding(CodebookEmbedding),
}

/// The class-conditional bidirectional transformer over token grids.
#[derive(Module, Debug)]
pub struct MaskGit {
    trunk: Trunk,
    head_dense: Linear,
    head_norm: LayerNorm,
    embedder: Embedder,
    codebook_size: usize,
    n_classes: usize,
    n_tokens: usize,
}

impl MaskGitConfig {
    /// Builds the prior; `codebook` is the stage-1 codebook `(K, E)` the embeddings start from.
    pub fn init(&self, codebook: Tensor<2>, device: &Device) -> Result<MaskGit, Error> {
        let [k, e] = codebook.dims();
        let (n_tokens, n_classes) = (self.trunk.n_tokens, self.trunk.n_classes);
        if k != self.codebook_size || e != self.trunk.embed_dim {
            return Err(Error::Codebook {
                expected: [self.codebook_size, self.trunk.embed_dim],
                got: [k, e],
            });
        }
        if n_tokens == 0 || n_classes == 0 {
            return Err(Error::Config(format!(
                "n_tokens ({n_tokens}) and n_classes ({n_classes}) must be positive"
            )));
        }
        // Move the codebook onto `device` through host memory (it may live on another device).
        let codebook: Tensor<2> = Tensor::from_data(codebook.into_data(), device);
        let embedder = match self.variant {
            Variant::Token => {
                let mask_row = Tensor::<2>::random([1, e], Distribution::Normal(0.0, 1.0), device);
                Embedder::Token(TokenEmbedding {
                    table: Param::from_tensor(Tensor::cat(vec![codebook, mask_row], 0)),
                    bias: Param::from_tensor(Tensor::zeros([n_tokens, k + 1], device)),
                })
            }
            Variant::Embedding => Embedder::Embedding(CodebookEmbedding {
                codebook: Param::from_tensor(codebook),
                mask: Param::from_tensor(Tensor::random(
                    [e],
                    Distribution::Normal(0.0, 1.0),
                    device,
                )),
                out: LinearConfig::new(e, k).init(device),
            }),
        };
        Ok(MaskGit {
            trunk: self.trunk.init(device),
            head_dense: LinearConfig::new(e, e).init(device),
            head_norm: LayerNormConfig::new(e).with_epsilon(1e-12).init(device),
            embedder,
            codebook_size: k,
            n_classes,
            n_tokens,
        })
    }
}

impl MaskGit {
    /// Codebook size K (the mask id).
    pub fn codebook_size(&self) -> usize {
        self.codebook_size
    }

    /// The mask token id (`K`).
    pub fn mask_id(&self) -> usize {
        self.codebook_size
    }

    /// Real classes; the null class is this index.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Token positions N.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// The variant.
    pub fn variant(&self) -> Variant {
        match self.embedder {
            Embedder::Token(_) => Variant::Token,
            Embedder::Embedding(_) => Variant::Embedding,
        }
    }

    /// Logits over the K real codes at every position, `(B, N, K)`, for token ids `(B, N)` (the
    /// mask id `K` at hidden positions) and class ids `(B)` (`n_classes` = unconditional).
    pub fn logits(&self, ids: Tensor<2, Int>, classes: Tensor<1, Int>) -> Tensor<3> {
        let [b, n] = ids.dims();
        let table = match &self.embedder {
            Embedder::Token(t) => t.table.val(),
            Embedder::Embedding(c) => {
                let e = c.mask.dims()[0];
                Tensor::cat(vec![c.codebook.val(), c.mask.val().reshape([1, e])], 0)
            }
        };
        let e = table.dims()[1];
        let embedded = table.clone().select(0, ids.reshape([b * n])).reshape([b, n, e]);
        let h = self.trunk.forward(embedded, classes);
        let g = self.head_norm.forward(gelu(kernels::linear(&self.head_dense, h)));
        let k = self.codebook_size;
        match &self.embedder {
            Embedder::Token(t) => {
                let tied = kernels::rows_times(g, table.transpose());
                tied.add(t.bias.val().narrow(0, 0, n).reshape([1, n, k + 1])).narrow(2, 0, k)
            }
            Embedder::Embedding(c) => kernels::linear(&c.out, g),
        }
    }

    /// Mean cross-entropy of `targets` `(B, N)` under the logits for `ids`, over the positions
    /// where `weights` `(B, N)` is 1 (0 elsewhere). A batch with no counted position gives 0.
    pub fn loss(
        &self,
        ids: Tensor<2, Int>,
        classes: Tensor<1, Int>,
        targets: Tensor<2, Int>,
        weights: Tensor<2>,
    ) -> Tensor<1> {
        let [b, n] = targets.dims();
        let logp = log_softmax(self.logits(ids, classes), 2);
        let picked = logp.gather(2, targets.reshape([b, n, 1])).reshape([b, n]);
        let count = weights.clone().sum().clamp_min(1.0);
        picked.mul(weights).sum().neg().div(count)
    }
}

/// Builds a `(rows, cols)` Int tensor from host values.
pub fn int_tensor(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codebook(device: &Device) -> Tensor<2> {
        Tensor::random([32, 64], Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn parameter_counts_match_the_reference_for_forda() {
        // Spec §9.3 / §9.4: FordA (N = 75, 2 classes): variant A 1,119,211; variant B 1,118,816.
        let device = Device::flex().autodiff();
        let a = MaskGitConfig::new(TrunkConfig::new(75, 2), Variant::Token)
            .init(codebook(&device), &device)
            .unwrap();
        assert_eq!(vqvae::trainable_params(&a), 1_119_211);
        let b = MaskGitConfig::new(TrunkConfig::new(75, 2), Variant::Embedding)
            .init(codebook(&device), &device)
            .unwrap();
        assert_eq!(vqvae::trainable_params(&b), 1_118_816);
        // Trunk: 1,052,672 (blocks) + 256 + 2·16,384 + 256·(N+1), docs/reference.md §9.2.
        assert_eq!(
            vqvae::trainable_params(&a.trunk),
            1_052_672 + 256 + 2 * 16_384 + 256 * 76 + 76 * 64 + 128 + 3 * 64
        );
    }

    #[test]
    fn logits_have_one_row_per_position_and_depend_on_the_class() {
        let device = Device::flex();
        device.seed(5);
        for variant in [Variant::Token, Variant::Embedding] {
            let prior = MaskGitConfig::new(TrunkConfig::new(40, 5), variant)
                .init(codebook(&device), &device)
                .unwrap();
            let ids = int_tensor((0..3 * 40).map(|i| (i % 33) as i64).collect(), [3, 40], &device);
            let c0 = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 0, 0], [3]), &device);
            let c1 = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 1, 1], [3]), &device);
            let l0 = prior.logits(ids.clone(), c0);
            assert_eq!(l0.dims(), [3, 40, 32]);
            let diff = l0.sub(prior.logits(ids, c1)).abs().max().into_scalar::<f32>();
            assert!(diff > 1e-4, "{variant:?}: the class token must change the logits ({diff})");
        }
    }

    #[test]
    fn every_thesis_token_count_works_for_both_variants() {
        // W' over the 13 thesis datasets is 8, 9, 12, 14 or 15 (docs/reference.md §4.4): N = 5·W'.
        let device = Device::flex();
        for n in [40, 45, 60, 70, 75] {
            for variant in [Variant::Token, Variant::Embedding] {
                let prior = MaskGitConfig::new(TrunkConfig::new(n, 2).with_depth(1), variant)
                    .init(codebook(&device), &device)
                    .unwrap();
                let ids = int_tensor(vec![32; 2 * n], [2, n], &device);
                let classes =
                    Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
                assert_eq!(prior.logits(ids, classes).dims(), [2, n, 32], "N = {n}, {variant:?}");
            }
        }
    }

    #[test]
    fn wrong_codebook_shape_is_an_error() {
        let device = Device::flex();
        let err = MaskGitConfig::new(TrunkConfig::new(40, 2), Variant::Token)
            .init(Tensor::zeros([16, 64], &device), &device)
            .unwrap_err();
        assert!(err.to_string().contains("codebook"), "{err}");
    }

    #[test]
    fn loss_counts_exactly_the_weighted_positions() {
        let device = Device::flex();
        device.seed(2);
        let prior = MaskGitConfig::new(TrunkConfig::new(8, 2), Variant::Embedding)
            .init(codebook(&device), &device)
            .unwrap();
        let ids = int_tensor(vec![32, 1, 2, 32, 4, 5, 32, 7], [1, 8], &device);
        let targets = int_tensor(vec![0, 1, 2, 3, 4, 5, 6, 7], [1, 8], &device);
        let classes = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        let weights: Tensor<2> = Tensor::from_data(
            TensorData::new(vec![1.0f32, 0., 0., 1., 0., 0., 1., 0.], [1, 8]),
            &device,
        );
        let got =
            prior.loss(ids.clone(), classes.clone(), targets.clone(), weights).into_scalar::<f32>();
        // By hand: −mean of log p(target) at positions 0, 3, 6.
        let logp = log_softmax(prior.logits(ids, classes), 2).try_into_vec_as::<f32>().unwrap();
        let want = -[0usize, 3, 6].iter().map(|&p| logp[p * 32 + p]).sum::<f32>() / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn gradients_reach_the_codebook_only_through_visible_positions() {
        // Variant B: the fine-tuned codebook gets gradient from visible tokens; masked positions use
        // the mask vector instead.
        let device = Device::flex().autodiff();
        device.seed(4);
        let prior = MaskGitConfig::new(TrunkConfig::new(4, 2), Variant::Embedding)
            .init(codebook(&device), &device)
            .unwrap();
        let ids = int_tensor(vec![3, 32, 32, 32], [1, 4], &device);
        let targets = int_tensor(vec![3, 1, 2, 0], [1, 4], &device);
        let classes = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let weights: Tensor<2> =
            Tensor::from_data(TensorData::new(vec![0.0f32, 1., 1., 1.], [1, 4]), &device);
        let grads = prior.loss(ids, classes, targets, weights).backward();
        let Embedder::Embedding(c) = &prior.embedder else { unreachable!() };
        let g = c.codebook.val().grad(&grads).unwrap().try_into_vec_as::<f32>().unwrap();
        // Only row 3 is used as an input; the head does not touch the codebook in variant B.
        for (row, chunk) in g.chunks(64).enumerate() {
            let norm: f32 = chunk.iter().map(|v| v * v).sum();
            if row == 3 { assert!(norm > 0.0) } else { assert_eq!(norm, 0.0, "row {row}") }
        }
        assert!(c.mask.val().grad(&grads).is_some());
    }
}
