//! The `wgpu` backend computes what the CPU backend computes. Runs only with `--features wgpu`;
//! CI runs it on Mesa's software Vulkan driver (lavapipe, Debian `mesa-vulkan-drivers`):
//!
//! ```text
//! cargo test --features wgpu --test wgpu
//! ```
//!
//! Tiny shapes, the same initial weights and inputs on both backends: three AdamW steps of the
//! stage-1 baseline (losses agree within a float tolerance), and one NC-VQVAE (Barlow Twins) step
//! (losses and the gradient with respect to the augmented view agree).
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use nc_vqvae::backend::Backend;
use nc_vqvae::ssl_losses::SslMethod;
use nc_vqvae::vqvae::{NcVqVaeConfig, VqVaeConfig};

const B: usize = 4;
const L: usize = 128;

/// Deterministic series: sines of different frequencies and phases plus a ramp.
fn series(shift: f32) -> Vec<f32> {
    (0..B * L)
        .map(|i| {
            let (b, t) = ((i / L) as f32, (i % L) as f32);
            (t * (0.05 + 0.03 * b) + shift + b).sin() + 0.01 * t - 0.6
        })
        .collect()
}

fn input(values: Vec<f32>, device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values, [B, 1, L]), device)
}

fn adamw() -> burn::optim::ModuleOptimizer {
    AdamWConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(1e-8).with_weight_decay(1e-3).init()
}

fn close(cpu: &[f32], gpu: &[f32], what: &str) {
    assert_eq!(cpu.len(), gpu.len());
    eprintln!("{what}: cpu {cpu:?}, wgpu {gpu:?}");
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        assert!(c.is_finite() && g.is_finite(), "{what} step {i}: cpu {c}, wgpu {g}");
        let tol = 2e-3 * c.abs().max(1.0);
        assert!((c - g).abs() <= tol, "{what} step {i}: cpu {c} vs wgpu {g} (all: {cpu:?} vs {gpu:?})");
    }
}

/// An independent copy of `model` on `device`: the same weights and buffers, but its own running
/// state (a plain clone shares the EMA codebook and BatchNorm statistics with the original, so the
/// two runs would update each other's buffers).
fn twin<M: Module>(model: &M, fresh: M, device: &Device) -> M {
    fresh.load_record(model.clone().into_record()).fork(device)
}

/// The CPU backend's random generator is global: tests that seed it and draw initial weights take
/// this lock, so that a test running alongside cannot draw from the same stream and change the
/// weights. Fixed weights matter for the NC-VQVAE test: in 2 of 40 seeds scanned, the max over the
/// augmented view's latent has a near-tie that float rounding resolves differently per backend,
/// which moved about ten input gradients by up to 1.7 % of the largest one (seen in CI when the
/// two tests drew from one stream). Seed 5 has no such tie.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn wgpu() -> Device {
    Backend::Wgpu.device().expect("built with --features wgpu").autodiff()
}

#[test]
fn baseline_stage1_steps_agree_with_the_cpu() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = Device::flex().autodiff();
    cpu.seed(3);
    let model = VqVaeConfig::new(L).init(&cpu).unwrap();
    let gpu = wgpu();
    let run = |mut model: nc_vqvae::vqvae::VqVae, device: &Device| {
        let mut optim = adamw();
        let mut losses = Vec::new();
        for step in 0..3 {
            let l = model.losses(input(series(step as f32), device));
            losses.push(l.total.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(l.total.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        losses
    };
    let on_gpu = run(twin(&model, VqVaeConfig::new(L).init(&cpu).unwrap(), &gpu), &gpu);
    let on_cpu = run(model, &cpu);
    close(&on_cpu, &on_gpu, "baseline loss");
    assert!(on_cpu[2] < on_cpu[0], "the loss falls: {on_cpu:?}");
}

#[test]
fn nc_vqvae_barlow_twins_losses_and_gradients_agree_with_the_cpu() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = Device::flex().autodiff();
    cpu.seed(5);
    let config = NcVqVaeConfig::new(VqVaeConfig::new(L), SslMethod::BarlowTwins).with_projector_dim(32);
    let model = config.init(&cpu).unwrap();
    let gpu = wgpu();
    let on_gpu = twin(&model, config.init(&cpu).unwrap(), &gpu);
    // Per backend: the losses, and the gradient of the total loss with respect to the augmented
    // view. Training trajectories are not compared: the SSL branch max-pools the quantised latent,
    // whose positions share codewords, so the max has exact ties and each backend may route the
    // gradient to a different (equally valid) position; the augmented view's branch is continuous.
    let run = |model: &nc_vqvae::vqvae::NcVqVae, device: &Device| {
        let x_aug = input(series(0.3), device).require_grad();
        let l = model.losses(input(series(0.0), device), x_aug.clone());
        let values = [l.total.clone(), l.ssl.clone(), l.recon_time.clone(), l.aug_recon_timefreq.clone()].map(|t| t.into_scalar::<f32>());
        let grads = l.total.backward();
        let dx: Vec<f32> = x_aug.grad(&grads).expect("the augmented view gets a gradient").into_data().try_into_vec::<f32>().unwrap();
        (values, dx)
    };
    let (gpu_values, gpu_dx) = run(&on_gpu, &gpu);
    let (cpu_values, cpu_dx) = run(&model, &cpu);
    close(&cpu_values, &gpu_values, "NC-VQVAE losses (total, ssl, recon, aug recon)");
    let scale = cpu_dx.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "a real gradient: {scale}");
    let worst = cpu_dx.iter().zip(&gpu_dx).fold(0f32, |m, (c, g)| m.max((c - g).abs()));
    eprintln!("gradient wrt the augmented view: largest difference {worst} of {scale}");
    assert!(worst <= 1e-3 * scale, "gradient wrt the augmented view: largest difference {worst} of {scale}");
}

/// `nc-vqvae --backend wgpu bench --check` (what scripts/gpu-check.sh reads) reports agreement.
#[test]
fn the_bench_agreement_check_passes_on_wgpu() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let a = nc_vqvae::bench::agreement("wgpu", &Backend::Wgpu.device().expect("built with --features wgpu")).unwrap();
    eprintln!("{a:?}");
    assert!(a.agrees, "{a:?}");
    assert!(a.max_loss_difference > 0.0 || a.max_gradient_difference > 0.0, "two backends with bit-equal numbers is implausible: {a:?}");
}
