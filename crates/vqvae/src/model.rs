//! The plain VQ-VAE tokenizer (TimeVQVAE without its frequency split; the thesis' baseline).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use tf_transform::{Stft, StftConfig};

use crate::{
    Decoder, DecoderConfig, Encoder, EncoderConfig, Error, Quantized, VectorQuantizer,
    VectorQuantizerConfig, downsample_blocks,
};

/// Settings of [`VqVae`]; defaults are the thesis settings (docs/reference.md §3–§5).
#[derive(Config, Debug)]
pub struct VqVaeConfig {
    /// Series length L (the model is built for one length).
    pub length: usize,
    /// Series channels (1: univariate).
    #[config(default = 1)]
    pub channels: usize,
    /// Latent and codebook dimension D. Thesis: 64.
    #[config(default = 64)]
    pub dim: usize,
    /// Residual blocks in the encoder and in the decoder. Thesis: 4.
    #[config(default = 4)]
    pub res_blocks: usize,
    /// The encoder's `downsampled_width` (docs/reference.md §4.1, quirk Q15). Code: 8.
    #[config(default = 8)]
    pub downsampled_width: usize,
    /// STFT settings (n_fft 8, hop 2).
    #[config(default = "StftConfig::new()")]
    pub stft: StftConfig,
    /// Quantiser settings (32 × 64, decay 0.9, commitment 1.0).
    #[config(default = "VectorQuantizerConfig::new()")]
    pub quantizer: VectorQuantizerConfig,
}

/// Encoder, EMA quantiser and decoder around the STFT.
#[derive(Module, Debug)]
pub struct VqVae {
    pub(crate) encoder: Encoder,
    pub(crate) quantizer: VectorQuantizer,
    pub(crate) decoder: Decoder,
    n_fft: usize,
    hop: usize,
    length: usize,
}

/// Everything one forward pass computes.
#[derive(Debug, Clone)]
pub struct Reconstruction {
    /// STFT of the input `(B, 2C, 5, W)`.
    pub u: Tensor<4>,
    /// Continuous latent `(B, D, 5, W')`.
    pub z: Tensor<4>,
    /// Quantiser output.
    pub quantized: Quantized,
    /// Decoded STFT `(B, 2C, 5, W)`.
    pub u_hat: Tensor<4>,
    /// Reconstructed series `(B, C, 2⌊L/2⌋)`.
    pub x_hat: Tensor<3>,
}

/// The stage-1 loss terms (docs/reference.md §6.4), each a one-element tensor. Terms a model does not have are 0.
#[derive(Debug, Clone)]
pub struct Stage1Losses {
    /// The loss to minimise.
    pub total: Tensor<1>,
    /// `MSE(x, x̂)` (target cropped to `2⌊L/2⌋`).
    pub recon_time: Tensor<1>,
    /// `MSE(u, û)`.
    pub recon_timefreq: Tensor<1>,
    /// `β · MSE(z, sg(q))`.
    pub commitment: Tensor<1>,
    /// `MSE(x', x̂')` of the augmented view (NC-VQVAE).
    pub aug_recon_time: Tensor<1>,
    /// `MSE(u', û')` of the augmented view (NC-VQVAE).
    pub aug_recon_timefreq: Tensor<1>,
    /// The SSL loss (NC-VQVAE).
    pub ssl: Tensor<1>,
    /// Codebook perplexity of the batch (logging).
    pub perplexity: Tensor<1>,
}

/// Mean squared error over all elements; the longer tensor is cropped on the last axis to the
/// shorter one (odd lengths, docs/reference.md §3 / quirk Q4).
pub fn mse<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<1> {
    let (la, lb) = (a.dims()[D - 1], b.dims()[D - 1]);
    let n = la.min(lb);
    a.narrow(D - 1, 0, n).sub(b.narrow(D - 1, 0, n)).square().mean()
}

impl VqVaeConfig {
    /// Number of stride-2 encoder blocks for this length.
    pub fn downsample_blocks(&self) -> usize {
        downsample_blocks(self.length, self.stft.n_fft, self.downsampled_width)
    }

    /// Builds the model, checking that the length fits the STFT.
    pub fn init(&self, device: &Device) -> Result<VqVae, Error> {
        let stft = Stft::new(&self.stft)?;
        stft.check_length(self.length)?;
        let n = self.downsample_blocks();
        let spectral = 2 * self.channels;
        Ok(VqVae {
            encoder: EncoderConfig::new()
                .with_in_channels(spectral)
                .with_dim(self.dim)
                .with_downsample_blocks(n)
                .with_res_blocks(self.res_blocks)
                .init(device),
            quantizer: self.quantizer.clone().with_dim(self.dim).init(device),
            decoder: DecoderConfig::new(stft.frames(self.length))
                .with_out_channels(spectral)
                .with_dim(self.dim)
                .with_downsample_blocks(n)
                .with_res_blocks(self.res_blocks)
                .init(device),
            n_fft: self.stft.n_fft,
            hop: self.stft.hop_length,
            length: self.length,
        })
    }
}

impl VqVae {
    /// The STFT this model was built with.
    pub fn stft(&self) -> Stft {
        Stft::new(&StftConfig::new().with_n_fft(self.n_fft).with_hop_length(self.hop))
            .expect("validated when the model was built")
    }

    /// The series length the model was built for.
    pub fn length(&self) -> usize {
        self.length
    }

    /// The quantiser (codebook access, token decoding).
    pub fn quantizer(&self) -> &VectorQuantizer {
        &self.quantizer
    }

    /// STFT and encoder: `(B, C, L) → (u, z)`.
    pub fn encode(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let u = self.stft().forward(x);
        let z = self.encoder.forward(u.clone());
        (u, z)
    }

    /// Decoder and ISTFT: latent `(B, D, 5, W') → (û, x̂)`.
    pub fn decode(&self, z: Tensor<4>) -> (Tensor<4>, Tensor<3>) {
        let u_hat = self.decoder.forward(z);
        let x_hat = self.stft().inverse(u_hat.clone(), None);
        (u_hat, x_hat)
    }

    /// The whole tokenizer on a batch. On an autodiff device the quantiser trains (EMA update).
    pub fn forward(&self, x: Tensor<3>) -> Reconstruction {
        let (u, z) = self.encode(x);
        let quantized = self.quantizer.forward(z.clone());
        let (u_hat, x_hat) = self.decode(quantized.z_q.clone());
        Reconstruction { u, z, quantized, u_hat, x_hat }
    }

    /// Token grid `(B, 5·W')` of a batch (nearest codewords).
    pub fn tokens(&self, x: Tensor<3>) -> Tensor<2, Int> {
        let (_, z) = self.encode(x);
        self.quantizer.forward(z).tokens
    }

    /// The probe features of docs/reference.md §10.1: `z_q` averaged over frequency and time, `(B, D)`.
    pub fn pooled_features(&self, x: Tensor<3>) -> Tensor<2> {
        let (_, z) = self.encode(x);
        let z_q = self.quantizer.forward(z).z_q;
        let [b, d, h, w] = z_q.dims();
        z_q.reshape([b, d, h * w]).mean_dim(2).reshape([b, d])
    }

    /// The baseline's loss `MSE(x, x̂) + MSE(u, û) + β·commitment` (docs/reference.md §6.4) and its terms.
    pub fn losses(&self, x: Tensor<3>) -> Stage1Losses {
        let rec = self.forward(x.clone());
        Self::reconstruction_losses(x, &rec)
    }

    pub(crate) fn reconstruction_losses(x: Tensor<3>, rec: &Reconstruction) -> Stage1Losses {
        let device = x.device();
        let recon_time = mse(x, rec.x_hat.clone());
        let recon_timefreq = mse(rec.u.clone(), rec.u_hat.clone());
        let commitment = rec.quantized.commitment_loss.clone();
        let zero = || Tensor::<1>::zeros([1], &device);
        Stage1Losses {
            total: recon_time.clone().add(recon_timefreq.clone()).add(commitment.clone()),
            recon_time,
            recon_timefreq,
            commitment,
            aug_recon_time: zero(),
            aug_recon_timefreq: zero(),
            ssl: zero(),
            perplexity: rec.quantized.perplexity.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// `(L, W, W', encoder params, decoder params)` from docs/reference.md §4.4 (thesis datasets).
    const REFERENCE: [(usize, usize, usize, usize, usize); 11] = [
        (65, 33, 8, 216_448, 215_796),
        (70, 36, 9, 216_448, 215_796),
        (96, 49, 12, 216_448, 215_796),
        (128, 65, 8, 265_792, 265_140),
        (140, 71, 8, 265_792, 265_140),
        (152, 77, 9, 265_792, 265_140),
        (398, 200, 12, 315_136, 314_484),
        (500, 251, 15, 315_136, 314_484),
        (512, 257, 8, 364_480, 363_828),
        (945, 473, 14, 364_480, 363_828),
        (1024, 513, 8, 413_824, 413_172),
    ];

    #[test]
    fn shapes_and_parameter_counts_match_the_reference_for_every_thesis_length() {
        let device = Device::flex().autodiff();
        for (length, frames, latent_w, enc_params, dec_params) in REFERENCE {
            let model = VqVaeConfig::new(length).init(&device).unwrap();
            assert_eq!(
                crate::trainable_params(&model.encoder),
                enc_params,
                "encoder params, L = {length}"
            );
            assert_eq!(
                crate::trainable_params(&model.decoder),
                dec_params,
                "decoder params, L = {length}"
            );
            assert_eq!(crate::trainable_params(&model.quantizer), 0, "the codebook is a buffer");
            let model = model.valid();
            let x = Tensor::<3>::random([2, 1, length], Distribution::Normal(0.0, 1.0), &device);
            let rec = model.forward(x);
            assert_eq!(rec.u.dims(), [2, 2, 5, frames], "STFT, L = {length}");
            assert_eq!(rec.z.dims(), [2, 64, 5, latent_w], "latent, L = {length}");
            assert_eq!(rec.quantized.tokens.dims(), [2, 5 * latent_w], "tokens, L = {length}");
            assert_eq!(rec.u_hat.dims(), [2, 2, 5, frames], "decoder output, L = {length}");
            assert_eq!(rec.x_hat.dims(), [2, 1, 2 * (length / 2)], "ISTFT output, L = {length}");
        }
        // FordA: stage-1 baseline total 629,620 (docs/reference.md §4.4).
        assert_eq!(crate::trainable_params(&VqVaeConfig::new(500).init(&device).unwrap()), 629_620);
    }

    #[test]
    fn too_short_series_is_an_error() {
        let err = VqVaeConfig::new(4).init(&Device::flex()).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
    }

    #[test]
    fn a_few_adamw_steps_reduce_the_loss() {
        use burn::optim::{AdamWConfig, GradientsParams};
        let device = Device::flex().autodiff();
        device.seed(11);
        let mut model = VqVaeConfig::new(32).with_dim(16).with_res_blocks(1).init(&device).unwrap();
        let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(1e-3).init();
        let t: Vec<f32> =
            (0..8 * 32).map(|i| ((i % 32) as f32 * 0.4 + (i / 32) as f32).sin()).collect();
        let x = Tensor::<3>::from_data(burn::tensor::TensorData::new(t, [8, 1, 32]), &device);
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..30 {
            let losses = model.losses(x.clone());
            last = losses.recon_time.clone().into_scalar::<f32>();
            first.get_or_insert(last);
            let grads = GradientsParams::from_grads(losses.total.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        let first = first.unwrap();
        assert!(last < 0.7 * first, "time-domain reconstruction error {first} → {last}");
    }
}
