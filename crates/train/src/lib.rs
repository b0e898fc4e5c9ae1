//! Training for the nc-vqvae models on Burn: the reference's recipe as library code.
//!
//! - [`FusedAdamW`]: AdamW with PyTorch's update rule and defaults, one pass over parameter,
//!   gradient and both moments per tensor on the CPU backend.
//! - [`CosineSchedule`]: the cosine learning rate with the reference's step counter (one extra
//!   scheduler step per epoch); [`mix`] derives per-batch seeds.
//! - [`fit()`]: the one training loop (NaN guard, per-epoch metrics line, checkpoint cadence,
//!   resume), driven by a [`Task`] that turns a batch into a loss; every trainer takes a
//!   [`RunContext`]: the run folder (or none), whether to resume, and the [`Progress`] sink.
//! - [`stage1`], [`stage2`], [`fcn`]: the tokenizer, the prior and the FCN classifier trained on
//!   splits in memory, optionally in a run folder (`train_tokenizer` / `TrainedTokenizer`,
//!   `train_prior` / `TrainedPrior`, `train_fcn` / `TrainedFcn`); [`scores`]: sampling and FID / IS / CAS.
//! - [`run_dir`]: run folders written atomically (`metrics.jsonl`, checkpoints that switch in one
//!   rename); [`persist`]: the run's config claimed once, weights and checkpoints saved and loaded.
//!
//! Nothing here parses arguments, draws progress bars or plots; the `nc-vqvae` binary does.

mod adamw;
mod error;
pub mod fcn;
mod fit;
#[cfg(test)]
mod gemm_timing;
pub mod persist;
pub mod run_dir;
mod schedule;
pub mod scores;
pub mod stage1;
pub mod stage2;

pub use adamw::{FusedAdamW, FusedAdamWConfig, adamw, check_adamw};
pub use error::{Error, InvalidSetting};
pub use fit::{FitConfig, Fitted, Progress, RunContext, Silent, StepLoss, Task, fit};
pub use schedule::{CosineSchedule, CosineScheduleConfig, cosine_lr, mix};

/// A tensor's values read back from its device into host memory (a failure is [`Error::Device`]).
pub fn to_host<T: burn::tensor::Element, const D: usize, K: burn::tensor::kind::Basic>(
    t: burn::tensor::Tensor<D, K>,
) -> Result<Vec<T>, Error> {
    t.try_into_vec_as::<T>().map_err(|e| Error::Device(format!("{e:?}")))
}
