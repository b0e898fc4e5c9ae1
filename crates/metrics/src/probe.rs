//! Representation probes (docs/reference.md §10.1): KNN and linear SVM on min–max-scaled features.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// Why a probe could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Feature and label counts disagree, or a split is empty.
    #[error("probe input: {0}")]
    Shape(String),
}

/// Test accuracies of the two probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeAccuracy {
    /// KNN (k = 5, uniform weights, Euclidean).
    pub knn: f64,
    /// Linear SVM (C = 1, tol 1e-3, one-vs-one).
    pub svm: f64,
}

/// Scales each feature to `[−1, 1]` with the train minimum and maximum (scikit-learn's
/// `MinMaxScaler(feature_range=(−1, 1))`; a constant feature maps to −1). Returns the scaled train
/// and test matrices, row-major with `dim` columns, in `f64`.
pub fn min_max_scale(train: &[f32], test: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = vec![f64::INFINITY; dim];
    let mut hi = vec![f64::NEG_INFINITY; dim];
    for row in train.chunks(dim) {
        for (j, &v) in row.iter().enumerate() {
            lo[j] = lo[j].min(v as f64);
            hi[j] = hi[j].max(v as f64);
        }
    }
    let scale = |data: &[f32]| -> Vec<f64> {
        data.chunks(dim)
            .flat_map(|row| {
                row.iter().enumerate().map(|(j, &v)| {
                    let range = if hi[j] - lo[j] > 0.0 { hi[j] - lo[j] } else { 1.0 };
                    (v as f64 - lo[j]) / range * 2.0 - 1.0
                })
            })
            .collect::<Vec<f64>>()
    };
    (scale(train), scale(test))
}

fn check(
    train: &[f64],
    train_y: &[usize],
    test: &[f64],
    test_y: &[usize],
    dim: usize,
) -> Result<(), ProbeError> {
    if dim == 0 || train_y.is_empty() || test_y.is_empty() {
        return Err(ProbeError::Shape("empty features or split".into()));
    }
    if train.len() != train_y.len() * dim || test.len() != test_y.len() * dim {
        return Err(ProbeError::Shape(format!(
            "{} train / {} test values for {} / {} labels of dimension {dim}",
            train.len(),
            test.len(),
            train_y.len(),
            test_y.len()
        )));
    }
    Ok(())
}

fn accuracy(predicted: impl Iterator<Item = i64>, truth: &[usize]) -> f64 {
    let hits = predicted.zip(truth).filter(|(p, t)| *p == **t as i64).count();
    hits as f64 / truth.len() as f64
}

/// Test accuracy of a k-nearest-neighbour classifier (uniform weights, Euclidean distance, exact
/// brute-force search; a tie in the vote goes to the smallest class index, as scikit-learn's).
pub fn knn_accuracy(
    train: &[f64],
    train_y: &[usize],
    test: &[f64],
    test_y: &[usize],
    dim: usize,
    k: usize,
) -> Result<f64, ProbeError> {
    check(train, train_y, test, test_y, dim)?;
    let k = k.clamp(1, train_y.len());
    let classes = train_y.iter().copied().max().unwrap_or(0) + 1;
    let predicted: Vec<i64> = test
        .par_chunks(dim)
        .map(|x| {
            let mut dist: Vec<(f64, usize)> = train
                .chunks(dim)
                .zip(train_y)
                .map(|(r, &y)| (r.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(), y))
                .collect();
            dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            let mut votes = vec![0usize; classes];
            for &(_, y) in &dist[..k] {
                votes[y] += 1;
            }
            let best = votes.iter().copied().max().unwrap_or(0);
            votes.iter().position(|&v| v == best).unwrap_or(0) as i64
        })
        .collect();
    Ok(accuracy(predicted.into_iter(), test_y))
}

/// Settings of the linear SVM probe.
const SVM_C: f64 = 1.0;
const SVM_TOLERANCE: f64 = 1e-3;
const SVM_MAX_PASSES: usize = 1000;

/// A binary linear SVM (hinge loss, `C = 1`) trained by dual coordinate descent (Hsieh et al.,
/// ICML 2008, the LIBLINEAR solver). The bias is learned as the weight of a constant feature 1.
/// Labels: `true` = +1. Returns `(w, b)`.
fn binary_svm(rows: &[&[f64]], positive: &[bool], seed: u64) -> (Vec<f64>, f64) {
    let dim = rows.first().map_or(0, |r| r.len());
    let n = rows.len();
    let mut w = vec![0.0; dim];
    let mut b = 0.0;
    let mut alpha = vec![0.0; n];
    let q: Vec<f64> = rows.iter().map(|r| r.iter().map(|v| v * v).sum::<f64>() + 1.0).collect();
    let sign: Vec<f64> = positive.iter().map(|&p| if p { 1.0 } else { -1.0 }).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..SVM_MAX_PASSES {
        order.shuffle(&mut rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let x = rows[i];
            let margin = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b;
            let g = sign[i] * margin - 1.0;
            let pg = if alpha[i] <= 0.0 {
                g.min(0.0)
            } else if alpha[i] >= SVM_C {
                g.max(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / q[i]).clamp(0.0, SVM_C);
                let step = (alpha[i] - old) * sign[i];
                w.iter_mut().zip(x).for_each(|(wj, xj)| *wj += step * xj);
                b += step;
            }
        }
        if pg_max - pg_min < SVM_TOLERANCE {
            break;
        }
    }
    (w, b)
}

/// Test accuracy of a linear SVM (C = 1; one-vs-one voting for more than two classes, ties to the
/// smallest class index, as libsvm).
///
/// The solver is LIBLINEAR's dual coordinate descent for the hinge loss, written here because
/// smartcore 0.7's SVC needed 311 s for one probe at FordA's size (3,601 × 64, measured with
/// `probe_time_at_thesis_sizes` on a busy 2-core machine) and truncates feature rows when there are
/// fewer training rows than features. scikit-learn's `SVC(kernel="linear")` (libsvm) does not
/// regularise the bias while this solver does (as LIBLINEAR with a bias feature), so accuracies
/// can differ slightly from the reference's.
pub fn svm_accuracy(
    train: &[f64],
    train_y: &[usize],
    test: &[f64],
    test_y: &[usize],
    dim: usize,
) -> Result<f64, ProbeError> {
    check(train, train_y, test, test_y, dim)?;
    let mut classes = train_y.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let train_rows: Vec<&[f64]> = train.chunks(dim).collect();
    let test_rows: Vec<&[f64]> = test.chunks(dim).collect();
    let pairs: Vec<(usize, usize)> =
        (0..classes.len()).flat_map(|a| (a + 1..classes.len()).map(move |b| (a, b))).collect();
    let models: Vec<(Vec<f64>, f64)> = pairs
        .par_iter()
        .map(|&(ai, bi)| {
            let (a, b) = (classes[ai], classes[bi]);
            let pair: Vec<usize> =
                (0..train_y.len()).filter(|&i| train_y[i] == a || train_y[i] == b).collect();
            let rows: Vec<&[f64]> = pair.iter().map(|&i| train_rows[i]).collect();
            let positive: Vec<bool> = pair.iter().map(|&i| train_y[i] == a).collect();
            binary_svm(&rows, &positive, (ai * classes.len() + bi) as u64)
        })
        .collect();
    let mut votes = vec![vec![0usize; classes.len()]; test_rows.len()];
    for (&(ai, bi), (w, bias)) in pairs.iter().zip(&models) {
        for (t, x) in test_rows.iter().enumerate() {
            let f = x.iter().zip(w).map(|(p, q)| p * q).sum::<f64>() + bias;
            votes[t][if f > 0.0 { ai } else { bi }] += 1;
        }
    }
    let predicted = votes.iter().map(|v| {
        let best = v.iter().copied().max().unwrap_or(0);
        classes[v.iter().position(|&c| c == best).unwrap_or(0)] as i64
    });
    Ok(accuracy(predicted, test_y))
}

/// Both probes of docs/reference.md §10.1 on raw features (`dim` columns): min–max scaling fitted on train, then
/// KNN with k = 5 and a linear SVM.
pub fn probe_accuracy(
    train: &[f32],
    train_y: &[usize],
    test: &[f32],
    test_y: &[usize],
    dim: usize,
) -> Result<ProbeAccuracy, ProbeError> {
    let (train, test) = min_max_scale(train, test, dim);
    Ok(ProbeAccuracy {
        knn: knn_accuracy(&train, train_y, &test, test_y, dim, 5)?,
        svm: svm_accuracy(&train, train_y, &test, test_y, dim)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic uniform(−0.5, 0.5) generator (64-bit LCG) for test data.
    fn lcg(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        }
    }

    #[test]
    fn min_max_scaling_uses_train_range() {
        let (tr, te) = min_max_scale(&[0.0, 5.0, 10.0, 5.0], &[5.0, 7.0, 20.0, 5.0], 2);
        assert_eq!(tr, vec![-1.0, -1.0, 1.0, -1.0], "constant feature maps to −1");
        assert_eq!(te, vec![0.0, 3.0, 3.0, -1.0], "(7 − 5)/1·2 − 1 = 3 on the constant feature");
    }

    /// Three well-separated blobs: both probes must be (nearly) perfect; shuffled labels must not.
    #[test]
    fn probes_separate_blobs_and_fail_on_noise() {
        let centres = [[0.0f32, 0.0], [5.0, 5.0], [0.0, 8.0]];
        let mut uniform = lcg(12345);
        let mut noise = || uniform() as f32;
        let mut make = |n: usize| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for i in 0..n {
                let c = i % 3;
                x.extend([centres[c][0] + noise(), centres[c][1] + noise()]);
                y.push(c);
            }
            (x, y)
        };
        let (tr, tr_y) = make(60);
        let (te, te_y) = make(30);
        let acc = probe_accuracy(&tr, &tr_y, &te, &te_y, 2).unwrap();
        assert!(acc.knn > 0.99 && acc.svm > 0.99, "{acc:?}");
        let scrambled: Vec<usize> = tr_y.iter().enumerate().map(|(i, _)| (i * 7 / 3) % 3).collect();
        let acc = probe_accuracy(&tr, &scrambled, &te, &te_y, 2).unwrap();
        assert!(acc.knn < 0.7 && acc.svm < 0.7, "labels unrelated to features: {acc:?}");
        assert!(probe_accuracy(&tr, &tr_y[1..], &te, &te_y, 2).is_err());
    }

    /// 1-D, separable: −2, −1 (negative) and 1, 2 (positive). The max-margin solution of
    /// `½(w² + b²) + C Σ hinge` is w = 1, b = 0 (the points ±1 sit exactly on the margin).
    #[test]
    fn binary_svm_finds_the_max_margin_solution() {
        let data = [[-2.0], [-1.0], [1.0], [2.0]];
        let rows: Vec<&[f64]> = data.iter().map(|r| &r[..]).collect();
        let (w, b) = binary_svm(&rows, &[false, false, true, true], 3);
        assert!((w[0] - 1.0).abs() < 1e-2 && b.abs() < 1e-2, "w = {w:?}, b = {b}");
        // Non-separable (one positive among the negatives): still a sensible split.
        let data = [[-3.0], [-2.0], [-1.5], [-1.0], [1.0], [2.0], [3.0]];
        let rows: Vec<&[f64]> = data.iter().map(|r| &r[..]).collect();
        let (w, b) = binary_svm(&rows, &[false, false, true, false, true, true, true], 3);
        assert!(w[0] > 0.0 && (-1.0..1.0).contains(&(-b / w[0])), "threshold {}", -b / w[0]);
    }

    /// Fewer training series than features (SonyAIBORobotSurface1: 20 × 64) crashed smartcore's
    /// SVC: a separable two-class problem in 64 dimensions with 20 training points.
    #[test]
    fn svm_handles_fewer_samples_than_features() {
        let dim = 64;
        let mut noise = lcg(7);
        let mut make =
            |n: usize| {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for i in 0..n {
                    let c = i % 2;
                    x.extend((0..dim).map(|j| {
                        if j < 3 { (c as f64 * 2.0 - 1.0) + 0.3 * noise() } else { noise() }
                    }));
                    y.push(c);
                }
                (x, y)
            };
        let (tr, tr_y) = make(20);
        let (te, te_y) = make(200);
        let acc = svm_accuracy(&tr, &tr_y, &te, &te_y, dim).unwrap();
        assert!(acc > 0.9, "{acc}");
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    fn timed(n_train: usize, n_test: usize, classes: usize) {
        let dim = 64;
        let mut state = 99u64;
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let mut make = |n: usize| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for i in 0..n {
                let c = i % classes;
                x.extend((0..dim).map(|j| {
                    if j < 4 { (c * (j + 1) % classes) as f32 * 0.4 + noise() } else { noise() }
                }));
                y.push(c);
            }
            (x, y)
        };
        let (tr, tr_y) = make(n_train);
        let (te, te_y) = make(n_test);
        let (tr, te) = min_max_scale(&tr, &te, dim);
        let t = std::time::Instant::now();
        let knn = knn_accuracy(&tr, &tr_y, &te, &te_y, dim, 5).unwrap();
        eprintln!(
            "{n_train} x {dim}, {classes} classes: knn {knn:.3} in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let t = std::time::Instant::now();
        let svm = svm_accuracy(&tr, &tr_y, &te, &te_y, dim).unwrap();
        eprintln!(
            "{n_train} x {dim}, {classes} classes: svm {svm:.3} in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }

    /// Probe times at FordA's size (3,601 train / 1,320 test × 64, two overlapping classes) and
    /// ElectricDevices' (8,926 / 7,711 × 64, 7 classes), on synthetic features.
    /// `cargo test -p metrics probe_time -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn probe_time_at_thesis_sizes() {
        timed(3601, 1320, 2);
        timed(8926, 7711, 7);
    }
}
