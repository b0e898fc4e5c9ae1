//! # nc-vqvae
//!
//! Self-supervised time-series tokenization (NC-VQVAE) and generation (MaskGIT) on
//! [Burn](https://burn.dev), as a family of small crates re-exported here under one name:
//!
//! | crate | holds |
//! |---|---|
//! | [`ucr_data`] | UCR archive loading, validation, normalisation, batching |
//! | [`tf_transform`] | differentiable STFT / ISTFT |
//! | [`augment`] | the thesis' augmentations |
//! | [`vqvae`] | the VQ-VAE tokenizer and NC-VQVAE |
//! | [`ssl_losses`] | Barlow Twins, VIbCReg, projector, IterNorm |
//! | [`maskgit`] | the MaskGIT prior and iterative decoding |
//! | [`metrics`] | KNN / SVM probes; the FCN, FID, IS, CAS |
//! | [`train`] | the training recipe: fused AdamW, the cosine schedule, the fit loop, stage-1 / stage-2 / FCN training on splits in memory, run folders ([`train::run_dir`]) |
//!
//! On top of them, the *job API*: runs in folders named by dataset, as the `nc-vqvae` command
//! line runs them: [`stage1`] (the tokenizer), [`stage2`] (the prior, sampling), [`fcn`] (the
//! classifier behind FID / IS / CAS), [`evaluate`], [`encode`] (tokens and features of any file of
//! series), the main job ([`pipeline`], its [`report`]), [`sweep`]s and the thesis campaign's
//! tables ([`campaign`]), [`status`] of any of those folders; layered TOML settings ([`config`]),
//! dataset reports ([`inspect`]) and the thesis' published numbers ([`thesis`]). Every command
//! fails with [`RunError`]. No file here defines a training loop: they all run `train::fit`. Library
//! code never chooses a device; the `nc-vqvae` binary (`src/cli/`) maps `--backend` to one.

pub mod campaign;
pub mod config;
pub mod encode;
mod error;
pub mod evaluate;
pub mod fcn;
pub mod inspect;
pub mod pipeline;
mod plot;
mod progress;
pub mod report;
pub mod stage1;
pub mod stage2;
pub mod status;
pub mod sweep;
pub mod thesis;

pub use error::RunError;
pub use plot::PlotError;
pub use progress::{Mode as ProgressMode, set_mode as set_progress_mode};

pub use augment;
pub use maskgit;
pub use metrics;
pub use ssl_losses;
pub use tf_transform;
pub use train;
pub use ucr_data;
pub use vqvae;
