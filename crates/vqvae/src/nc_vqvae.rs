//! NC-VQVAE: the tokenizer plus a non-contrastive SSL branch on an augmented view (docs/reference.md §6, §8.2).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ssl_losses::{SslHead, SslHeadConfig, SslMethod};

use crate::{Error, Stage1Losses, VqVae, VqVaeConfig, mse};

/// Global pooling of a latent `(B, D, H, W)`: mean and max over `(H, W)` concatenated, `(B, 2D)`.
pub fn pool(z: Tensor<4>) -> Tensor<2> {
    let [b, d, h, w] = z.dims();
    let flat = z.reshape([b, d, h * w]);
    let mean = flat.clone().mean_dim(2).reshape([b, d]);
    let max = flat.max_dim(2).reshape([b, d]);
    Tensor::cat(vec![mean, max], 1)
}

/// Settings of [`NcVqVae`]; defaults are the thesis settings.
#[derive(Config, Debug)]
pub struct NcVqVaeConfig {
    /// The tokenizer.
    pub vqvae: VqVaeConfig,
    /// The SSL method.
    pub method: SslMethod,
    /// Weight ζ of the augmented view's reconstruction loss. Thesis: 0.1.
    #[config(default = 0.1)]
    pub aug_recon_weight: f64,
    /// Projector width. Thesis: 4096.
    #[config(default = 4096)]
    pub projector_dim: usize,
}

/// The tokenizer and the SSL head (projector + loss).
#[derive(Module, Debug)]
pub struct NcVqVae {
    vqvae: VqVae,
    ssl: SslHead,
    aug_recon_weight: f64,
}

impl NcVqVaeConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Result<NcVqVae, Error> {
        let ssl = SslHeadConfig::new(self.method)
            .with_input_dim(2 * self.vqvae.dim)
            .with_hidden_dim(self.projector_dim);
        ssl.check()?;
        let vqvae = self.vqvae.init(device)?;
        let ssl = ssl.init(device);
        Ok(NcVqVae { vqvae, ssl, aug_recon_weight: self.aug_recon_weight })
    }
}

impl NcVqVae {
    /// The tokenizer (for tokens, probes, decoding).
    pub fn vqvae(&self) -> &VqVae {
        &self.vqvae
    }

    /// Consumes the model, keeping the tokenizer.
    pub fn into_vqvae(self) -> VqVae {
        self.vqvae
    }

    /// One SSL training step's loss (docs/reference.md §8.2): the original view goes through the quantiser
    /// (EMA update), the augmented view is decoded from its continuous latent, and the projector
    /// projects both branches (augmented first, as the reference: its BatchNorms' running
    /// statistics are updated in that order), each linear layer once over both. Total =
    /// `L_rec + L_commit + ζ·L_aug + L_SSL`.
    pub fn losses(&self, x: Tensor<3>, x_aug: Tensor<3>) -> Stage1Losses {
        let rec = self.vqvae.forward(x.clone());
        let mut losses = VqVae::reconstruction_losses(x, &rec);
        let (u_aug, z_aug) = self.vqvae.encode(x_aug.clone());
        let (u_aug_hat, x_aug_hat) = self.vqvae.decode(z_aug.clone());
        losses.aug_recon_time = mse(x_aug, x_aug_hat);
        losses.aug_recon_timefreq = mse(u_aug, u_aug_hat);
        let (p_aug, p) = self.ssl.project_pair(pool(z_aug), pool(rec.quantized.z_q));
        losses.ssl = self.ssl.loss(p, p_aug);
        losses.total = losses
            .total
            .add(
                losses
                    .aug_recon_time
                    .clone()
                    .add(losses.aug_recon_timefreq.clone())
                    .mul_scalar(self.aug_recon_weight),
            )
            .add(losses.ssl.clone());
        losses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn thesis_parameter_counts_for_forda() {
        let device = Device::flex().autodiff();
        let bt = NcVqVaeConfig::new(VqVaeConfig::new(500), SslMethod::BarlowTwins)
            .init(&device)
            .unwrap();
        assert_eq!(crate::trainable_params(&bt), 34_737_012);
        let vib =
            NcVqVaeConfig::new(VqVaeConfig::new(500), SslMethod::Vibcreg).init(&device).unwrap();
        assert_eq!(crate::trainable_params(&vib), 34_745_204);
    }

    #[test]
    fn ssl_step_has_every_loss_term_and_gradients_reach_the_encoder() {
        let device = Device::flex().autodiff();
        for method in [SslMethod::BarlowTwins, SslMethod::Vibcreg] {
            let model =
                NcVqVaeConfig::new(VqVaeConfig::new(70).with_dim(16).with_res_blocks(1), method)
                    .with_projector_dim(64)
                    .init(&device)
                    .unwrap();
            let x = Tensor::<3>::random([6, 1, 70], Distribution::Normal(0.0, 1.0), &device);
            let x_aug =
                x.clone().add(Tensor::random([6, 1, 70], Distribution::Normal(0.0, 0.1), &device));
            let l = model.losses(x, x_aug);
            let terms = [
                &l.recon_time,
                &l.recon_timefreq,
                &l.commitment,
                &l.aug_recon_time,
                &l.aug_recon_timefreq,
                &l.ssl,
            ];
            let values: Vec<f32> =
                terms.iter().map(|t| (*t).clone().into_scalar::<f32>()).collect();
            assert!(values.iter().all(|v| v.is_finite() && *v > 0.0), "{method:?}: {values:?}");
            let sum = values[0] + values[1] + values[2] + 0.1 * (values[3] + values[4]) + values[5];
            let total = l.total.clone().into_scalar::<f32>();
            assert!(
                (total - sum).abs() < 1e-4 * sum.abs().max(1.0),
                "{method:?}: total {total} vs {sum}"
            );
            let grads = l.total.backward();
            let mut touched = 0;
            model.vqvae().encoder.visit(&mut GradCount { grads: &grads, touched: &mut touched });
            assert!(touched > 0, "{method:?}: encoder parameters get gradients");
        }
    }

    struct GradCount<'a> {
        grads: &'a burn::tensor::Gradients,
        touched: &'a mut usize,
    }

    impl burn::module::ModuleVisitor for GradCount<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if param.val().grad(self.grads).is_some() {
                *self.touched += 1;
            }
        }
    }
}
