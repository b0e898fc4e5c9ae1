//! The thesis' augmentation recipes and batch-wise, seeded application.

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::{AmplitudeResize, Augmentation, GaussianNoise, SliceAndShuffle, WindowWarp};

/// An augmentation recipe of the thesis (docs/reference.md §7): a fixed, ordered list of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// Window warp (ratio 0.4, scale U(0.9, 2.0)), then amplitude resize (σ = 0.2).
    Warp,
    /// Slice-and-shuffle with 4 segments.
    Slice,
    /// Gaussian noise, σ = 0.05.
    Gauss,
}

impl Recipe {
    /// Every recipe, in the order of the thesis' tables.
    pub const ALL: [Recipe; 3] = [Recipe::Warp, Recipe::Slice, Recipe::Gauss];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Warp => "warp",
            Recipe::Slice => "slice",
            Recipe::Gauss => "gauss",
        }
    }

    /// Applies the recipe to one series.
    pub fn apply<R: rand::Rng + ?Sized>(self, series: &[f32], rng: &mut R) -> Vec<f32> {
        match self {
            Recipe::Warp => {
                AmplitudeResize::default().apply(&WindowWarp::default().apply(series, rng), rng)
            }
            Recipe::Slice => SliceAndShuffle::default().apply(series, rng),
            Recipe::Gauss => GaussianNoise::default().apply(series, rng),
        }
    }
}

/// An unknown recipe name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown augmentation '{0}' (expected warp, slice or gauss)")]
pub struct ParseRecipeError(pub String);

impl std::str::FromStr for Recipe {
    type Err = ParseRecipeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "warp" => Ok(Recipe::Warp),
            "slice" => Ok(Recipe::Slice),
            "gauss" => Ok(Recipe::Gauss),
            other => Err(ParseRecipeError(other.to_string())),
        }
    }
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Applies a [`Recipe`] to every series of a row-major batch, seeded per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augmenter {
    recipe: Recipe,
    faithful_stft_zeros: bool,
}

impl Augmenter {
    /// An augmenter for `recipe`, without the reference's STFT-round-trip artefact.
    pub fn new(recipe: Recipe) -> Self {
        Self { recipe, faithful_stft_zeros: false }
    }

    /// Reproduces spec quirk Q3: the reference's `n_fft = 32` STFT round trip returns only
    /// `8·⌊L/8⌋` samples, so the last `L mod 8` samples of every view become 0.
    pub fn with_faithful_stft_zeros(mut self, on: bool) -> Self {
        self.faithful_stft_zeros = on;
        self
    }

    /// The recipe.
    pub fn recipe(&self) -> Recipe {
        self.recipe
    }

    /// Augments each series of `batch` (row-major, `length` values per series) with one RNG
    /// seeded from `seed`: the same seed always gives the same views.
    ///
    /// # Panics
    /// If `length` is 0 or does not divide the batch size.
    pub fn apply_batch(&self, batch: &[f32], length: usize, seed: u64) -> Vec<f32> {
        assert!(
            length > 0 && batch.len().is_multiple_of(length),
            "batch of {} values is not a multiple of {length}",
            batch.len()
        );
        let mut rng = StdRng::seed_from_u64(seed);
        let keep = if self.faithful_stft_zeros { 8 * (length / 8) } else { length };
        let mut out = Vec::with_capacity(batch.len());
        for series in batch.chunks(length) {
            let mut view = self.recipe.apply(series, &mut rng);
            view[keep..].iter_mut().for_each(|v| *v = 0.0);
            out.extend(view);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_seeded_and_recipes_parse() {
        let x: Vec<f32> = (0..3 * 70).map(|i| (i as f32 * 0.3).sin()).collect();
        for recipe in [Recipe::Warp, Recipe::Slice, Recipe::Gauss] {
            let a = Augmenter::new(recipe).apply_batch(&x, 70, 9);
            assert_eq!(a, Augmenter::new(recipe).apply_batch(&x, 70, 9), "{recipe}");
            assert_ne!(a, Augmenter::new(recipe).apply_batch(&x, 70, 10), "{recipe}");
            assert_ne!(a, x, "{recipe} changes the data");
            assert_eq!(recipe.name().parse::<Recipe>(), Ok(recipe));
        }
        assert!("jitter".parse::<Recipe>().is_err());
    }

    #[test]
    fn faithful_mode_zeroes_the_tail() {
        let x: Vec<f32> = vec![1.0; 2 * 70];
        let v = Augmenter::new(Recipe::Gauss).with_faithful_stft_zeros(true).apply_batch(&x, 70, 1);
        for s in v.chunks(70) {
            assert!(s[64..].iter().all(|&v| v == 0.0), "70 mod 8 = 6 zeros");
            assert!(s[..64].iter().all(|&v| v != 0.0));
        }
    }
}
