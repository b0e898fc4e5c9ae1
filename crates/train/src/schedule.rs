//! The reference's learning-rate schedule and seed mixing.
//!
//! The reference steps a cosine annealing schedule (`T_max` = epochs · (batches per epoch + 1))
//! before every optimiser step and once more at the end of every epoch (its training framework's
//! extra scheduler step, docs/reference.md quirk Q13), so the learning rate never reaches zero and
//! each epoch uses one step more of the curve than it has batches. [`CosineSchedule`] keeps that
//! counter.

/// Cosine learning rate after `step` scheduler steps out of `t_max`: `lr·(1 + cos(π·step/t_max))/2`.
pub fn cosine_lr(lr: f64, step: usize, t_max: usize) -> f64 {
    0.5 * lr * (1.0 + (std::f64::consts::PI * step as f64 / t_max.max(1) as f64).cos())
}

/// Settings of the reference's cosine schedule, as a Burn config: the peak learning rate and the
/// run's length; [`init`](Self::init) gives the [`CosineSchedule`].
#[derive(burn::config::Config, Debug)]
pub struct CosineScheduleConfig {
    /// Peak learning rate (step 0). Thesis: 1e-3.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Training epochs.
    pub epochs: usize,
    /// Optimiser steps per epoch (batches, the last partial one included).
    pub steps_per_epoch: usize,
}

impl CosineScheduleConfig {
    /// The schedule, with the reference's extra scheduler step per epoch.
    pub fn init(&self) -> CosineSchedule {
        CosineSchedule::for_epochs(self.lr, self.epochs, self.steps_per_epoch)
    }
}

/// The reference's cosine schedule over a whole run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// Peak learning rate (step 0).
    pub lr: f64,
    /// Scheduler steps of the whole run.
    pub t_max: usize,
}

impl CosineSchedule {
    /// The schedule of `epochs` epochs of `steps_per_epoch` optimiser steps each, with the extra
    /// scheduler step per epoch (`t_max = epochs · (steps_per_epoch + 1)`).
    pub fn for_epochs(lr: f64, epochs: usize, steps_per_epoch: usize) -> Self {
        Self { lr, t_max: epochs * (steps_per_epoch + 1) }
    }

    /// The learning rate after `step` scheduler steps.
    pub fn lr_at(&self, step: usize) -> f64 {
        cosine_lr(self.lr, step, self.t_max)
    }
}

/// Mixes a seed with two counters into one RNG seed (the splitmix64 finaliser): the augmented views,
/// token draws and masks of batch `b` of epoch `e` come from `mix(seed, e, b)`, so a resumed run
/// draws what the uninterrupted one would.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_reaches_zero_at_t_max() {
        assert_eq!(cosine_lr(1e-3, 0, 100), 1e-3);
        assert!((cosine_lr(1e-3, 50, 100) - 5e-4).abs() < 1e-12);
        assert!(cosine_lr(1e-3, 100, 100).abs() < 1e-15);
    }

    #[test]
    fn the_schedule_counts_one_extra_step_per_epoch() {
        let s = CosineSchedule::for_epochs(1e-3, 10, 4);
        assert_eq!(s, CosineScheduleConfig::new(10, 4).init());
        assert_eq!(s.t_max, 50);
        assert_eq!(s.lr_at(25), cosine_lr(1e-3, 25, 50));
        assert!((s.lr_at(25) - 5e-4).abs() < 1e-12);
    }

    #[test]
    fn mixed_seeds_differ() {
        assert_ne!(mix(1, 0, 0), mix(1, 0, 1));
        assert_ne!(mix(1, 1, 0), mix(1, 0, 1));
        assert_eq!(mix(3, 4, 5), mix(3, 4, 5));
    }
}
