#![doc = include_str!("../README.md")]

mod decoder;
mod encoder;
mod layers;
mod model;
mod nc_vqvae;
mod quantizer;

pub use decoder::{Decoder, DecoderConfig};
pub use encoder::{Encoder, EncoderConfig, downsample_blocks};
pub use model::{Reconstruction, Stage1Losses, VqVae, VqVaeConfig, mse};
pub use nc_vqvae::{NcVqVae, NcVqVaeConfig, pool};
pub use quantizer::{Quantized, VectorQuantizer, VectorQuantizerConfig};

/// Number of trainable parameter values of a module built on an autodiff device.
///
/// Burn's `num_params` also counts buffers (BatchNorm running statistics); the reference's counts
/// (docs/reference.md §4.4) are trainable parameters only, i.e. the tensors that require a gradient.
/// On a device without autodiff nothing requires a gradient and this returns 0.
pub fn trainable_params<M: burn::module::Module>(module: &M) -> usize {
    struct Count(usize);
    impl burn::module::ModuleVisitor for Count {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let value = param.val();
            if value.is_require_grad() {
                self.0 += value.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// Invalid model settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The STFT settings or the series length do not fit.
    #[error(transparent)]
    Transform(#[from] tf_transform::Error),
    /// The SSL head's settings do not fit (e.g. a VIbCReg projector width IterNorm cannot split).
    #[error(transparent)]
    Ssl(#[from] ssl_losses::ConfigError),
}
