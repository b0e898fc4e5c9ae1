//! Scores of generated series computed from a classifier's outputs (docs/reference.md §10.3–§10.5): FID on
//! feature vectors, IS on class probabilities, and the CAS bookkeeping (sample counts per class,
//! the reference's running accuracy).

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Invalid input to a generative score.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    /// Sizes do not fit together.
    #[error("score input: {0}")]
    Shape(String),
    /// A value is NaN or infinite.
    #[error("score input: non-finite value at index {0}")]
    NonFinite(usize),
}

fn rows(values: &[f32], dim: usize, what: &str) -> Result<DMatrix<f64>, ScoreError> {
    if dim == 0 || values.is_empty() || !values.len().is_multiple_of(dim) {
        return Err(ScoreError::Shape(format!(
            "{what}: {} values do not form rows of {dim}",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ScoreError::NonFinite(i));
    }
    Ok(DMatrix::from_row_iterator(values.len() / dim, dim, values.iter().map(|&v| v as f64)))
}

/// Mean `(d)` and unbiased covariance `(d × d)` (divisor `n − 1`, as `numpy.cov`) of the rows of `x`.
pub fn mean_and_covariance(x: &DMatrix<f64>) -> Result<(DVector<f64>, DMatrix<f64>), ScoreError> {
    let n = x.nrows();
    if n < 2 {
        return Err(ScoreError::Shape(format!("a covariance needs at least 2 rows, got {n}")));
    }
    let mean = x.row_mean().transpose();
    let mut centred = x.clone();
    for mut row in centred.row_iter_mut() {
        row -= mean.transpose();
    }
    let cov = centred.transpose() * &centred / (n as f64 - 1.0);
    Ok((mean, cov))
}

/// Square root of a symmetric positive semi-definite matrix by its eigendecomposition
/// (`V · diag(√max(λ, 0)) · Vᵀ`; tiny negative eigenvalues from rounding are clamped to 0).
pub fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym);
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// Fréchet distance between Gaussians fitted to two feature sets (rows of `dim` values):
/// `‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g) − 2·Σ √max(λ_i, 0)`, with `λ_i` the eigenvalues of the symmetric
/// PSD matrix `Σ_r^{1/2} Σ_g Σ_r^{1/2}` (equal to `Tr((Σ_r Σ_g)^{1/2})`, docs/reference.md §10.3).
pub fn fid(real: &[f32], generated: &[f32], dim: usize) -> Result<f64, ScoreError> {
    let (mu_r, cov_r) = mean_and_covariance(&rows(real, dim, "real features")?)?;
    let (mu_g, cov_g) = mean_and_covariance(&rows(generated, dim, "generated features")?)?;
    Ok(frechet_distance(&mu_r, &cov_r, &mu_g, &cov_g))
}

/// The Fréchet distance of two Gaussians given by mean and covariance.
pub fn frechet_distance(
    mu_r: &DVector<f64>,
    cov_r: &DMatrix<f64>,
    mu_g: &DVector<f64>,
    cov_g: &DMatrix<f64>,
) -> f64 {
    let root_r = sqrt_psd(cov_r);
    let middle = &root_r * cov_g * &root_r;
    let middle = (&middle + middle.transpose()) * 0.5;
    let cross: f64 =
        SymmetricEigen::new(middle).eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    (mu_r - mu_g).norm_squared() + cov_r.trace() + cov_g.trace() - 2.0 * cross
}

/// Inception score (docs/reference.md §10.4) of class probabilities `probs` (rows of `k`, each summing to 1):
/// rows shuffled with `seed`, cut into `splits` parts of `⌊n/splits⌋` rows (remainder dropped),
/// `IS_j = exp(mean_i Σ_c P_ic (ln(P_ic + 1e-16) − ln(p̄_c + 1e-16)))`. Returns the mean and the
/// population standard deviation over the parts.
pub fn inception_score(
    probs: &[f32],
    k: usize,
    splits: usize,
    seed: u64,
) -> Result<(f64, f64), ScoreError> {
    let p = rows(probs, k, "class probabilities")?;
    let n = p.nrows();
    if splits == 0 || n < splits {
        return Err(ScoreError::Shape(format!("{n} rows cannot be cut into {splits} splits")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let part = n / splits;
    let scores: Vec<f64> = order
        .chunks_exact(part)
        .take(splits)
        .map(|idx| {
            let mut marginal = vec![0.0; k];
            for &i in idx {
                for (c, m) in marginal.iter_mut().enumerate() {
                    *m += p[(i, c)] / idx.len() as f64;
                }
            }
            let kl: f64 = idx
                .iter()
                .map(|&i| {
                    (0..k)
                        .map(|c| {
                            p[(i, c)] * ((p[(i, c)] + 1e-16).ln() - (marginal[c] + 1e-16).ln())
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / idx.len() as f64;
            kl.exp()
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64;
    Ok((mean, var.sqrt()))
}

/// Class-conditional sample counts for CAS (docs/reference.md §10.5): the train-set class counts, scaled by
/// `1000 / n_train` and rounded when the train set has fewer than 1000 series.
pub fn cas_sample_counts(train_counts: &[usize]) -> Vec<usize> {
    let n: usize = train_counts.iter().sum();
    if n == 0 || n >= 1000 {
        return train_counts.to_vec();
    }
    let scale = 1000.0 / n as f64;
    train_counts.iter().map(|&c| (c as f64 * scale).round() as usize).collect()
}

/// The reference's reported CAS (quirk Q21): an exponential moving average (rate 0.01, start 0) of
/// per-batch test accuracies, updated after every validation batch regardless of its size.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningAccuracy {
    value: f64,
}

impl RunningAccuracy {
    /// An average that already holds `value` (a run resumed from a checkpoint).
    pub fn starting_at(value: f64) -> Self {
        Self { value }
    }

    /// Folds in one batch's accuracy.
    pub fn update(&mut self, batch_accuracy: f64) {
        self.value = 0.01 * batch_accuracy + 0.99 * self.value;
    }

    /// The current average.
    pub fn value(&self) -> f64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian_rows(n: usize, mean: &[f64], scale: &[f64], seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .flat_map(|_| {
                let z: Vec<f64> =
                    (0..mean.len()).map(|_| StandardNormal.sample(&mut rng)).collect();
                mean.iter()
                    .zip(scale)
                    .zip(z)
                    .map(|((m, s), z)| (m + s * z) as f32)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn square_root_of_a_known_matrix() {
        // [[5, 4], [4, 5]] = R², R = [[2, 1], [1, 2]].
        let m = DMatrix::from_row_slice(2, 2, &[5.0, 4.0, 4.0, 5.0]);
        let r = sqrt_psd(&m);
        let want = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]);
        assert!((r - want).abs().max() < 1e-12);
        // A random SPD matrix: sqrt² = M.
        let mut rng = StdRng::seed_from_u64(1);
        let a = DMatrix::from_fn(6, 6, |_, _| rng.random::<f64>() - 0.5);
        let spd = &a * a.transpose() + DMatrix::identity(6, 6) * 0.1;
        let root = sqrt_psd(&spd);
        assert!((&root * &root - &spd).abs().max() < 1e-10);
    }

    #[test]
    fn fid_of_a_set_with_itself_is_zero() {
        let x = gaussian_rows(500, &[0.0, 1.0, -2.0, 0.5], &[1.0, 2.0, 0.5, 1.0], 3);
        let d = fid(&x, &x, 4).unwrap();
        assert!(d.abs() < 1e-8, "{d}");
    }

    #[test]
    fn fid_of_two_gaussians_matches_the_closed_form() {
        // Diagonal covariances: FID = ‖μ1 − μ2‖² + Σ (σ1 − σ2)².
        let (mu1, s1) = ([0.0, 0.0, 0.0], [1.0, 2.0, 0.5]);
        let (mu2, s2) = ([1.0, -1.0, 0.5], [2.0, 1.0, 0.5]);
        let exact: f64 = mu1.iter().zip(&mu2).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()
            + s1.iter().zip(&s2).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
        // Population parameters directly:
        let cov = |s: &[f64; 3]| {
            DMatrix::from_diagonal(&DVector::from_iterator(3, s.iter().map(|v| v * v)))
        };
        let d = frechet_distance(
            &DVector::from_row_slice(&mu1),
            &cov(&s1),
            &DVector::from_row_slice(&mu2),
            &cov(&s2),
        );
        assert!((d - exact).abs() < 1e-10, "{d} vs {exact}");
        // From 20,000 samples each: close to the closed form (sampling error only).
        let a = gaussian_rows(20_000, &mu1, &s1, 5);
        let b = gaussian_rows(20_000, &mu2, &s2, 6);
        let d = fid(&a, &b, 3).unwrap();
        assert!((d - exact).abs() < 0.1, "{d} vs {exact} = 4.25");
    }

    #[test]
    fn fid_with_correlated_covariances_matches_the_non_symmetric_formula() {
        // Tr((Σ1 Σ2)^{1/2}) for 2×2 matrices: √(λ1) + √(λ2) of Σ1 Σ2 (its eigenvalues are real, ≥ 0).
        let c1 = DMatrix::from_row_slice(2, 2, &[2.0, 0.8, 0.8, 1.0]);
        let c2 = DMatrix::from_row_slice(2, 2, &[1.0, -0.3, -0.3, 3.0]);
        let prod = &c1 * &c2;
        let (t, det): (f64, f64) = (prod.trace(), prod.determinant());
        let disc = (t * t / 4.0 - det).sqrt();
        let cross = (t / 2.0 + disc).sqrt() + (t / 2.0 - disc).sqrt();
        let mu = DVector::from_row_slice(&[0.0, 0.0]);
        let d = frechet_distance(&mu, &c1, &mu, &c2);
        assert!((d - (c1.trace() + c2.trace() - 2.0 * cross)).abs() < 1e-10);
    }

    #[test]
    fn inception_score_of_uniform_and_one_hot_predictions() {
        let k = 4;
        // Uniform predictions: every part's KL is 0, IS = 1.
        let uniform = vec![0.25f32; 100 * k];
        let (m, s) = inception_score(&uniform, k, 10, 1).unwrap();
        assert!((m - 1.0).abs() < 1e-12 && s < 1e-12, "{m} ± {s}");
        // Confident predictions spread evenly over the classes: IS = K.
        let one_hot: Vec<f32> = (0..400)
            .flat_map(|i| (0..k).map(move |c| if c == i % k { 1.0 } else { 0.0 }))
            .collect();
        let (m, _) = inception_score(&one_hot, k, 1, 1).unwrap();
        assert!((m - k as f64).abs() < 1e-9, "{m}");
        // Confident but all the same class: IS = 1.
        let same: Vec<f32> = (0..400).flat_map(|_| [1.0f32, 0.0, 0.0, 0.0]).collect();
        let (m, _) = inception_score(&same, k, 10, 1).unwrap();
        assert!((m - 1.0).abs() < 1e-9, "{m}");
        assert!(inception_score(&uniform, k, 101, 1).is_err());
    }

    #[test]
    fn cas_counts_and_running_accuracy() {
        assert_eq!(cas_sample_counts(&[292, 177, 10, 19, 2]), vec![584, 354, 20, 38, 4]);
        assert_eq!(cas_sample_counts(&[1800, 1801]), vec![1800, 1801]);
        let mut acc = RunningAccuracy::default();
        acc.update(1.0);
        assert!((acc.value() - 0.01).abs() < 1e-15);
        for _ in 0..2000 {
            acc.update(0.8);
        }
        assert!((acc.value() - 0.8).abs() < 1e-6);
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        assert!(fid(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2).is_err());
        assert!(fid(&[1.0, 2.0], &[1.0, 2.0, 3.0, 4.0], 2).is_err(), "one row has no covariance");
        assert!(matches!(
            fid(&[1.0, f32::NAN, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0], 2),
            Err(ScoreError::NonFinite(1))
        ));
    }
}
