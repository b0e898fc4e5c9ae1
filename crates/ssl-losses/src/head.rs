//! The SSL branch of NC-VQVAE: a projector plus the loss of the chosen method.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::{
    IterNorm, IterNormConfig, Projector, ProjectorConfig, barlow_twins_loss, vibcreg_loss,
};

/// Which non-contrastive method.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SslMethod {
    /// Barlow Twins (λ = 0.005, scale 1/D).
    BarlowTwins,
    /// VIbCReg (λ = μ = 25, ν = 100, weight 0.01; IterNorm on the projector output).
    Vibcreg,
}

/// Settings of [`SslHead`]; defaults are the thesis settings (docs/reference.md §6).
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

/// A setting the SSL head cannot take, found before anything is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A width of zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// The setting.
        field: &'static str,
    },
    /// VIbCReg's IterNorm splits the projector width into equal groups.
    #[error(
        "projector width {width} is not a multiple of the {groups} IterNorm groups VIbCReg whitens in (choose a multiple of {groups}, e.g. {suggestion})"
    )]
    IterNormGroups {
        /// The projector width.
        width: usize,
        /// The number of groups.
        groups: usize,
        /// The nearest valid width at or above `width`.
        suggestion: usize,
    },
}

impl SslHeadConfig {
    /// Checks the settings that [`SslHeadConfig::init`] would otherwise reject with a panic.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (field, value) in
            [("input_dim", self.input_dim), ("projector width (hidden_dim)", self.hidden_dim)]
        {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.method == SslMethod::Vibcreg {
            let groups = self.iter_norm_groups;
            if groups == 0 {
                return Err(ConfigError::Zero { field: "iter_norm_groups" });
            }
            if !self.hidden_dim.is_multiple_of(groups) {
                return Err(ConfigError::IterNormGroups {
                    width: self.hidden_dim,
                    groups,
                    suggestion: self.hidden_dim.div_ceil(groups) * groups,
                });
            }
        }
        Ok(())
    }

    /// Builds the head.
    ///
    /// # Panics
    /// On a setting [`SslHeadConfig::check`] rejects.
    pub fn init(&self, device: &Device) -> SslHead {
        let projector = ProjectorConfig::new()
            .with_input_dim(self.input_dim)
            .with_hidden_dim(self.hidden_dim)
            .init(device);
        let is_vibcreg = self.method == SslMethod::Vibcreg;
        let iter_norm = is_vibcreg.then(|| {
            IterNormConfig::new(self.hidden_dim).with_num_groups(self.iter_norm_groups).init(device)
        });
        SslHead {
            projector,
            iter_norm,
            is_vibcreg,
            barlow_lambda: self.barlow_lambda,
            vibcreg: [
                self.vibcreg_sim_weight,
                self.vibcreg_var_weight,
                self.vibcreg_cov_weight,
                self.vibcreg_weight,
            ],
        }
    }
}

impl SslHead {
    /// Projects one branch `(B, input_dim) → (B, hidden_dim)`. Call it once per branch.
    pub fn project(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.whiten(self.projector.forward(pooled))
    }

    /// VIbCReg's IterNorm on a projection; Barlow Twins uses it as it is.
    fn whiten(&self, p: Tensor<2>) -> Tensor<2> {
        match &self.iter_norm {
            Some(norm) => norm.forward(p),
            None => p,
        }
    }

    /// `(project(first), project(second))`, the projector's linear layers run once over both
    /// branches ([`Projector::forward_pair`]); the same values, gradients and running statistics
    /// as two [`SslHead::project`] calls in that order.
    pub fn project_pair(&self, first: Tensor<2>, second: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (p1, p2) = self.projector.forward_pair(first, second);
        let p1 = self.whiten(p1);
        (p1, self.whiten(p2))
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

    #[test]
    fn check_rejects_what_init_would_panic_on() {
        let vib = |width| SslHeadConfig::new(SslMethod::Vibcreg).with_hidden_dim(width).check();
        assert_eq!(
            vib(100),
            Err(ConfigError::IterNormGroups { width: 100, groups: 64, suggestion: 128 })
        );
        assert_eq!(vib(4096), Ok(()));
        assert_eq!(vib(0), Err(ConfigError::Zero { field: "projector width (hidden_dim)" }));
        assert_eq!(
            SslHeadConfig::new(SslMethod::BarlowTwins).with_hidden_dim(100).check(),
            Ok(()),
            "Barlow Twins has no groups"
        );
        assert_eq!(
            SslHeadConfig::new(SslMethod::Vibcreg).with_iter_norm_groups(0).check(),
            Err(ConfigError::Zero { field: "iter_norm_groups" })
        );
        let message = vib(100).unwrap_err().to_string();
        assert!(
            message.contains("100") && message.contains("64") && message.contains("128"),
            "{message}"
        );
    }

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
