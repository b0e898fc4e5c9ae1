#![doc = include_str!("../README.md")]

mod masking;
mod prior;
mod sampling;
mod transformer;

pub use masking::{
    MaskMode, categorical, draw_codes, draw_mask, drop_classes, gamma, still_masked,
    tokens_fixed_per_step,
};
pub use prior::{
    CodebookEmbedding, Embedder, MaskGit, MaskGitConfig, TokenEmbedding, Variant, int_tensor,
};
pub use sampling::{SamplerConfig, sample};
pub use transformer::{Attention, Block, FeedForward, RmsNorm, Trunk, TrunkConfig};

/// Errors of the prior.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The stage-1 codebook does not have the configured shape.
    #[error("stage-1 codebook is {got:?}, the prior expects {expected:?}")]
    Codebook {
        /// `[K, E]` configured.
        expected: [usize; 2],
        /// `[K, E]` given.
        got: [usize; 2],
    },
    /// A class index outside the prior's classes.
    #[error("class {class} is not one of the prior's {n_classes} classes (0..{n_classes})")]
    Class {
        /// The index given.
        class: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// Invalid settings.
    #[error("invalid prior settings: {0}")]
    Config(String),
    /// The logits at a position are NaN or infinite.
    #[error("the prior's logits are not finite at position {position}")]
    NonFinite {
        /// Token position.
        position: usize,
    },
    /// Reading values back from the device failed.
    #[error("reading from the device failed: {0}")]
    Device(String),
}
