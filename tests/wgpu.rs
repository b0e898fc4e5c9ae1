//! The `wgpu` backend computes what the CPU backend computes. Runs only with `--features wgpu`;
//! CI runs it on Mesa's software Vulkan driver (lavapipe, Debian `mesa-vulkan-drivers`):
//!
//! ```text
//! cargo test --features wgpu --test wgpu
//! ```
//!
//! Through [`nc_vqvae::bench::agreement`], the check `nc-vqvae bench --check` and
//! scripts/gpu-check.sh run on real GPUs: tiny shapes, the same initial weights and inputs on both
//! backends; three AdamW steps of the stage-1 baseline (losses agree within a float tolerance), and
//! one NC-VQVAE (Barlow Twins) step (losses and the gradient with respect to the augmented view
//! agree).
#![cfg(feature = "wgpu")]

use nc_vqvae::backend::Backend;

fn close(cpu: &[f32], gpu: &[f32], what: &str) {
    assert_eq!(cpu.len(), gpu.len());
    eprintln!("{what}: cpu {cpu:?}, wgpu {gpu:?}");
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        assert!(c.is_finite() && g.is_finite(), "{what} step {i}: cpu {c}, wgpu {g}");
        let tol = 2e-3 * c.abs().max(1.0);
        assert!(
            (c - g).abs() <= tol,
            "{what} step {i}: cpu {c} vs wgpu {g} (all: {cpu:?} vs {gpu:?})"
        );
    }
}

/// One test (one call of the check) in this process: the check seeds the CPU backend's global random
/// generator, and a test drawing from it alongside could change the initial weights (see
/// [`nc_vqvae::bench::agreement`] on why the NC-VQVAE weights must be the seed-5 ones).
#[test]
fn stage1_steps_agree_with_the_cpu() {
    let a = nc_vqvae::bench::agreement(
        "wgpu",
        &Backend::Wgpu.device().expect("built with --features wgpu"),
    )
    .unwrap();
    close(&a.baseline_losses_cpu, &a.baseline_losses, "baseline loss");
    assert!(
        a.baseline_losses_cpu[2] < a.baseline_losses_cpu[0],
        "the loss falls: {:?}",
        a.baseline_losses_cpu
    );
    close(&a.nc_losses_cpu, &a.nc_losses, "NC-VQVAE losses (total, ssl, recon, aug recon)");
    assert!(a.gradient_scale > 1e-3, "a real gradient: {}", a.gradient_scale);
    eprintln!(
        "gradient wrt the augmented view: largest difference {} of the largest entry {}",
        a.max_gradient_difference, a.gradient_scale
    );
    assert!(
        a.max_gradient_difference <= 1e-3,
        "gradient wrt the augmented view: largest difference {} of the largest entry",
        a.max_gradient_difference
    );
    assert!(a.agrees, "{a:?}");
    assert!(
        a.max_loss_difference > 0.0 || a.max_gradient_difference > 0.0,
        "two backends with bit-equal numbers is implausible: {a:?}"
    );
}
