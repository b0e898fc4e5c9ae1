//! Representation probes (spec §10.1): KNN and linear SVM on min–max-scaled features.

use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::neighbors::knn_classifier::{KNNClassifier, KNNClassifierParameters};
use smartcore::svm::Kernels;
use smartcore::svm::svc::{MultiClassSVC, SVCParameters};

/// Why a probe could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Feature and label counts disagree, or a split is empty.
    #[error("probe input: {0}")]
    Shape(String),
    /// The classifier failed.
    #[error("probe classifier failed: {0}")]
    Classifier(String),
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

fn matrix(data: &[f64], dim: usize) -> Result<DenseMatrix<f64>, ProbeError> {
    let rows: Vec<Vec<f64>> = data.chunks(dim).map(<[f64]>::to_vec).collect();
    DenseMatrix::from_2d_vec(&rows).map_err(|e| ProbeError::Shape(e.to_string()))
}

fn check(train: &[f64], train_y: &[usize], test: &[f64], test_y: &[usize], dim: usize) -> Result<(), ProbeError> {
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

/// Test accuracy of a k-nearest-neighbour classifier (uniform weights, Euclidean distance).
pub fn knn_accuracy(train: &[f64], train_y: &[usize], test: &[f64], test_y: &[usize], dim: usize, k: usize) -> Result<f64, ProbeError> {
    check(train, train_y, test, test_y, dim)?;
    let x = matrix(train, dim)?;
    let y: Vec<i32> = train_y.iter().map(|&c| c as i32).collect();
    let k = k.min(train_y.len());
    let model = KNNClassifier::fit(&x, &y, KNNClassifierParameters::default().with_k(k))
        .map_err(|e| ProbeError::Classifier(e.to_string()))?;
    let predicted = model.predict(&matrix(test, dim)?).map_err(|e| ProbeError::Classifier(e.to_string()))?;
    Ok(accuracy(predicted.into_iter().map(i64::from), test_y))
}

/// Orthonormal basis (rows, each of length `dim`) of the span of the `train` rows, by modified
/// Gram–Schmidt with rank detection.
fn span_basis(train: &[f64], dim: usize) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let scale = train.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
    for row in train.chunks(dim) {
        let mut v = row.to_vec();
        for _ in 0..2 {
            // two passes keep the basis orthogonal to working precision
            for q in &basis {
                let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-10 * scale * (dim as f64).sqrt() {
            basis.push(v.into_iter().map(|a| a / norm).collect());
        }
        if basis.len() == dim {
            break;
        }
    }
    basis
}

/// Coordinates of every row of `data` in `basis`.
fn project(data: &[f64], dim: usize, basis: &[Vec<f64>]) -> Vec<f64> {
    data.chunks(dim).flat_map(|row| basis.iter().map(move |q| row.iter().zip(q).map(|(a, b)| a * b).sum::<f64>())).collect()
}

/// Test accuracy of a linear SVM (C = 1, tol 1e-3; one-vs-one for more than two classes).
///
/// smartcore's solver is an online SMO variant, not libsvm; on separable or near-separable data the
/// accuracies agree closely, but they are not bit-identical to scikit-learn's `SVC`.
///
/// smartcore 0.7's SVC truncates every feature row to the number of training samples (its optimiser
/// reads `row.take(n_samples)`), which breaks small training sets such as SonyAIBORobotSurface1
/// (20 series, 64 features). When there are fewer training rows than features, the features are
/// therefore expressed in an orthonormal basis of the span of the training rows first. For a linear
/// kernel this changes nothing: all inner products with training points, and so the dual problem and
/// the decision function, are exactly preserved.
pub fn svm_accuracy(train: &[f64], train_y: &[usize], test: &[f64], test_y: &[usize], dim: usize) -> Result<f64, ProbeError> {
    check(train, train_y, test, test_y, dim)?;
    if train_y.len() < dim {
        let basis = span_basis(train, dim);
        if !basis.is_empty() {
            let (train, test) = (project(train, dim, &basis), project(test, dim, &basis));
            return svm_accuracy(&train, train_y, &test, test_y, basis.len());
        }
    }
    let mut classes = train_y.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let x = matrix(train, dim)?;
    let test_x = matrix(test, dim)?;
    if classes.len() < 2 {
        // One class: every prediction is that class.
        return Ok(accuracy(std::iter::repeat(classes[0] as i64), test_y));
    }
    let y: Vec<i32> = train_y.iter().map(|&c| c as i32).collect();
    let params = SVCParameters::default().with_c(1.0).with_tol(1e-3).with_kernel(Kernels::linear());
    let model = MultiClassSVC::fit(&x, &y, &params).map_err(|e| ProbeError::Classifier(e.to_string()))?;
    let predicted = model.predict(&test_x).map_err(|e| ProbeError::Classifier(e.to_string()))?;
    Ok(accuracy(predicted.into_iter().map(|p| p.round() as i64), test_y))
}

/// Both probes of spec §10.1 on raw features (`dim` columns): min–max scaling fitted on train, then
/// KNN with k = 5 and a linear SVM.
pub fn probe_accuracy(train: &[f32], train_y: &[usize], test: &[f32], test_y: &[usize], dim: usize) -> Result<ProbeAccuracy, ProbeError> {
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

    /// Fewer training series than features (SonyAIBORobotSurface1: 20 × 64) used to crash smartcore;
    /// the span projection must give the same predictions as the plain problem would: here a
    /// separable two-class problem in 64 dimensions with 20 training points.
    #[test]
    fn svm_handles_fewer_samples_than_features() {
        let dim = 64;
        let mut noise = lcg(7);
        let mut make = |n: usize| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for i in 0..n {
                let c = i % 2;
                x.extend((0..dim).map(|j| if j < 3 { (c as f64 * 2.0 - 1.0) + 0.3 * noise() } else { noise() }));
                y.push(c);
            }
            (x, y)
        };
        let (tr, tr_y) = make(20);
        let (te, te_y) = make(200);
        let acc = svm_accuracy(&tr, &tr_y, &te, &te_y, dim).unwrap();
        assert!(acc > 0.9, "{acc}");
        let basis = span_basis(&tr, dim);
        assert_eq!(basis.len(), 20, "20 generic points span 20 dimensions");
        for (a, qa) in basis.iter().enumerate() {
            for (b, qb) in basis.iter().enumerate() {
                let dot: f64 = qa.iter().zip(qb).map(|(x, y)| x * y).sum();
                assert!((dot - f64::from(u8::from(a == b))).abs() < 1e-9);
            }
        }
        // Inner products between training and test rows survive the projection.
        let (ptr, pte) = (project(&tr, dim, &basis), project(&te, dim, &basis));
        let direct: f64 = tr[..dim].iter().zip(&te[..dim]).map(|(x, y)| x * y).sum();
        let projected: f64 = ptr[..20].iter().zip(&pte[..20]).map(|(x, y)| x * y).sum();
        assert!((direct - projected).abs() < 1e-9, "{direct} vs {projected}");
    }
}

