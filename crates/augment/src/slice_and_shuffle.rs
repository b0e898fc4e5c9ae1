//! Slice-and-shuffle: cut into pieces at random points and permute the pieces.

use rand::RngExt;
use rand::seq::SliceRandom;

use crate::Augmentation;

/// Draws `segments − 1` cut points independently from `0..=L−1` (with replacement), sorts them,
/// cuts the series into `segments` pieces (some may be empty) and concatenates them in a random
/// order (docs/reference.md §7; thesis: 4 segments). The values are a permutation of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceAndShuffle {
    /// Number of pieces.
    pub segments: usize,
}

impl Default for SliceAndShuffle {
    fn default() -> Self {
        Self { segments: 4 }
    }
}

impl Augmentation for SliceAndShuffle {
    fn apply<R: rand::Rng + ?Sized>(&self, series: &[f32], rng: &mut R) -> Vec<f32> {
        let l = series.len();
        if l == 0 || self.segments < 2 {
            return series.to_vec();
        }
        let mut cuts: Vec<usize> = (0..self.segments - 1).map(|_| rng.random_range(0..l)).collect();
        cuts.sort_unstable();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(l);
        let mut pieces: Vec<&[f32]> = bounds.windows(2).map(|w| &series[w[0]..w[1]]).collect();
        pieces.shuffle(rng);
        pieces.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn output_is_a_reordering_of_contiguous_pieces() {
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut rng = StdRng::seed_from_u64(4);
        let mut changed = 0;
        for _ in 0..50 {
            let y = SliceAndShuffle::default().apply(&x, &mut rng);
            let mut sorted = y.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, x, "same values");
            // Inside a piece values stay consecutive, so there are at most 3 jumps.
            let jumps = y.windows(2).filter(|w| w[1] != w[0] + 1.0).count();
            assert!(jumps <= 3, "{jumps} jumps");
            changed += usize::from(y != x);
        }
        assert!(changed > 30, "most draws reorder the series ({changed}/50)");
    }
}
