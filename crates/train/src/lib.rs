//! Training building blocks shared by the nc-vqvae stages.
//!
//! - [`FusedAdamW`]: AdamW with PyTorch's update rule and defaults, one pass over parameter,
//!   gradient and both moments per tensor on the CPU backend.

mod adamw;
#[cfg(test)]
mod gemm_timing;

pub use adamw::{FusedAdamW, FusedAdamWConfig};
