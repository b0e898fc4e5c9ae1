//! The encoder (docs/reference.md §4.1, §4.2).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::layers::{BlockConfig, EncBlock, ResBlock};
use kernels::batch_norm_channels_last;

/// Number of stride-2 encoder blocks for a series of length `length` (docs/reference.md §4.1, quirk Q15):
/// `rate = round_half_even(L / (log2(n_fft) − 1) / downsampled_width)` (1 if `L < downsampled_width`),
/// `n = max(1, ⌊log2(rate)⌋)`.
pub fn downsample_blocks(length: usize, n_fft: usize, downsampled_width: usize) -> usize {
    let rate = if length < downsampled_width {
        1.0
    } else {
        let x = length as f64 / ((n_fft as f64).log2() - 1.0) / downsampled_width as f64;
        x.round_ties_even()
    };
    if rate < 2.0 { 1 } else { (rate.log2().floor() as usize).max(1) }
}

/// Settings of the [`Encoder`]; defaults are the thesis settings.
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Input channels: real and imaginary part per series channel (2 for univariate series).
    #[config(default = 2)]
    pub in_channels: usize,
    /// Latent dimension D (= codebook dimension). Thesis: 64.
    #[config(default = 64)]
    pub dim: usize,
    /// Number of stride-2 blocks `n` (see [`downsample_blocks`]).
    #[config(default = 1)]
    pub downsample_blocks: usize,
    /// Residual blocks after the strided ones. Thesis: 4.
    #[config(default = 4)]
    pub res_blocks: usize,
}

/// `EncBlock(2→64)`, `EncBlock(64→64) × (n−1)`, then `[ResBlock → BN] × 4`. Maps the STFT
/// `(B, 2, 5, W)` to the latent `(B, 64, 5, W')` with `W'` = `W` halved (floor) `n` times.
#[derive(Module, Debug)]
pub struct Encoder {
    down: Vec<EncBlock>,
    res: Vec<ResBlock>,
    res_norms: Vec<BatchNorm>,
}

impl EncoderConfig {
    /// Builds the encoder (PyTorch default initialisation, docs/reference.md §4.5).
    pub fn init(&self, device: &Device) -> Encoder {
        let d = self.dim;
        let mut down = vec![BlockConfig::new(self.in_channels, d).enc_block(device)];
        down.extend((1..self.downsample_blocks).map(|_| BlockConfig::new(d, d).enc_block(device)));
        Encoder {
            down,
            res: (0..self.res_blocks)
                .map(|_| BlockConfig::new(d, d).res_block(true, device))
                .collect(),
            res_norms: (0..self.res_blocks).map(|_| BatchNormConfig::new(d).init(device)).collect(),
        }
    }
}

impl Encoder {
    /// `(B, 2, 5, W) → (B, D, 5, W')`.
    pub fn forward(&self, u: Tensor<4>) -> Tensor<4> {
        // Channels-last inside (crate::layers): one layout change in, one out.
        let mut x = u.permute([0, 2, 3, 1]);
        for block in &self.down {
            x = block.forward(x);
        }
        for (block, norm) in self.res.iter().zip(&self.res_norms) {
            x = batch_norm_channels_last(norm, block.forward(x));
        }
        x.permute([0, 3, 1, 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_follows_the_reference_table() {
        // (L, n) from docs/reference.md §4.1 and §4.4.
        for (length, n) in [
            (65, 2),
            (70, 2),
            (96, 2),
            (128, 3),
            (140, 3),
            (152, 3),
            (398, 4),
            (500, 4),
            (512, 5),
            (945, 5),
            (1024, 6),
        ] {
            assert_eq!(downsample_blocks(length, 8, 8), n, "L = {length}");
        }
        assert_eq!(downsample_blocks(5, 8, 8), 1, "short series: rate 1");
        assert_eq!(downsample_blocks(40, 8, 8), 1, "round_half_even(2.5) = 2 → n = 1");
    }
}
