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
    let on_diag = diag.clone().sub_scalar(1.0).square().sum();
    // Σ_ij C_ij² without materialising the D × D matrix C either: ‖ẑ₁ᵀẑ₂‖²_F = tr(ẑ₁ẑ₁ᵀ ẑ₂ẑ₂ᵀ) =
    // Σ (G₁ ∘ G₂) with the B × B Gram matrices G = ẑẑᵀ. For the thesis' D = 4096 and B ≤ 256 that is
    // two B × D · D × B products instead of a D × B · B × D one (1/16 of the multiply-adds at
    // B = 128) and no 64 MiB result to write, square, sum and differentiate.
    let gram = |z: Tensor<2>| kernels::matmul(z.clone(), z.transpose());
    let sum_c2 = gram(z1).mul(gram(z2)).sum().div_scalar((b * b) as f64);
    let off_diag = sum_c2.sub(diag.square().sum());
    on_diag.add(off_diag.mul_scalar(lambda)).div_scalar(d as f64)
}

/// The loss as written (`C` materialised): the reference [`barlow_twins_loss`] is checked against.
#[cfg(test)]
fn barlow_twins_loss_direct(p1: Tensor<2>, p2: Tensor<2>, lambda: f64) -> Tensor<1> {
    let [b, d] = p1.dims();
    let (z1, z2) = (standardise(p1), standardise(p2));
    let c = z1.transpose().matmul(z2).div_scalar(b as f64);
    let eye = Tensor::<2>::eye(d, &c.device());
    let on = c.clone().mul(eye.clone()).sum_dim(1).reshape([d]).sub_scalar(1.0).square().sum();
    let off = c.mul(eye.neg().add_scalar(1.0)).square().sum();
    on.add(off.mul_scalar(lambda)).div_scalar(d as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::matrix as t;

    #[test]
    fn equals_the_materialised_cross_correlation_in_value_and_gradients() {
        use burn::tensor::{Device, Distribution};
        let device = Device::flex().autodiff();
        device.seed(11);
        // Fewer rows than features (the thesis' case), more rows than features, and one row pair
        // of correlated views.
        for [b, d] in [[6, 40], [33, 9], [16, 64]] {
            let p1 = Tensor::<2>::random([b, d], Distribution::Normal(0.3, 1.5), &device);
            let noise = Tensor::<2>::random([b, d], Distribution::Normal(0.0, 0.5), &device);
            let p2 = p1.clone().mul_scalar(0.8).add(noise);
            let run = |fast: bool| {
                let (a, c) =
                    (p1.clone().detach().require_grad(), p2.clone().detach().require_grad());
                let loss = if fast {
                    barlow_twins_loss(a.clone(), c.clone(), 0.005)
                } else {
                    barlow_twins_loss_direct(a.clone(), c.clone(), 0.005)
                };
                let grads = loss.backward();
                let values = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
                (
                    loss.into_scalar::<f32>(),
                    values(a.grad(&grads).unwrap()),
                    values(c.grad(&grads).unwrap()),
                )
            };
            let ((l1, a1, c1), (l2, a2, c2)) = (run(true), run(false));
            assert!((l1 - l2).abs() <= 1e-5 * l2.abs().max(1.0), "{b}×{d}: loss {l1} vs {l2}");
            for (g1, g2) in [(a1, a2), (c1, c2)] {
                let scale = g2.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (x, y) in g1.iter().zip(&g2) {
                    assert!(
                        (x - y).abs() <= 1e-4 * scale.max(1e-6),
                        "{b}×{d}: gradient {x} vs {y} (scale {scale})"
                    );
                }
            }
        }
    }

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
        let want = ((1.0 + 2.0 / 3.0f64).powi(2)
            + (1.0 - 1.0 / s3).powi(2)
            + lambda * (4.0 / 9.0 + 1.0 / 3.0))
            / 2.0;
        let got = barlow_twins_loss(p1, p2, lambda).into_scalar::<f32>() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
