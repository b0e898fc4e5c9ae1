#![doc = include_str!("../README.md")]

mod amplitude_resize;
mod gaussian_noise;
mod recipe;
mod slice_and_shuffle;
mod window_warp;

pub use amplitude_resize::AmplitudeResize;
pub use gaussian_noise::GaussianNoise;
pub use recipe::{Augmenter, ParseRecipeError, Recipe};
pub use slice_and_shuffle::SliceAndShuffle;
pub use window_warp::{WindowWarp, linear_resample};

/// One augmentation of a single series, drawing its randomness from `rng`.
pub trait Augmentation {
    /// Returns the augmented copy of `series` (same length).
    fn apply<R: rand::Rng + ?Sized>(&self, series: &[f32], rng: &mut R) -> Vec<f32>;
}
