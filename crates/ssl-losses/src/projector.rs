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
}
