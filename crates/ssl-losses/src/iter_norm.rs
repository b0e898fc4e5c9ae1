//! IterNorm: group whitening by Newton iterations (docs/reference.md §6.3), used by VIbCReg's projector.

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

/// Settings of [`IterNorm`]. Defaults are the thesis settings.
#[derive(Config, Debug)]
pub struct IterNormConfig {
    /// Number of features (the projector width, 4096).
    pub num_features: usize,
    /// Number of groups whitened separately (64 groups of 64 features).
    #[config(default = 64)]
    pub num_groups: usize,
    /// Newton iterations T.
    #[config(default = 5)]
    pub iterations: usize,
    /// Added to the covariance diagonal.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the new batch value in the running mean and whitening matrix.
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// Whitens each group of features over the batch with `Σ^{-1/2}` approximated by `T` Newton
/// iterations, then applies an affine map. Training (autodiff device) uses batch statistics and
/// updates the running mean and whitening matrix; otherwise the running values are used.
#[derive(Module, Debug)]
pub struct IterNorm {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<2>>,
    running_mean: RunningState<Tensor<3>>,
    running_whitening: RunningState<Tensor<3>>,
    num_groups: usize,
    iterations: usize,
    epsilon: f64,
    momentum: f64,
}

impl IterNormConfig {
    /// Builds the layer: weight 1, bias 0, running whitening matrix the identity.
    ///
    /// # Panics
    /// If `num_groups` does not divide `num_features`.
    pub fn init(&self, device: &Device) -> IterNorm {
        assert!(
            self.num_groups > 0 && self.num_features.is_multiple_of(self.num_groups),
            "IterNorm: {} groups do not divide {} features",
            self.num_groups,
            self.num_features
        );
        let g = self.num_features / self.num_groups;
        let eye: Tensor<2> = Tensor::eye(g, device);
        IterNorm {
            weight: Param::from_tensor(Tensor::ones([1, self.num_features], device)),
            bias: Param::from_tensor(Tensor::zeros([1, self.num_features], device)),
            running_mean: RunningState::new(Tensor::zeros([self.num_groups, g, 1], device)),
            running_whitening: RunningState::new(
                eye.unsqueeze::<3>().repeat_dim(0, self.num_groups),
            ),
            num_groups: self.num_groups,
            iterations: self.iterations,
            epsilon: self.epsilon,
            momentum: self.momentum,
        }
    }
}

impl IterNorm {
    /// `(B, F) → (B, F)`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, f] = x.dims();
        let (groups, g) = (self.num_groups, f / self.num_groups);
        let device = x.device();
        let xg: Tensor<3> = x.reshape([b, groups, g]).permute([1, 2, 0]); // (G, g, B)
        let out = if device.is_autodiff() {
            let mean = xg.clone().mean_dim(2);
            let xc = xg.sub(mean.clone());
            let eye: Tensor<3> = Tensor::<2>::eye(g, &device).unsqueeze();
            let sigma = xc
                .clone()
                .matmul(xc.clone().swap_dims(1, 2))
                .div_scalar(b as f64)
                .add(eye.clone().mul_scalar(self.epsilon));
            // r = 1 / trace(Σ), per group.
            let trace = sigma.clone().mul(eye.clone()).sum_dim(2).sum_dim(1); // (G, 1, 1)
            let r = trace.recip();
            let sigma_n = sigma.mul(r.clone());
            let mut p = eye.repeat_dim(0, groups);
            for _ in 0..self.iterations {
                let p3 = p.clone().matmul(p.clone()).matmul(p.clone());
                p = p.mul_scalar(1.5).sub(p3.matmul(sigma_n.clone()).mul_scalar(0.5));
            }
            let whitening = p.mul(r.sqrt());
            let m = self.momentum;
            let running_mean = self.running_mean.value_sync().to_device(&device);
            let running_w = self.running_whitening.value_sync().to_device(&device);
            self.running_mean
                .update(running_mean.mul_scalar(1.0 - m).add(mean.detach().mul_scalar(m)).detach());
            self.running_whitening.update(
                running_w
                    .mul_scalar(1.0 - m)
                    .add(whitening.clone().detach().mul_scalar(m))
                    .detach(),
            );
            whitening.matmul(xc)
        } else {
            let mean = self.running_mean.value_sync().to_device(&device);
            let whitening = self.running_whitening.value_sync().to_device(&device);
            whitening.matmul(xg.sub(mean))
        };
        let out: Tensor<2> = out.permute([2, 0, 1]).reshape([b, f]);
        out.mul(self.weight.val()).add(self.bias.val())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Plain f64 loops of docs/reference.md §6.3's training forward, for one group at a time.
    fn reference(x: &[f64], b: usize, f: usize, groups: usize, iterations: usize) -> Vec<f64> {
        let g = f / groups;
        let mut out = vec![0.0; b * f];
        for grp in 0..groups {
            let col = |i: usize, n: usize| x[n * f + grp * g + i];
            let mean: Vec<f64> =
                (0..g).map(|i| (0..b).map(|n| col(i, n)).sum::<f64>() / b as f64).collect();
            let xc = |i: usize, n: usize| col(i, n) - mean[i];
            let mut sigma = vec![0.0; g * g];
            for i in 0..g {
                for j in 0..g {
                    sigma[i * g + j] = (0..b).map(|n| xc(i, n) * xc(j, n)).sum::<f64>() / b as f64
                        + if i == j { 1e-5 } else { 0.0 };
                }
            }
            let r = 1.0 / (0..g).map(|i| sigma[i * g + i]).sum::<f64>();
            let sn: Vec<f64> = sigma.iter().map(|v| v * r).collect();
            let mm = |a: &[f64], c: &[f64]| {
                let mut o = vec![0.0; g * g];
                for i in 0..g {
                    for j in 0..g {
                        o[i * g + j] = (0..g).map(|k| a[i * g + k] * c[k * g + j]).sum();
                    }
                }
                o
            };
            let mut p: Vec<f64> =
                (0..g * g).map(|k| if k / g == k % g { 1.0 } else { 0.0 }).collect();
            for _ in 0..iterations {
                let p3s = mm(&mm(&mm(&p, &p), &p), &sn);
                p = p.iter().zip(&p3s).map(|(a, c)| 1.5 * a - 0.5 * c).collect();
            }
            for n in 0..b {
                for i in 0..g {
                    out[n * f + grp * g + i] =
                        (0..g).map(|k| p[i * g + k] * r.sqrt() * xc(k, n)).sum();
                }
            }
        }
        out
    }

    #[test]
    fn training_forward_matches_an_f64_reference() {
        let device = Device::flex().autodiff();
        let (b, f) = (6, 4);
        // Correlated, deterministic data.
        let x: Vec<f64> = (0..b * f)
            .map(|k| ((k * 7 % 11) as f64 - 5.0) * 0.3 + ((k / f) as f64).sin())
            .collect();
        let xt = Tensor::<2>::from_data(
            TensorData::new(x.iter().map(|&v| v as f32).collect::<Vec<_>>(), [b, f]),
            &device,
        );
        let layer = IterNormConfig::new(f).with_num_groups(2).init(&device);
        let got = layer.forward(xt).try_into_vec_as::<f32>().unwrap();
        let want = reference(&x, b, f, 2, 5);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
        // Running statistics moved toward the batch (momentum 0.1): mean = 0.1 · batch mean.
        let running_mean = layer.running_mean.value_sync().try_into_vec_as::<f32>().unwrap();
        let batch_mean0 = (0..b).map(|n| x[n * f]).sum::<f64>() / b as f64;
        assert!((running_mean[0] as f64 - 0.1 * batch_mean0).abs() < 1e-5, "{running_mean:?}");
    }

    #[test]
    fn newton_iteration_matches_hand_computed_whitening() {
        // One group of one feature, batch (1, 3): Σ = 2/3·… with B = 2 samples (1, 3): mean 2,
        // Σ = ((−1)² + 1²)/2 + ε = 1 + ε, r = 1/(1+ε), Σn = 1, P stays 1, W = √r, out = ±√r.
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 3.0], [2, 1]), &device);
        let layer = IterNormConfig::new(1).with_num_groups(1).init(&device);
        let y = layer.forward(x).try_into_vec_as::<f32>().unwrap();
        let s = (1.0f64 / (1.0 + 1e-5)).sqrt() as f32;
        assert!((y[0] + s).abs() < 1e-6 && (y[1] - s).abs() < 1e-6, "{y:?}");
    }
}
