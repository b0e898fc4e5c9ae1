//! The decoder (docs/reference.md §4.3).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::ConvTranspose2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::layers::{BlockConfig, DecBlock, ResBlock, resize_width_align_corners, transposed};
use kernels::{batch_norm_channels_last, conv_transpose2d_channels_last};

/// Settings of the [`Decoder`]; defaults are the thesis settings.
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Output channels (2: real and imaginary part).
    #[config(default = 2)]
    pub out_channels: usize,
    /// Latent dimension D. Thesis: 64.
    #[config(default = 64)]
    pub dim: usize,
    /// The encoder's number of stride-2 blocks `n`.
    #[config(default = 1)]
    pub downsample_blocks: usize,
    /// Residual blocks. Thesis: 4.
    #[config(default = 4)]
    pub res_blocks: usize,
    /// STFT frames `W` to resize back to (`⌊L/2⌋ + 1`).
    pub frames: usize,
}

/// `[ResBlock (no inner BN) → BN] × 4`, `DecBlock × (n−1)`, two bare transposed convolutions
/// (64→2, 2→2), then an align-corners bilinear resize of the width to `W`.
#[derive(Module, Debug)]
pub struct Decoder {
    res: Vec<ResBlock>,
    res_norms: Vec<BatchNorm>,
    up: Vec<DecBlock>,
    to_out: ConvTranspose2d,
    out: ConvTranspose2d,
    frames: usize,
}

impl DecoderConfig {
    /// Builds the decoder (PyTorch default initialisation).
    pub fn init(&self, device: &Device) -> Decoder {
        let d = self.dim;
        Decoder {
            res: (0..self.res_blocks)
                .map(|_| BlockConfig::new(d, d).res_block(false, device))
                .collect(),
            res_norms: (0..self.res_blocks).map(|_| BatchNormConfig::new(d).init(device)).collect(),
            up: (1..self.downsample_blocks)
                .map(|_| BlockConfig::new(d, d).dec_block(device))
                .collect(),
            to_out: transposed(d, self.out_channels, device),
            out: transposed(self.out_channels, self.out_channels, device),
            frames: self.frames,
        }
    }
}

impl Decoder {
    /// `(B, D, 5, W') → (B, 2, 5, W)`.
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        // Channels-last inside (crate::layers): one layout change in, one out.
        let mut x = z.permute([0, 2, 3, 1]);
        for (block, norm) in self.res.iter().zip(&self.res_norms) {
            x = batch_norm_channels_last(norm, block.forward(x));
        }
        for block in &self.up {
            x = block.forward(x);
        }
        let x = conv_transpose2d_channels_last(
            &self.out,
            conv_transpose2d_channels_last(&self.to_out, x),
        );
        resize_width_align_corners(x.permute([0, 3, 1, 2]), self.frames)
    }
}
