//! The cosine masking schedule (docs/reference.md §9.1, §9.5), training masks in both the standard and the
//! reference's inverted form (quirk Q5), stochastic training tokens (quirk Q8) and class dropout.

use rand::RngExt;

/// The MaskGIT schedule `γ(r) = cos(πr/2)`: the fraction of tokens still masked at progress `r`.
pub fn gamma(r: f64) -> f64 {
    (std::f64::consts::FRAC_PI_2 * r).cos()
}

/// Which positions of a training sequence are hidden.
#[derive(burn::config::Config, Debug, Copy, PartialEq, Eq)]
pub enum MaskMode {
    /// Standard MaskGIT: the `⌊γ(t)·N⌋` chosen positions are replaced by the mask token (sane;
    /// always the case for the embedding variant).
    Standard,
    /// The reference's token variant (quirk Q5, faithful): the chosen positions keep their token and
    /// all others are masked.
    Inverted,
}

/// Draws one training mask for a batch of `b` sequences of `n` tokens: one `t ~ U[0, 1)` for the
/// whole batch, `m = ⌊γ(t)·n⌋`, and per sequence the `m` positions with the largest uniform noise
/// are chosen. Returns `b·n` flags, `true` = the position shows the mask token. In standard mode at
/// least one position per sequence is masked (at `t` near 1 the formula gives `m = 0`, a step with
/// nothing to learn from).
pub fn draw_mask<R: rand::Rng + ?Sized>(
    b: usize,
    n: usize,
    mode: MaskMode,
    rng: &mut R,
) -> Vec<bool> {
    let t: f64 = rng.random();
    let mut m = (gamma(t) * n as f64).floor() as usize;
    if mode == MaskMode::Standard {
        m = m.max(1);
    }
    let mut out = Vec::with_capacity(b * n);
    let mut order: Vec<(f32, usize)> = Vec::with_capacity(n);
    for _ in 0..b {
        order.clear();
        order.extend((0..n).map(|p| (rng.random::<f32>(), p)));
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut chosen = vec![false; n];
        for &(_, p) in order.iter().take(m) {
            chosen[p] = true;
        }
        out.extend(chosen.into_iter().map(|c| if mode == MaskMode::Standard { c } else { !c }));
    }
    out
}

/// Draws one code per row of `neg_dist` (`rows × k`, the values `−‖z − e_j‖²`): from
/// `softmax(neg_dist)` when `stochastic` (the reference's training tokens, quirk Q8), else the
/// argmax (nearest codeword).
pub fn draw_codes<R: rand::Rng + ?Sized>(
    neg_dist: &[f32],
    k: usize,
    stochastic: bool,
    rng: &mut R,
) -> Vec<i64> {
    neg_dist
        .chunks_exact(k)
        .map(|row| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(j, _)| j)
                .unwrap_or(0);
            if !stochastic {
                return best as i64;
            }
            categorical(row, rng).unwrap_or(best) as i64
        })
        .collect()
}

/// Samples an index from `softmax(logits)`; `None` if the logits are not finite.
pub fn categorical<R: rand::Rng + ?Sized>(logits: &[f32], rng: &mut R) -> Option<usize> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    Some(pick(logits, max, rng.random::<f64>(), &mut Vec::new()).0)
}

/// The index [`categorical`] draws with the uniform `u` from `logits` whose (finite) maximum is
/// `max`, and the softmax's normaliser `Σ exp(l − max)`; `weights` is scratch.
pub(crate) fn pick(logits: &[f32], max: f32, u: f64, weights: &mut Vec<f64>) -> (usize, f64) {
    weights.clear();
    weights.extend(logits.iter().map(|&l| ((l - max) as f64).exp()));
    let total: f64 = weights.iter().sum();
    let mut u = u * total;
    for (j, w) in weights.iter().enumerate() {
        u -= w;
        if u < 0.0 {
            return (j, total);
        }
    }
    (logits.len() - 1, total)
}

/// Class dropout: each label is replaced by the null class `null` with probability `p`.
pub fn drop_classes<R: rand::Rng + ?Sized>(
    classes: &[usize],
    null: usize,
    p: f64,
    rng: &mut R,
) -> Vec<usize> {
    classes.iter().map(|&c| if p > 0.0 && rng.random::<f64>() < p { null } else { c }).collect()
}

/// Tokens fixed at each of the `steps` decoding steps for `n` positions (docs/reference.md §9.5): after step
/// `t`, `⌊n·γ((t+1)/steps)⌋` positions stay masked.
pub fn tokens_fixed_per_step(n: usize, steps: usize) -> Vec<usize> {
    let mut masked = n;
    (0..steps)
        .map(|t| {
            let keep_masked = still_masked(n, t, steps);
            let fixed = masked - keep_masked;
            masked = keep_masked;
            fixed
        })
        .collect()
}

/// Positions that stay masked after decoding step `t` of `steps`: `⌊n·γ((t+1)/steps)⌋`.
pub fn still_masked(n: usize, t: usize, steps: usize) -> usize {
    let r = (t + 1) as f64 / steps as f64;
    ((n as f64 * gamma(r)).floor() as usize).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn decoding_schedule_matches_the_reference_for_n_75() {
        // Spec §9.5: for N = 75 the tokens fixed per step are 1, 3, 5, 6, 7, 9, 10, 11, 12, 11.
        assert_eq!(tokens_fixed_per_step(75, 10), vec![1, 3, 5, 6, 7, 9, 10, 11, 12, 11]);
        for n in [40, 45, 60, 75] {
            assert_eq!(
                tokens_fixed_per_step(n, 10).iter().sum::<usize>(),
                n,
                "every position gets fixed, N = {n}"
            );
            assert_eq!(still_masked(n, 9, 10), 0);
        }
    }

    #[test]
    fn standard_and_inverted_masks_are_complements_for_the_same_draws() {
        let (b, n) = (16, 40);
        for seed in 0..50 {
            let standard = draw_mask(b, n, MaskMode::Standard, &mut StdRng::seed_from_u64(seed));
            let inverted = draw_mask(b, n, MaskMode::Inverted, &mut StdRng::seed_from_u64(seed));
            // The same t and noise: recompute m to check the counts per sequence.
            let t: f64 = StdRng::seed_from_u64(seed).random();
            let m = (gamma(t) * n as f64).floor() as usize;
            for s in 0..b {
                let row_std = &standard[s * n..(s + 1) * n];
                let row_inv = &inverted[s * n..(s + 1) * n];
                assert_eq!(
                    row_std.iter().filter(|&&x| x).count(),
                    m.max(1),
                    "standard hides m (≥ 1)"
                );
                assert_eq!(row_inv.iter().filter(|&&x| x).count(), n - m, "inverted hides N − m");
                if m >= 1 {
                    assert!(row_std.iter().zip(row_inv).all(|(a, b)| a != b), "complements");
                }
            }
        }
    }

    #[test]
    fn mean_mask_ratio_follows_the_schedule() {
        // E[γ(t)] over t ~ U[0,1) is 2/π ≈ 0.637 (standard); the inverted rule hides ≈ 1 − 0.637.
        let mut rng = StdRng::seed_from_u64(7);
        let (b, n, draws) = (1, 64, 4000);
        let mut std_frac = 0.0;
        let mut inv_frac = 0.0;
        for _ in 0..draws {
            std_frac += draw_mask(b, n, MaskMode::Standard, &mut rng).iter().filter(|&&x| x).count()
                as f64
                / n as f64;
            inv_frac += draw_mask(b, n, MaskMode::Inverted, &mut rng).iter().filter(|&&x| x).count()
                as f64
                / n as f64;
        }
        let (std_frac, inv_frac) = (std_frac / draws as f64, inv_frac / draws as f64);
        assert!((std_frac - 0.637).abs() < 0.03, "standard mean ratio {std_frac}");
        assert!((inv_frac - 0.37).abs() < 0.03, "inverted mean ratio {inv_frac}");
    }

    #[test]
    fn stochastic_codes_follow_the_softmax_and_argmin_is_nearest() {
        let neg = [0.0f32, (3.0f32).ln(), -1e9]; // probabilities 1/4, 3/4, 0
        let mut rng = StdRng::seed_from_u64(1);
        let rows: Vec<f32> = neg.iter().copied().cycle().take(3 * 20_000).collect();
        let codes = draw_codes(&rows, 3, true, &mut rng);
        let ones = codes.iter().filter(|&&c| c == 1).count() as f64 / codes.len() as f64;
        assert!((ones - 0.75).abs() < 0.01, "{ones}");
        assert!(!codes.contains(&2));
        assert!(draw_codes(&rows, 3, false, &mut rng).iter().all(|&c| c == 1));
    }

    #[test]
    fn class_dropout_rate() {
        let mut rng = StdRng::seed_from_u64(3);
        let labels = vec![1usize; 20_000];
        let dropped = drop_classes(&labels, 5, 0.2, &mut rng);
        let frac = dropped.iter().filter(|&&c| c == 5).count() as f64 / labels.len() as f64;
        assert!((frac - 0.2).abs() < 0.01, "{frac}");
        assert_eq!(drop_classes(&labels, 5, 0.0, &mut rng), labels);
    }
}
