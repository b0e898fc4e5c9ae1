//! Window warp: stretch (or squeeze) one window of the series, then resample back to the length.

use rand::RngExt;

use crate::Augmentation;

/// Linear interpolation of `values` (at positions `0..n`) onto `count` equally spaced positions
/// from 0 to `n − 1` (first and last sample preserved), like `np.interp(np.linspace(0, n−1, count),
/// np.arange(n), values)`.
pub fn linear_resample(values: &[f32], count: usize) -> Vec<f32> {
    let n = values.len();
    match (n, count) {
        (0, _) | (_, 0) => return Vec::new(),
        (1, _) => return vec![values[0]; count],
        (_, 1) => return vec![values[0]],
        _ => {}
    }
    let step = (n - 1) as f64 / (count - 1) as f64;
    (0..count)
        .map(|i| {
            let pos = i as f64 * step;
            let left = (pos.floor() as usize).min(n - 2);
            let frac = pos - left as f64;
            (values[left] as f64 * (1.0 - frac) + values[left + 1] as f64 * frac) as f32
        })
        .collect()
}

/// Window warp (docs/reference.md §7): window `w = max(round(ratio·L), 1)` starting at `a ~ U{0, …, L−w−1}`,
/// resampled to `⌊w·s⌋` points with `s ~ U(scale_min, scale_max)`, spliced back, and the spliced
/// series (length `L − w + ⌊w·s⌋`) resampled to `L` points. Thesis: ratio 0.4, scale U(0.9, 2.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowWarp {
    /// Window length as a fraction of the series length.
    pub window_ratio: f64,
    /// Smallest scale factor.
    pub scale_min: f64,
    /// Largest scale factor.
    pub scale_max: f64,
}

impl Default for WindowWarp {
    fn default() -> Self {
        Self { window_ratio: 0.4, scale_min: 0.9, scale_max: 2.0 }
    }
}

impl Augmentation for WindowWarp {
    fn apply<R: rand::Rng + ?Sized>(&self, series: &[f32], rng: &mut R) -> Vec<f32> {
        let l = series.len();
        if l < 2 {
            return series.to_vec();
        }
        let w = ((self.window_ratio * l as f64).round() as usize).clamp(1, l);
        let start = if l > w + 1 { rng.random_range(0..l - w) } else { 0 };
        let scale = rng.random_range(self.scale_min..self.scale_max);
        let warped_len = ((w as f64 * scale).floor() as usize).max(1);
        let warped = linear_resample(&series[start..start + w], warped_len);
        let spliced = [&series[..start], &warped[..], &series[start + w..]].concat();
        linear_resample(&spliced, l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn resampling_matches_hand_computed_values() {
        assert_eq!(linear_resample(&[0.0, 10.0], 5), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(linear_resample(&[0.0, 2.0, 4.0, 6.0, 8.0], 3), vec![0.0, 4.0, 8.0]);
        assert_eq!(linear_resample(&[1.0, 3.0, 2.0], 3), vec![1.0, 3.0, 2.0], "identity");
    }

    #[test]
    fn warp_keeps_length_ends_and_linear_ramps() {
        let ramp: Vec<f32> = (0..140).map(|i| i as f32).collect();
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..20 {
            let y = WindowWarp::default().apply(&ramp, &mut rng);
            assert_eq!(y.len(), 140);
            assert_eq!((y[0], y[139]), (0.0, 139.0), "first and last sample preserved");
            assert!(y.windows(2).all(|p| p[1] >= p[0] - 1e-4), "a warp of a ramp stays monotone");
        }
        // A non-trivial warp moves interior samples.
        let y = WindowWarp::default().apply(&ramp, &mut StdRng::seed_from_u64(6));
        let moved = y.iter().zip(&ramp).filter(|(a, b)| (*a - *b).abs() > 0.5).count();
        assert!(moved > 10, "{moved} samples moved");
    }
}
