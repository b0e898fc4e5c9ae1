//! The SSL branch of NC-VQVAE: a projector plus the loss of the chosen method.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::{IterNorm, IterNormConfig, Projector, ProjectorConfig, barlow_twins_loss, vibcreg_loss};

/// Which non-contrastive method.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SslMethod {
    /// Barlow Twins (λ = 0.005, scale 1/D).
    BarlowTwins,
    /// VIbCReg (λ = μ = 25, ν = 100, weight 0.01; IterNorm on the projector output).
    Vibcreg,
}

/// Settings of [`SslHead`]; defaults are the thesis settings (spec §6).
#[derive(Config, Debug)]
pub struct SslHeadConfig {
    /// The method.
    pub method: SslMethod,
    /// Projector input width (pooled latent, 128).
    #[config(default = 128)]
    pub input_dim: usize,
    /// Projector width (4096).
    #[config(default = 4096)]
    pub hidden_dim: usize,
    /// Barlow Twins off-diagonal weight λ.
    #[config(default = 0.005)]
    pub barlow_lambda: f64,
    /// VIbCReg similarity weight λ.
    #[config(default = 25.0)]
    pub vibcreg_sim_weight: f64,
    /// VIbCReg variance weight μ.
    #[config(default = 25.0)]
    pub vibcreg_var_weight: f64,
    /// VIbCReg covariance weight ν.
    #[config(default = 100.0)]
    pub vibcreg_cov_weight: f64,
    /// VIbCReg overall weight.
    #[config(default = 0.01)]
    pub vibcreg_weight: f64,
    /// IterNorm groups (VIbCReg only).
    #[config(default = 64)]
    pub iter_norm_groups: usize,
}

/// Projector (+ IterNorm for VIbCReg) and the loss.
#[derive(Module, Debug)]
pub struct SslHead {
    projector: Projector,
    iter_norm: Option<IterNorm>,
    /// `true` for VIbCReg, `false` for Barlow Twins (a plain constant: Module derive takes no
    /// unit enums).
    is_vibcreg: bool,
    barlow_lambda: f64,
    vibcreg: [f64; 4],
}

impl SslHeadConfig {
    /// Builds the head.
    pub fn init(&self, device: &Device) -> SslHead {
        let projector = ProjectorConfig::new().with_input_dim(self.input_dim).with_hidden_dim(self.hidden_dim).init(device);
        let is_vibcreg = self.method == SslMethod::Vibcreg;
        let iter_norm =
            is_vibcreg.then(|| IterNormConfig::new(self.hidden_dim).with_num_groups(self.iter_norm_groups).init(device));
        SslHead {
            projector,
            iter_norm,
            is_vibcreg,
            barlow_lambda: self.barlow_lambda,
            vibcreg: [self.vibcreg_sim_weight, self.vibcreg_var_weight, self.vibcreg_cov_weight, self.vibcreg_weight],
        }
    }
}

impl SslHead {
    /// Projects one branch `(B, input_dim) → (B, hidden_dim)`. Call it once per branch.
    pub fn project(&self, pooled: Tensor<2>) -> Tensor<2> {
        let p = self.projector.forward(pooled);
        match &self.iter_norm {
            Some(norm) => norm.forward(p),
            None => p,
        }
    }

    /// The method's loss between the projections of the two branches.
    pub fn loss(&self, p1: Tensor<2>, p2: Tensor<2>) -> Tensor<1> {
        if self.is_vibcreg {
            let [l, m, n, w] = self.vibcreg;
            vibcreg_loss(p1, p2, l, m, n, w)
        } else {
            barlow_twins_loss(p1, p2, self.barlow_lambda)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn's `num_params` also counts buffers (BatchNorm running mean and variance, IterNorm's
    /// running mean and whitening matrices), so the thesis' trainable counts are checked with the
    /// buffer sizes added: 2 BN × 2 × 4096 = 16,384; IterNorm 64×64×1 + 64×64×64 = 266,240.
    #[test]
    fn thesis_parameter_counts() {
        let device = Device::flex();
        let bt = SslHeadConfig::new(SslMethod::BarlowTwins).init(&device);
        assert_eq!(bt.num_params(), 34_107_392 + 16_384);
        let vib = SslHeadConfig::new(SslMethod::Vibcreg).init(&device);
        assert_eq!(vib.num_params(), 34_115_584 + 16_384 + 266_240);
    }
}
