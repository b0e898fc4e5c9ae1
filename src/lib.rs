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
//! | [`metrics`] | KNN / SVM probes; FCN, FID, IS, CAS (planned) |
//!
//! This package also holds what ties them together for the `nc-vqvae` command line: backend
//! selection ([`backend`]), dataset reports ([`inspect`]), run folders with atomic writes and
//! checkpoints ([`run_dir`]), the stage-1 training loop ([`stage1`]), the stage-2 prior training and
//! sampling ([`stage2`]) and PNG plots ([`plot`]). Library crates never choose a
//! device; only the binary maps `--backend` to one.

pub mod alloc;
pub mod backend;
pub mod bench;
pub mod config;
pub mod evaluate;
pub mod fcn;
pub mod inspect;
pub mod pipeline;
pub mod plot;
pub mod report;
pub mod run_dir;
pub mod stage1;
pub mod stage2;
pub mod sweep;
pub mod thesis;

pub use augment;
pub use maskgit;
pub use metrics;
pub use ssl_losses;
pub use tf_transform;
pub use ucr_data;
pub use vqvae;
