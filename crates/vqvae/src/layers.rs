//! Small building blocks shared by the encoder and decoder (docs/reference.md §4.2, §4.3).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor, TensorData};

use kernels::{
    batch_norm_channels_last, conv_transpose2d_channels_last, conv2d_channels_last, leaky_relu,
};

/// LeakyReLU slope used everywhere (docs/reference.md §4).
pub(crate) const SLOPE: f64 = 0.01;

/// Strided encoder block: replicate-pad (1, 1) → Conv2d(kernel (3, 4), stride (1, 2)) → BN → LeakyReLU.
/// Maps `(B, i, 5, w)` to `(B, o, 5, ⌊w/2⌋)`.
///
/// The blocks' `forward` take and return **channels-last** activations `(B, H, W, C)`: inside the
/// encoder and decoder every convolution then reads and writes its GEMM layout directly (no
/// layout change per convolution, docs/benchmarks.md); the modules and records are Burn's.
#[derive(Module, Debug)]
pub(crate) struct EncBlock {
    conv: Conv2d,
    norm: BatchNorm,
}

/// Residual block `y = x + Conv1x1(LeakyReLU([BN](Conv3x3(LeakyReLU(x)))))`; the inner BN exists in
/// the encoder's blocks only.
#[derive(Module, Debug)]
pub(crate) struct ResBlock {
    conv3: Conv2d,
    norm: Option<BatchNorm>,
    conv1: Conv2d,
}

/// Transposed decoder block: ConvTranspose2d(kernel (3, 4), stride (1, 2), padding (1, 1)) → BN → LeakyReLU.
#[derive(Module, Debug)]
pub(crate) struct DecBlock {
    conv: ConvTranspose2d,
    norm: BatchNorm,
}

/// Settings shared by the block constructors.
#[derive(Config, Debug)]
pub(crate) struct BlockConfig {
    pub(crate) input: usize,
    pub(crate) output: usize,
}

impl BlockConfig {
    pub(crate) fn enc_block(&self, device: &Device) -> EncBlock {
        EncBlock {
            conv: Conv2dConfig::new([self.input, self.output], [3, 4])
                .with_stride([1, 2])
                .init(device),
            norm: BatchNormConfig::new(self.output).init(device),
        }
    }

    pub(crate) fn res_block(&self, inner_norm: bool, device: &Device) -> ResBlock {
        ResBlock {
            conv3: Conv2dConfig::new([self.input, self.output], [3, 3])
                .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            norm: inner_norm.then(|| BatchNormConfig::new(self.output).init(device)),
            conv1: Conv2dConfig::new([self.output, self.output], [1, 1]).init(device),
        }
    }

    pub(crate) fn dec_block(&self, device: &Device) -> DecBlock {
        DecBlock {
            conv: transposed(self.input, self.output, device),
            norm: BatchNormConfig::new(self.output).init(device),
        }
    }
}

/// ConvTranspose2d(kernel (3, 4), stride (1, 2), padding (1, 1)): height kept, width doubled.
pub(crate) fn transposed(input: usize, output: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([input, output], [3, 4])
        .with_stride([1, 2])
        .with_padding([1, 1])
        .init(device)
}

impl EncBlock {
    /// `(B, H, W, i)` → `(B, H, ⌊W/2⌋, o)`, channels-last.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        leaky_relu(
            batch_norm_channels_last(&self.norm, conv2d_channels_last(&self.conv, x, [1, 1, 1, 1])),
            SLOPE,
        )
    }
}

impl ResBlock {
    /// `(B, H, W, C)` → `(B, H, W, C)`, channels-last.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv2d_channels_last(&self.conv3, leaky_relu(x.clone(), SLOPE), [0; 4]);
        let h = match &self.norm {
            Some(norm) => batch_norm_channels_last(norm, h),
            None => h,
        };
        x.add(conv2d_channels_last(&self.conv1, leaky_relu(h, SLOPE), [0; 4]))
    }
}

impl DecBlock {
    /// `(B, H, W, i)` → `(B, H, 2W, o)`, channels-last.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        leaky_relu(
            batch_norm_channels_last(&self.norm, conv_transpose2d_channels_last(&self.conv, x)),
            SLOPE,
        )
    }
}

/// Bilinear resize of the last axis with `align_corners = true` (the height is unchanged, so the
/// 2-D bilinear resize of the reference reduces to this): output column `j` samples input position
/// `j·(w_in − 1)/(w_out − 1)`. Written as a product with an interpolation matrix so it is exact and
/// differentiable on every backend.
pub(crate) fn resize_width_align_corners(x: Tensor<4>, w_out: usize) -> Tensor<4> {
    let [b, c, h, w_in] = x.dims();
    if w_in == w_out {
        return x;
    }
    let mut m = vec![0f32; w_in * w_out];
    for j in 0..w_out {
        let pos = if w_out > 1 { j as f64 * (w_in - 1) as f64 / (w_out - 1) as f64 } else { 0.0 };
        let left = (pos.floor() as usize).min(w_in - 1);
        let frac = pos - left as f64;
        m[left * w_out + j] += (1.0 - frac) as f32;
        if left + 1 < w_in {
            m[(left + 1) * w_out + j] += frac as f32;
        }
    }
    let m = Tensor::<2>::from_data(TensorData::new(m, [w_in, w_out]), &x.device());
    x.reshape([b * c * h, w_in]).matmul(m).reshape([b, c, h, w_out])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_relu_values_and_gradient_match_burns() {
        let device = Device::flex().autodiff();
        let values = vec![-3.0f32, -0.5, 0.25, 2.0];
        let x =
            Tensor::<1>::from_data(TensorData::new(values.clone(), [4]), &device).require_grad();
        let y = leaky_relu(x.clone(), SLOPE);
        let got: Vec<f32> = y.clone().into_data().try_into_vec::<f32>().unwrap();
        let want: Vec<f32> = burn::tensor::activation::leaky_relu(
            Tensor::<1>::from_data(TensorData::new(values.clone(), [4]), &device),
            SLOPE,
        )
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-7, "{got:?} vs {want:?}");
        }
        let grads = y.sum().backward();
        let dx: Vec<f32> = x.grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
        for (d, v) in dx.iter().zip(&values) {
            let want = if *v > 0.0 { 1.0 } else { SLOPE as f32 };
            assert!((d - want).abs() < 1e-7, "{dx:?}");
        }
    }

    #[test]
    fn align_corners_resize_matches_hand_values() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 10.0, 20.0, 30.0], [1, 1, 1, 4]),
            &device,
        );
        // 4 → 3: positions 0, 1.5, 3.
        let y = resize_width_align_corners(x.clone(), 3).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![0.0, 15.0, 30.0]);
        // 4 → 7: positions 0, 0.5, …, 3.
        let y = resize_width_align_corners(x, 7).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
    }
}
