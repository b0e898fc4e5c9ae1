//! Additive gaussian noise.

use rand_distr::{Distribution, Normal};

use crate::Augmentation;

/// Adds i.i.d. `N(0, sigma²)` to every value (docs/reference.md §7; thesis σ = 0.05).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianNoise {
    /// Standard deviation of the noise.
    pub sigma: f32,
}

impl Default for GaussianNoise {
    fn default() -> Self {
        Self { sigma: 0.05 }
    }
}

impl Augmentation for GaussianNoise {
    fn apply<R: rand::Rng + ?Sized>(&self, series: &[f32], rng: &mut R) -> Vec<f32> {
        match Normal::new(0.0f32, self.sigma) {
            Ok(normal) => series.iter().map(|v| v + normal.sample(rng)).collect(),
            Err(_) => series.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn noise_has_the_configured_spread() {
        let x = vec![3.0f32; 50000];
        let y = GaussianNoise::default().apply(&x, &mut StdRng::seed_from_u64(3));
        let d: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        let std = (d.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / d.len() as f32).sqrt();
        assert!(mean.abs() < 1e-3 && (std - 0.05).abs() < 1e-3, "mean {mean}, std {std}");
    }
}
