//! The transformer trunk of the prior (docs/reference.md §9.2): bidirectional pre-norm blocks with RMSNorm,
//! two-head attention without biases, a one-hidden-layer GELU feed-forward, two learned position
//! embeddings (quirk Q9) and a class token in front of the token sequence.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};
use kernels::{attention_packed, gelu, linear, rms_norm, rows_times};

/// RMSNorm as the reference: `x / max(‖x‖₂, 1e-12) · √d · g`, `g` initialised to 1.
#[derive(Module, Debug)]
pub struct RmsNorm {
    gain: Param<Tensor<1>>,
    scale: f64,
}

impl RmsNorm {
    /// A norm over the last axis of width `dim`.
    pub fn new(dim: usize, device: &Device) -> Self {
        Self { gain: Param::from_tensor(Tensor::ones([dim], device)), scale: (dim as f64).sqrt() }
    }

    /// Normalises `(B, S, dim)` over its last axis (one op each way on the CPU backend,
    /// `kernels::rms_norm`).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        rms_norm(x, self.gain.val(), self.scale, 1e-12)
    }
}

/// Multi-head self-attention without a mask (every position sees every other).
#[derive(Module, Debug)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(width: usize, heads: usize, head_dim: usize, device: &Device) -> Self {
        let inner = heads * head_dim;
        let lin = |a, b| LinearConfig::new(a, b).with_bias(false).init(device);
        Self {
            q: lin(width, inner),
            k: lin(width, inner),
            v: lin(width, inner),
            out: lin(inner, width),
            heads,
            head_dim,
        }
    }

    /// `(B, S, width) → (B, S, width)`. The three projections run as one product with their
    /// weights side by side (`(width, 3·inner)`, a copy of 3 × 32,768 values at the reference
    /// widths), its output going into the attention in that packed layout: one GEMM each way
    /// instead of three, and no sum of three input gradients. The parameters stay three `Linear`
    /// layers, as the reference's (and older checkpoints) have them.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        debug_assert!(
            self.q.bias.is_none() && self.k.bias.is_none() && self.v.bias.is_none(),
            "the projections have no bias"
        );
        let weights =
            Tensor::cat(vec![self.q.weight.val(), self.k.weight.val(), self.v.weight.val()], 1);
        let qkv = rows_times(x, weights);
        linear(&self.out, attention_packed(qkv, self.heads))
    }
}

/// `Linear → GELU (exact) → Linear`, both with bias.
#[derive(Module, Debug)]
pub struct FeedForward {
    up: Linear,
    down: Linear,
}

impl FeedForward {
    fn new(width: usize, hidden: usize, device: &Device) -> Self {
        Self {
            up: LinearConfig::new(width, hidden).init(device),
            down: LinearConfig::new(hidden, width).init(device),
        }
    }

    /// `(B, S, width) → (B, S, width)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.down, gelu(linear(&self.up, x)))
    }
}

/// One pre-norm block: `h + MHA(RMSNorm(h))`, then `h + FF(RMSNorm(h))`.
#[derive(Module, Debug)]
pub struct Block {
    norm_attn: RmsNorm,
    attn: Attention,
    norm_ff: RmsNorm,
    ff: FeedForward,
}

impl Block {
    /// `(B, S, width) → (B, S, width)`.
    pub fn forward(&self, h: Tensor<3>) -> Tensor<3> {
        let h = h.clone().add(self.attn.forward(self.norm_attn.forward(h)));
        h.clone().add(self.ff.forward(self.norm_ff.forward(h)))
    }
}

/// Settings of the [`Trunk`]; defaults are the reference's (docs/reference.md §9.2).
#[derive(Config, Debug)]
pub struct TrunkConfig {
    /// Number of token positions N (`5 · W'`).
    pub n_tokens: usize,
    /// Number of real classes; the null class is index `n_classes`.
    pub n_classes: usize,
    /// Width of the token stream (the codebook dimension). Reference: 64.
    #[config(default = 64)]
    pub embed_dim: usize,
    /// Width of the blocks. Reference: 256.
    #[config(default = 256)]
    pub width: usize,
    /// Number of blocks. Reference: 4.
    #[config(default = 4)]
    pub depth: usize,
    /// Attention heads. Reference: 2.
    #[config(default = 2)]
    pub heads: usize,
    /// Dimension per head. Reference: 64.
    #[config(default = 64)]
    pub head_dim: usize,
    /// Feed-forward hidden width as a multiple of `width`. Reference: 1.
    #[config(default = 1)]
    pub ff_mult: usize,
}

/// Input norm, class token, projections, position embeddings and the blocks.
#[derive(Module, Debug)]
pub struct Trunk {
    pos_outer: Embedding,
    input_norm: LayerNorm,
    class_emb: Embedding,
    project_in: Linear,
    pos_inner: Embedding,
    blocks: Vec<Block>,
    final_norm: RmsNorm,
    project_out: Linear,
}

impl TrunkConfig {
    /// Builds the trunk.
    pub fn init(&self, device: &Device) -> Trunk {
        let n = self.n_tokens;
        Trunk {
            pos_outer: EmbeddingConfig::new(n + 1, self.embed_dim).init(device),
            input_norm: LayerNormConfig::new(self.embed_dim).with_epsilon(1e-12).init(device),
            class_emb: EmbeddingConfig::new(self.n_classes + 1, self.embed_dim).init(device),
            project_in: LinearConfig::new(self.embed_dim, self.width).with_bias(false).init(device),
            pos_inner: EmbeddingConfig::new(n + 1, self.width).init(device),
            blocks: (0..self.depth)
                .map(|_| Block {
                    norm_attn: RmsNorm::new(self.width, device),
                    attn: Attention::new(self.width, self.heads, self.head_dim, device),
                    norm_ff: RmsNorm::new(self.width, device),
                    ff: FeedForward::new(self.width, self.width * self.ff_mult, device),
                })
                .collect(),
            final_norm: RmsNorm::new(self.width, device),
            project_out: LinearConfig::new(self.width, self.embed_dim)
                .with_bias(false)
                .init(device),
        }
    }
}

impl Trunk {
    /// Embedded tokens `(B, N, embed_dim)` and class ids `(B)` (null class included) →
    /// `(B, N, embed_dim)` for the token positions (the class position is dropped).
    pub fn forward(&self, tokens: Tensor<3>, classes: Tensor<1, Int>) -> Tensor<3> {
        let [b, n, e] = tokens.dims();
        let outer = self.pos_outer.weight.val().narrow(0, 0, n).reshape([1, n, e]);
        let h0 = self.input_norm.forward(tokens.add(outer));
        let class = self.class_emb.weight.val().select(0, classes).reshape([b, 1, e]);
        let h = Tensor::cat(vec![class, h0], 1);
        let width = self.pos_inner.weight.dims()[1];
        let inner = self.pos_inner.weight.val().narrow(0, 0, n + 1).reshape([1, n + 1, width]);
        let mut h = linear(&self.project_in, h).add(inner.div_scalar((width as f64).sqrt()));
        for block in &self.blocks {
            h = block.forward(h);
        }
        let h = linear(&self.project_out, self.final_norm.forward(h));
        h.narrow(1, 1, n)
    }
}
