//! `bench --check`: does a backend compute what the CPU computes?

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use ssl_losses::SslMethod;
use vqvae::{NcVqVaeConfig, VqVaeConfig};

use nc_vqvae::stage1::Stage1Run;

use super::timing::{BenchError, Shape, sync};

/// How closely a backend reproduces the CPU backend (`flex`) on tiny stage-1 steps, from the same
/// initial weights and inputs (what `tests/wgpu.rs` checks for wgpu): the losses of three AdamW
/// steps of the baseline VQ-VAE, and one NC-VQVAE (Barlow Twins) step's losses and gradient with
/// respect to the augmented view. Trajectories of NC-VQVAE are not compared: its SSL branch
/// max-pools a quantised latent with exact ties, which backends may break differently.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Agreement {
    /// The backend compared with the CPU.
    pub(crate) backend: String,
    /// Baseline total loss per step on the CPU.
    pub(crate) baseline_losses_cpu: Vec<f32>,
    /// The same on the backend.
    pub(crate) baseline_losses: Vec<f32>,
    /// NC-VQVAE losses (total, SSL, time-domain reconstruction, augmented view's time-frequency
    /// reconstruction) on the CPU.
    pub(crate) nc_losses_cpu: Vec<f32>,
    /// The same on the backend.
    pub(crate) nc_losses: Vec<f32>,
    /// Largest `|cpu - backend| / max(|cpu|, 1)` over all the losses.
    pub(crate) max_loss_difference: f64,
    /// Largest absolute entry of the augmented view's gradient on the CPU.
    pub(crate) gradient_scale: f64,
    /// Largest difference of the augmented view's gradient over its largest CPU entry.
    pub(crate) max_gradient_difference: f64,
    /// Whether both stay within [`LOSS_TOLERANCE`] and [`GRADIENT_TOLERANCE`].
    pub(crate) agrees: bool,
}

/// Relative loss difference an agreeing backend stays within (float32 with other summation orders).
pub(crate) const LOSS_TOLERANCE: f64 = 2e-3;
/// Gradient difference (relative to the largest entry) an agreeing backend stays within.
pub(crate) const GRADIENT_TOLERANCE: f64 = 1e-3;

/// Batch and length of the agreement check's series.
const CHECK_SHAPE: Shape = Shape { batch: 4, length: 128 };

/// Deterministic series: sines of different frequencies and phases plus a ramp.
fn check_series(shift: f32, device: &Device) -> Tensor<3> {
    let Shape { batch, length } = CHECK_SHAPE;
    let values: Vec<f32> = (0..batch * length)
        .map(|i| {
            let (b, t) = ((i / length) as f32, (i % length) as f32);
            (t * (0.05 + 0.03 * b) + shift + b).sin() + 0.01 * t - 0.6
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, 1, length]), device)
}

/// An independent copy of `model` on `device` (a plain clone would share running state, such as
/// the EMA codebook, with the original).
fn twin<M: Module>(model: &M, fresh: M, device: &Device) -> M {
    fresh.load_record(model.clone().into_record()).fork(device)
}

fn scalars<const N: usize>(tensors: [Tensor<1>; N]) -> Vec<f32> {
    tensors.into_iter().map(|t| t.into_scalar::<f32>()).collect()
}

/// Runs the agreement check of `device` against the CPU backend (see [`Agreement`]). Seeds the CPU
/// backend's global random generator (3, then 5): weights are drawn on the CPU and copied over.
/// The NC-VQVAE weights matter: in 2 of 40 seeds scanned, the max over the augmented view's latent
/// has a near-tie that float rounding resolves differently per backend, which moved about ten
/// input gradients by up to 1.7 % of the largest one (seen in CI when two tests drew from one
/// stream). Seed 5 has no such tie, so nothing may draw from the stream while this runs.
#[cfg(feature = "cpu")]
pub(crate) fn agreement(backend: &str, device: &Device) -> Result<Agreement, BenchError> {
    let cpu = Device::flex().autodiff();
    let other = device.clone().autodiff();
    let length = CHECK_SHAPE.length;

    // Baseline: three AdamW steps from the same weights.
    cpu.seed(3);
    let model = VqVaeConfig::new(length).init(&cpu)?;
    let c = Stage1Run::new("check");
    let steps = |mut model: vqvae::VqVae, device: &Device| -> Result<Vec<f32>, BenchError> {
        let mut optim = train::adamw(c.beta1, c.beta2, c.epsilon, c.weight_decay);
        let mut losses = Vec::new();
        for step in 0..3 {
            let l = model.losses(check_series(step as f32, device));
            losses.push(l.total.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(l.total.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        sync(device)?;
        Ok(losses)
    };
    let baseline_losses =
        steps(twin(&model, VqVaeConfig::new(length).init(&cpu)?, &other), &other)?;
    let baseline_losses_cpu = steps(model, &cpu)?;

    // NC-VQVAE: one step's losses and the gradient with respect to the augmented view.
    cpu.seed(5);
    let config =
        NcVqVaeConfig::new(VqVaeConfig::new(length), SslMethod::BarlowTwins).with_projector_dim(32);
    let model = config.init(&cpu)?;
    let on_other = twin(&model, config.init(&cpu)?, &other);
    let nc_step =
        |model: &vqvae::NcVqVae, device: &Device| -> Result<(Vec<f32>, Vec<f32>), BenchError> {
            let x_aug = check_series(0.3, device).require_grad();
            let l = model.losses(check_series(0.0, device), x_aug.clone());
            let values = scalars([
                l.total.clone(),
                l.ssl.clone(),
                l.recon_time.clone(),
                l.aug_recon_timefreq.clone(),
            ]);
            let grads = l.total.backward();
            let dx = x_aug
                .grad(&grads)
                .ok_or_else(|| BenchError::Device("the augmented view got no gradient".into()))?
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| BenchError::Device(format!("{e:?}")))?;
            Ok((values, dx))
        };
    let (nc_losses, dx) = nc_step(&on_other, &other)?;
    let (nc_losses_cpu, dx_cpu) = nc_step(&model, &cpu)?;

    let max_loss_difference = baseline_losses_cpu
        .iter()
        .zip(&baseline_losses)
        .chain(nc_losses_cpu.iter().zip(&nc_losses))
        .map(|(&c, &o)| {
            if c.is_finite() && o.is_finite() {
                ((c - o).abs() / c.abs().max(1.0)) as f64
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max);
    let gradient_scale = dx_cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = gradient_scale.max(f32::MIN_POSITIVE);
    let max_gradient_difference = dx_cpu
        .iter()
        .zip(&dx)
        .map(|(&c, &o)| if o.is_finite() { ((c - o).abs() / scale) as f64 } else { f64::INFINITY })
        .fold(if dx.len() == dx_cpu.len() { 0.0 } else { f64::INFINITY }, f64::max);
    Ok(Agreement {
        backend: backend.into(),
        agrees: max_loss_difference <= LOSS_TOLERANCE
            && max_gradient_difference <= GRADIENT_TOLERANCE,
        baseline_losses_cpu,
        baseline_losses,
        nc_losses_cpu,
        nc_losses,
        max_loss_difference,
        gradient_scale: gradient_scale as f64,
        max_gradient_difference,
    })
}
