//! VIbCReg (docs/reference.md §6.3).

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

/// Variance hinge: `mean_j ReLU(1 − sqrt(Var_b(p_j) + 1e-4))`, unbiased variance.
fn variance_term(p: Tensor<2>) -> Tensor<1> {
    relu(p.var(0).add_scalar(1e-4).sqrt().neg().add_scalar(1.0)).mean()
}

/// Normalised covariance: centre each feature, scale it to unit L2 norm over the batch, `G = cᵀc`,
/// zero the diagonal, mean of `G²` over all `D²` entries.
fn covariance_term(p: Tensor<2>) -> Tensor<1> {
    let [_, d] = p.dims();
    let c = p.clone().sub(p.mean_dim(0));
    let norm = c.clone().square().sum_dim(0).sqrt().clamp_min(1e-12);
    let c = c.div(norm);
    let diag = c.clone().square().sum_dim(0); // G_jj
    let g = kernels::matmul(c.clone().transpose(), c);
    g.square().sum().sub(diag.square().sum()).div_scalar((d * d) as f64)
}

/// VIbCReg loss between two projections `(B, D)`:
/// `weight · (λ·MSE(p1, p2) + μ·(var(p1) + var(p2)) + ν·(cov(p1) + cov(p2)))`.
/// Thesis: λ = 25, μ = 25, ν = 100, weight 0.01.
pub fn vibcreg_loss(
    p1: Tensor<2>,
    p2: Tensor<2>,
    lambda: f64,
    mu: f64,
    nu: f64,
    weight: f64,
) -> Tensor<1> {
    let sim = p1.clone().sub(p2.clone()).square().mean();
    let var = variance_term(p1.clone()).add(variance_term(p2.clone()));
    let cov = covariance_term(p1).add(covariance_term(p2));
    sim.mul_scalar(lambda).add(var.mul_scalar(mu)).add(cov.mul_scalar(nu)).mul_scalar(weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::matrix as t;

    #[test]
    fn hand_computed_terms() {
        // p1 columns a = (1,2,3), b = (0,0,3); p2 columns c = (3,2,1), d = (1,2,3).
        let p1 = t(&[&[1.0, 0.0], &[2.0, 0.0], &[3.0, 3.0]]);
        let p2 = t(&[&[3.0, 1.0], &[2.0, 2.0], &[1.0, 3.0]]);
        // MSE: squared differences 4,1 / 0,4 / 4,0 → 13/6.
        let sim = 13.0 / 6.0;
        // Unbiased variances: a 1, b 3, c 1, d 1 → hinge ReLU(1 − sqrt(v + 1e-4)) is 0 for all.
        let var = 0.0;
        // cov(p1): centred a = (−1,0,1)/√2, b = (−1,−1,2)/√6; G_12 = (1 + 0 + 2)/√12 = √3/2;
        // mean of off-diagonal G² over 4 entries = 2·(3/4)/4 = 3/8. cov(p2): c = −d → G_12 = −1,
        // 2·1/4 = 1/2.
        let cov: f64 = 3.0 / 8.0 + 0.5;
        let want = 0.01 * (25.0 * sim + 25.0 * var + 100.0 * cov);
        let got = vibcreg_loss(p1.clone(), p2.clone(), 25.0, 25.0, 100.0, 0.01).into_scalar::<f32>()
            as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // The variance hinge on a collapsed feature: constant column → ReLU(1 − sqrt(1e-4)) = 0.99.
        let flat = t(&[&[5.0], &[5.0], &[5.0]]);
        let v = variance_term(flat).into_scalar::<f32>();
        assert!((v - 0.99).abs() < 1e-6, "{v}");
    }
}
