//! The SSL projector (docs/reference.md §6.1).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use kernels::{batch_norm, linear};

/// `Linear(in→hidden) → BN → ReLU → Linear(hidden→hidden) → BN → ReLU → Linear(hidden→hidden)`.
#[derive(Config, Debug)]
pub struct ProjectorConfig {
    /// Input width: the pooled latent, `2·D` = 128 in the thesis (mean and max of 64 channels).
    #[config(default = 128)]
    pub input_dim: usize,
    /// Hidden and output width. Thesis: 4096.
    #[config(default = 4096)]
    pub hidden_dim: usize,
}

/// The projector module; see [`ProjectorConfig`].
#[derive(Module, Debug)]
pub struct Projector {
    linear1: Linear,
    norm1: BatchNorm,
    linear2: Linear,
    norm2: BatchNorm,
    linear3: Linear,
}

impl ProjectorConfig {
    /// Builds the projector with PyTorch's default initialisation (`U(±1/√fan_in)`).
    pub fn init(&self, device: &Device) -> Projector {
        let h = self.hidden_dim;
        Projector {
            linear1: LinearConfig::new(self.input_dim, h).init(device),
            norm1: BatchNormConfig::new(h).init(device),
            linear2: LinearConfig::new(h, h).init(device),
            norm2: BatchNormConfig::new(h).init(device),
            linear3: LinearConfig::new(h, h).init(device),
        }
    }
}

impl Projector {
    /// `(B, input_dim) → (B, hidden_dim)`. BatchNorm uses batch statistics on an autodiff device.
    /// On flex the layers run the `kernels` crate's ops (tiled GEMM, parallel BatchNorm).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = relu(batch_norm(&self.norm1, linear(&self.linear1, x)));
        let x = relu(batch_norm(&self.norm2, linear(&self.linear2, x)));
        linear(&self.linear3, x)
    }

    /// `(forward(first), forward(second))` with each linear layer run once over the rows of both
    /// branches: one `2B × d · d × 4096` product forward (and one per gradient) instead of two of
    /// `B` rows, so each 4096 × 4096 weight is read and packed once per product, and its gradient
    /// is one `4096 × 2B · 2B × 4096` product instead of two 64 MiB partial gradients and their
    /// sum. Each BatchNorm still normalises every branch with that branch's own batch statistics,
    /// and updates its running statistics with `first`'s, then `second`'s, as two calls of
    /// [`Projector::forward`] do: the same function, the same gradients.
    pub fn forward_pair(&self, first: Tensor<2>, second: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let rows = first.dims()[0];
        let split = |x: Tensor<2>| {
            let n = x.dims()[0];
            (x.clone().narrow(0, 0, rows), x.narrow(0, rows, n - rows))
        };
        let norm_relu = |norm: &BatchNorm, x: Tensor<2>| {
            let (a, b) = split(x);
            let a = relu(batch_norm(norm, a));
            Tensor::cat(vec![a, relu(batch_norm(norm, b))], 0)
        };
        let x = norm_relu(&self.norm1, linear(&self.linear1, Tensor::cat(vec![first, second], 0)));
        let x = norm_relu(&self.norm2, linear(&self.linear2, x));
        split(linear(&self.linear3, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::tensor::{Distribution, Tensor};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        // The biases before a BatchNorm have zero gradient in exact arithmetic (rounding noise
        // of ~1e-7 here), hence the floor of the scale.
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(0.1);
        for (i, (x, y)) in got.iter().zip(want).enumerate() {
            assert!((x - y).abs() <= 2e-5 * scale, "{what}[{i}]: {x} vs {y} (scale {scale})");
        }
    }

    /// The paired forward is two single forwards: outputs, the gradients of both inputs and of
    /// every parameter, and the BatchNorms' running statistics after the step — with branches of
    /// different statistics, so a BatchNorm over both at once would fail it.
    #[test]
    fn forward_pair_equals_two_forwards_in_values_gradients_and_running_statistics() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let (b, d, h) = (6, 10, 24);
        let projector = ProjectorConfig::new().with_input_dim(d).with_hidden_dim(h).init(&device);
        // A projector with these weights and fresh BatchNorms (a clone would share the running
        // statistics, which live behind an `Arc`).
        let fresh = || {
            let copy = |l: &Linear| Linear {
                weight: Param::from_tensor(l.weight.val()),
                bias: l.bias.as_ref().map(|b| Param::from_tensor(b.val())),
            };
            Projector {
                linear1: copy(&projector.linear1),
                norm1: BatchNormConfig::new(h).init(&device),
                linear2: copy(&projector.linear2),
                norm2: BatchNormConfig::new(h).init(&device),
                linear3: copy(&projector.linear3),
            }
        };
        let first = Tensor::<2>::random([b, d], Distribution::Normal(0.5, 2.0), &device);
        let second = Tensor::<2>::random([b, d], Distribution::Normal(-1.0, 0.5), &device);
        let run = |paired: bool| {
            let model = fresh();
            let (x1, x2) = (first.clone().require_grad(), second.clone().require_grad());
            let (p1, p2) = if paired {
                model.forward_pair(x1.clone(), x2.clone())
            } else {
                let p1 = model.forward(x1.clone());
                (p1, model.forward(x2.clone()))
            };
            // A loss that weighs the branches differently, so their gradients differ.
            let loss =
                p1.clone().powf_scalar(2.0).sum().add(p2.clone().mul_scalar(0.3).sin().sum());
            let grads = loss.backward();
            let mut out = vec![
                values(p1),
                values(p2),
                values(x1.grad(&grads).unwrap()),
                values(x2.grad(&grads).unwrap()),
            ];
            for linear in [&model.linear1, &model.linear2, &model.linear3] {
                out.push(values(linear.weight.grad(&grads).unwrap()));
                out.push(values(linear.bias.as_ref().unwrap().grad(&grads).unwrap()));
            }
            for norm in [&model.norm1, &model.norm2] {
                out.push(values(norm.gamma.grad(&grads).unwrap()));
                out.push(values(norm.beta.grad(&grads).unwrap()));
            }
            let model = model.valid();
            for norm in [&model.norm1, &model.norm2] {
                out.push(values(norm.running_mean.value()));
                out.push(values(norm.running_var.value()));
            }
            out
        };
        let (paired, single) = (run(true), run(false));
        let names = [
            "p1", "p2", "dx1", "dx2", "dW1", "db1", "dW2", "db2", "dW3", "db3", "dγ1", "dβ1",
            "dγ2", "dβ2", "mean1", "var1", "mean2", "var2",
        ];
        assert_eq!(paired.len(), names.len());
        for ((got, want), what) in paired.iter().zip(&single).zip(names) {
            assert_close(got, want, what);
        }
        // The running statistics moved (two updates from their initial 0 and 1).
        assert!(single[14].iter().any(|&m| m.abs() > 1e-3), "running mean unchanged");
    }
}
