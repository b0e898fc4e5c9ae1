//! The reference scaling (docs/reference.md §2): one scalar mean and standard deviation over all train values.

/// `x ← (x − mean) / std`, with `mean` and population `std` (ddof 0) of every non-NaN train value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalizer {
    /// Mean of the train values.
    pub mean: f64,
    /// Population standard deviation of the train values (1 when they are constant or absent, so
    /// that constant data is shifted but never divided by zero).
    pub std: f64,
}

impl Normalizer {
    /// Fits mean and std on `values`, ignoring NaN (in `f64`, two passes).
    pub fn fit(values: &[f32]) -> Self {
        let finite = || values.iter().filter(|v| !v.is_nan()).map(|&v| v as f64);
        let count = finite().count();
        if count == 0 {
            return Self { mean: 0.0, std: 1.0 };
        }
        let mean = finite().sum::<f64>() / count as f64;
        let var = finite().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count as f64;
        let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
        Self { mean, std }
    }

    /// Scales in place, then replaces NaN by 0 (after scaling, as the reference does).
    pub fn apply(&self, values: &mut [f32]) {
        for v in values {
            *v = if v.is_nan() { 0.0 } else { ((*v as f64 - self.mean) / self.std) as f32 };
        }
    }

    /// Undoes the scaling (e.g. to return generated series in the original units).
    pub fn invert(&self, values: &mut [f32]) {
        for v in values {
            *v = (*v as f64 * self.std + self.mean) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invert_undoes_apply() {
        let mut v = vec![2.0f32, 4.0, 9.0];
        let n = Normalizer::fit(&v);
        n.apply(&mut v);
        n.invert(&mut v);
        assert!(v.iter().zip([2.0, 4.0, 9.0]).all(|(a, b)| (a - b).abs() < 1e-5), "{v:?}");
    }

    #[test]
    fn constant_data_is_not_divided_by_zero() {
        let mut v = vec![5.0f32; 4];
        let n = Normalizer::fit(&v);
        n.apply(&mut v);
        assert_eq!(v, vec![0.0; 4]);
    }
}
