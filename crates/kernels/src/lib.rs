#![doc = include_str!("../README.md")]

mod activation;
mod attention;
#[cfg(feature = "flex")]
mod buffers;
mod conv;
#[cfg(feature = "flex")]
mod gemm;
mod im2col;
mod matmul;
mod norm;
mod rms_norm;

pub use activation::{gelu, leaky_relu};
pub use attention::attention;
pub use conv::{conv_transpose2d, conv_transpose2d_channels_last, conv1d_channels_last, conv2d, conv2d_channels_last};
pub use matmul::{linear, matmul, rows_times};
pub use norm::{batch_norm, batch_norm_channels_last};
pub use rms_norm::rms_norm;

/// Whether the flex kernels apply to `x`: an `f32` tensor on Burn's flex CPU backend (with or
/// without autodiff), and the crate built with its `flex` feature.
pub fn flex_f32<const D: usize>(x: &burn::tensor::Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    return matches!(x.device().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_)) && x.dtype() == burn::tensor::DType::F32;
    #[cfg(not(feature = "flex"))]
    {
        let _ = x;
        false
    }
}
