//! Amplitude resize: one random gain per series.

use rand_distr::{Distribution, Normal};

use crate::Augmentation;

/// Multiplies the whole series by `1 + N(0, sigma²)` (docs/reference.md §7; thesis σ = 0.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmplitudeResize {
    /// Standard deviation of the gain around 1.
    pub sigma: f32,
}

impl Default for AmplitudeResize {
    fn default() -> Self {
        Self { sigma: 0.2 }
    }
}

impl Augmentation for AmplitudeResize {
    fn apply<R: rand::Rng + ?Sized>(&self, series: &[f32], rng: &mut R) -> Vec<f32> {
        let gain = 1.0 + Normal::new(0.0, self.sigma as f64).map_or(0.0, |n| n.sample(rng)) as f32;
        series.iter().map(|v| v * gain).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn one_gain_for_the_whole_series() {
        let x = [1.0f32, -2.0, 4.0];
        let y = AmplitudeResize::default().apply(&x, &mut StdRng::seed_from_u64(1));
        let gain = y[0] / x[0];
        assert!(y.iter().zip(&x).all(|(a, b)| (a / b - gain).abs() < 1e-6));
        assert!(gain != 1.0);
        // The gain is 1 + N(0, 0.2²): its mean and spread over many draws.
        let mut rng = StdRng::seed_from_u64(2);
        let gains: Vec<f32> =
            (0..20000).map(|_| AmplitudeResize::default().apply(&[1.0], &mut rng)[0]).collect();
        let mean = gains.iter().sum::<f32>() / gains.len() as f32;
        let std =
            (gains.iter().map(|g| (g - mean).powi(2)).sum::<f32>() / gains.len() as f32).sqrt();
        assert!((mean - 1.0).abs() < 0.01 && (std - 0.2).abs() < 0.01, "mean {mean}, std {std}");
    }
}
