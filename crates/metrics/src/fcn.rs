//! The supervised FCN of docs/reference.md §10.2 (Wang et al. 2017), the classifier behind FID, IS and CAS:
//! three `Conv1d → BatchNorm → ReLU` blocks (128/256/128 channels, kernels 8/5/3, stride 1, "same"
//! padding with the extra zero on the right for the even kernel), global average pooling over time
//! (any input length) and a linear head.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use kernels::{batch_norm_channels_last, conv1d_channels_last};

/// Settings of [`Fcn`]; defaults are the reference's.
#[derive(Config, Debug)]
pub struct FcnConfig {
    /// Number of classes K.
    pub n_classes: usize,
    /// Input channels (1: univariate).
    #[config(default = 1)]
    pub in_channels: usize,
}

/// One `Conv1d → BatchNorm → ReLU` block with "same" padding.
#[derive(Module, Debug)]
pub struct FcnBlock {
    conv: Conv1d,
    norm: BatchNorm,
    pad_left: usize,
    pad_right: usize,
}

impl FcnBlock {
    fn new(cin: usize, cout: usize, kernel: usize, device: &Device) -> Self {
        let total = kernel - 1;
        Self {
            conv: Conv1dConfig::new(cin, cout, kernel).init(device),
            norm: BatchNormConfig::new(cout).init(device),
            pad_left: total / 2,
            pad_right: total - total / 2,
        }
    }

    /// `(B, C_in, L) → (B, C_out, L)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_channels_last(x.permute([0, 2, 1])).permute([0, 2, 1])
    }

    /// `(B, L, C_in) → (B, L, C_out)`, channels-last: the layout the network runs in (the
    /// `kernels` crate's GEMM convolution and BatchNorm read and write it directly; Burn's
    /// `Conv1d` computes its input gradient through a direct-loop transposed convolution).
    fn forward_channels_last(&self, x: Tensor<3>) -> Tensor<3> {
        relu(batch_norm_channels_last(
            &self.norm,
            conv1d_channels_last(&self.conv, x, [self.pad_left, self.pad_right]),
        ))
    }
}

/// The FCN classifier. Like every Burn model with BatchNorm it trains (batch statistics) on an
/// autodiff device; use `model.valid()` for evaluation.
#[derive(Module, Debug)]
pub struct Fcn {
    blocks: Vec<FcnBlock>,
    head: Linear,
}

impl FcnConfig {
    /// Builds the network (parameters: 264,704 + 129·K for one input channel).
    pub fn init(&self, device: &Device) -> Fcn {
        Fcn {
            blocks: vec![
                FcnBlock::new(self.in_channels, 128, 8, device),
                FcnBlock::new(128, 256, 5, device),
                FcnBlock::new(256, 128, 3, device),
            ],
            head: LinearConfig::new(128, self.n_classes).init(device),
        }
    }
}

impl Fcn {
    /// The 128-d globally average-pooled features of series `(B, C, L)`: `(B, 128)` (FID's input).
    pub fn features(&self, x: Tensor<3>) -> Tensor<2> {
        let mut h = x.permute([0, 2, 1]);
        for block in &self.blocks {
            h = block.forward_channels_last(h);
        }
        let [b, _, c] = h.dims();
        h.mean_dim(1).reshape([b, c])
    }

    /// Class logits `(B, K)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.head.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Int, TensorData};

    #[test]
    fn parameter_count_and_shapes_for_any_length() {
        let device = Device::flex().autodiff();
        for k in [2, 5, 60] {
            assert_eq!(
                vqvae::trainable_params(&FcnConfig::new(k).init(&device)),
                264_704 + 129 * k,
                "K = {k}"
            );
        }
        let model = FcnConfig::new(3).init(&device).valid();
        for length in [7, 65, 140, 501] {
            let x = Tensor::<3>::random([2, 1, length], Distribution::Normal(0.0, 1.0), &device);
            assert_eq!(model.features(x.clone()).dims(), [2, 128], "L = {length}");
            assert_eq!(model.forward(x).dims(), [2, 3]);
        }
    }

    #[test]
    fn same_padding_keeps_the_length_and_puts_the_extra_zero_right() {
        let device = Device::flex();
        let block = FcnBlock::new(1, 1, 8, &device);
        assert_eq!(
            (block.pad_left, block.pad_right),
            (3, 4),
            "k = 8: left 3, right 4 (docs/reference.md §10.2)"
        );
        let x = Tensor::<3>::ones([1, 1, 10], &device);
        assert_eq!(block.forward(x).dims(), [1, 1, 10]);
        let b5 = FcnBlock::new(1, 1, 5, &device);
        assert_eq!((b5.pad_left, b5.pad_right), (2, 2));
    }

    #[test]
    fn a_few_steps_learn_a_two_class_problem() {
        use burn::optim::{AdamWConfig, GradientsParams};
        use burn::tensor::activation::log_softmax;
        let device = Device::flex().autodiff();
        device.seed(3);
        let mut model = FcnConfig::new(2).init(&device);
        let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(1e-5).init();
        // Class 0: slow sine, class 1: fast sine.
        let (b, l) = (16, 32);
        let x: Vec<f32> = (0..b)
            .flat_map(|i| {
                (0..l).map(move |t| ((t as f32) * if i % 2 == 0 { 0.2 } else { 1.3 }).sin())
            })
            .collect();
        let y: Vec<i64> = (0..b).map(|i| (i % 2) as i64).collect();
        let x = Tensor::<3>::from_data(TensorData::new(x, [b, 1, l]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [b]), &device);
        let mut losses = Vec::new();
        for _ in 0..20 {
            let logp = log_softmax(model.forward(x.clone()), 1);
            let loss = logp.gather(1, y.clone().reshape([b, 1])).mean().neg();
            losses.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        assert!(losses[19] < 0.5 * losses[0], "{losses:?}");
        let predicted = model.valid().forward(x.clone().inner()).argmax(1).reshape([b]);
        let correct = predicted.equal(y.inner()).int().sum().into_scalar::<i64>();
        assert!(correct >= 14, "{correct}/16 correct after 20 steps");
    }
}
