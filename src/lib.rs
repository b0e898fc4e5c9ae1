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
//! | [`train`] | the training recipe: fused AdamW, the cosine schedule, the fit loop, stage-1 / stage-2 / FCN training on splits in memory, run folders ([`run_dir`]) |
//!
//! This package also holds the `nc-vqvae` command line around them: backend selection
//! ([`backend`]), layered TOML configs ([`config`]), dataset reports ([`inspect`]), runs in folders
//! by dataset name ([`stage1`], [`stage2`] with sampling, [`fcn`]), tokens and features of any
//! file of series ([`encode`]), the progress bar
//! ([`progress`]), FID / IS / CAS of a finished run ([`evaluate`]), the main job and its report
//! ([`pipeline`], [`report`], [`plot`]), sweeps ([`sweep`]) and benchmarks ([`bench`]). No file
//! here defines a training loop: they all run `train::fit`. Library crates never choose a device;
//! only the binary maps `--backend` to one.

pub mod alloc;
pub mod backend;
pub mod bench;
pub mod campaign;
pub mod config;
pub mod encode;
pub mod evaluate;
pub mod fcn;
pub mod inspect;
pub mod pipeline;
pub mod plot;
pub mod progress;
pub mod report;
pub mod stage1;
pub mod stage2;
pub mod status;
pub mod sweep;
pub mod thesis;

pub use augment;
pub use maskgit;
pub use metrics;
pub use ssl_losses;
pub use tf_transform;
pub use train;
pub use train::run_dir;
pub use ucr_data;
pub use vqvae;
