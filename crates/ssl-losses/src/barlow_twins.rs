//! Barlow Twins (docs/reference.md §6.2).

use burn::tensor::Tensor;

/// Standardises each feature over the batch: `(p − mean) / (unbiased std + 1e-8)`.
fn standardise(p: Tensor<2>) -> Tensor<2> {
    let (var, mean) = p.clone().var_mean(0);
    p.sub(mean).div(var.sqrt().add_scalar(1e-8))
}

/// Barlow Twins loss between two projections `(B, D)`:
/// `C = ẑ₁ᵀ ẑ₂ / B`, loss `= (Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²) / D`.
/// Thesis: λ = 0.005 and the `1/D` scale (method weight 1).
pub fn barlow_twins_loss(p1: Tensor<2>, p2: Tensor<2>, lambda: f64) -> Tensor<1> {
    let [b, d] = p1.dims();
    let (z1, z2) = (standardise(p1), standardise(p2));
    // The diagonal of C without materialising it: C_ii = Σ_b z1[b,i] z2[b,i] / B.
    let diag = z1.clone().mul(z2.clone()).sum_dim(0).div_scalar(b as f64);
    let c = kernels::matmul(z1.transpose(), z2).div_scalar(b as f64);
    let on_diag = diag.clone().sub_scalar(1.0).square().sum();
    let off_diag = c.square().sum().sub(diag.square().sum());
    on_diag.add(off_diag.mul_scalar(lambda)).div_scalar(d as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::matrix as t;


    #[test]
    fn identical_single_feature_views() {
        // B = 2, one feature: ẑ = (−1/√2·√2 …) has unbiased std 1, so C_11 = Σẑ²/B = (B−1)/B = 1/2,
        // and the loss is (1 − 1/2)² / 1 = 0.25.
        let p = t(&[&[1.0], &[3.0]]);
        let loss = barlow_twins_loss(p.clone(), p, 0.005).into_scalar::<f32>();
        assert!((loss - 0.25).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn hand_computed_two_feature_case() {
        // p1 columns: a = (1,2,3), b = (0,0,3); p2 columns: c = (3,2,1), d = (1,2,3); B = 3.
        // Standardised (unbiased std): a → (−1,0,1), b → (−1/√3, −1/√3, 2/√3), c → (1,0,−1), d → (−1,0,1).
        // C = ẑ1ᵀẑ2 / 3: C_11 = −2/3, C_12 = 2/3, C_21 = −1/√3, C_22 = 1/√3.
        // loss = ((1+2/3)² + (1−1/√3)² + λ(4/9 + 1/3)) / 2.
        let p1 = t(&[&[1.0, 0.0], &[2.0, 0.0], &[3.0, 3.0]]);
        let p2 = t(&[&[3.0, 1.0], &[2.0, 2.0], &[1.0, 3.0]]);
        let s3 = 3f64.sqrt();
        let lambda = 0.005;
        let want = ((1.0 + 2.0 / 3.0f64).powi(2) + (1.0 - 1.0 / s3).powi(2) + lambda * (4.0 / 9.0 + 1.0 / 3.0)) / 2.0;
        let got = barlow_twins_loss(p1, p2, lambda).into_scalar::<f32>() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
