//! The `wgpu` backend computes what the CPU backend computes. Runs only with `--features wgpu`;
//! CI runs it on Mesa's software Vulkan driver (lavapipe, Debian `mesa-vulkan-drivers`):
//!
//! ```text
//! cargo test --features wgpu --test wgpu
//! ```
//!
//! Through `nc-vqvae --backend wgpu bench --check` (what scripts/gpu-check.sh runs on real GPUs):
//! tiny shapes, the same initial weights and inputs on both backends; three AdamW steps of the
//! stage-1 baseline (losses agree within a float tolerance), and one NC-VQVAE (Barlow Twins) step
//! (losses and the gradient with respect to the augmented view agree).
#![cfg(feature = "wgpu")]

use serde_json::Value;

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

/// The numbers of `bench --check` on the wgpu backend: the report's `agreement` object.
fn agreement() -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nc-vqvae"))
        .args(["--backend", "wgpu", "--progress", "none", "bench", "--check", "--json"])
        .args(["--cases", "stage1_baseline", "--shapes", "2x64", "--warmup", "0", "--steps", "1"])
        .output()
        .expect("the nc-vqvae binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bench --json printed no report ({e}); stderr: {stderr}"));
    report["agreement"].clone()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

#[test]
fn stage1_steps_agree_with_the_cpu() {
    let a = agreement();
    let f = |key: &str| a[key].as_f64().unwrap_or_else(|| panic!("agreement.{key}: {a}"));
    let (baseline_cpu, nc_cpu) = (floats(&a["baseline_losses_cpu"]), floats(&a["nc_losses_cpu"]));
    close(&baseline_cpu, &floats(&a["baseline_losses"]), "baseline loss");
    assert!(baseline_cpu[2] < baseline_cpu[0], "the loss falls: {baseline_cpu:?}");
    close(&nc_cpu, &floats(&a["nc_losses"]), "NC-VQVAE losses (total, ssl, recon, aug recon)");
    let (scale, gradient) = (f("gradient_scale"), f("max_gradient_difference"));
    assert!(scale > 1e-3, "a real gradient: {scale}");
    eprintln!(
        "gradient wrt the augmented view: largest difference {gradient} of the largest entry {scale}"
    );
    assert!(
        gradient <= 1e-3,
        "gradient wrt the augmented view: largest difference {gradient} of the largest entry"
    );
    assert_eq!(a["agrees"], Value::Bool(true), "{a}");
    assert!(
        f("max_loss_difference") > 0.0 || gradient > 0.0,
        "two backends with bit-equal numbers is implausible: {a}"
    );
}
