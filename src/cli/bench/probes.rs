//! Timing probes (`#[ignore]`d tests): the training steps of `bench` with one of the `kernels`
//! crate's tuning switches on and off. Their figures are in docs/benchmarks.md.

use std::time::Instant;

use burn::tensor::Device;

use super::steps::{prior_trainer, stage1_trainer};
use super::timing::{BenchOptions, Case, Shape, median};

/// The NC-VQVAE stage-1 step at 128 × 500 and the baseline's at 128 × 500, 128 × 140 and
/// 32 × 140 with one of the convolutions' switches on and off, alternating step by step in
/// one process (a noisy machine then slows both alike), medians of 12 steps each (`PAIRS=n`
/// for n; `SWITCH_CASES=stage2_prior:32x140,…` for other training cases and shapes).
#[cfg(feature = "cpu")]
fn switch_in_the_training_steps(on_name: &str, off_name: &str, switch: fn(bool)) {
    let device = Device::flex();
    kernels::on_pool(|| {
        let cases = std::env::var("SWITCH_CASES").unwrap_or_else(|_| "stage1_nc_vqvae:128x500,stage1_baseline:128x500,stage1_baseline:128x140,stage1_baseline:32x140".into());
        for item in cases.split(',') {
            let (case, shape) = item.split_once(':').expect("SWITCH_CASES: CASE:BATCHxLENGTH,…");
            let case = <Case as clap::ValueEnum>::from_str(case, false)
                .ok()
                .filter(|&c| c != Case::Sampling)
                .expect("a training case");
            let shape: Shape = shape.parse().unwrap();
            let train = device.clone().autodiff();
            train.seed(1);
            let mut one_step = if case == Case::Stage2Prior {
                prior_trainer(shape, 1, &device, &train).unwrap()
            } else {
                stage1_trainer(
                    case == Case::Stage1NcVqvae,
                    shape,
                    BenchOptions::default().projector_dim,
                    &train,
                )
                .unwrap()
            };
            let mut step = |on: bool| {
                switch(on);
                let start = Instant::now();
                kernels::spinning(&device, &mut one_step);
                start.elapsed().as_secs_f64() * 1e3
            };
            step(true);
            step(false);
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for _ in 0..std::env::var("PAIRS").ok().and_then(|v| v.parse().ok()).unwrap_or(12) {
                on.push(step(true));
                off.push(step(false));
            }
            switch(true);
            on.sort_by(f64::total_cmp);
            off.sort_by(f64::total_cmp);
            let (a, b) = (median(&on), median(&off));
            println!(
                "{} {}x{}: {on_name} {a:.1} ms, {off_name} {b:.1} ms ({:.3}x)",
                case.name(),
                shape.batch,
                shape.length,
                a / b
            );
        }
    });
}

/// [`switch_in_the_training_steps`] for the row bands: `RAYON_NUM_THREADS=2 cargo test
/// --release --bin nc-vqvae row_bands_in_the_training_steps -- --ignored --nocapture`
/// (docs/benchmarks.md).
#[cfg(feature = "cpu")]
#[test]
#[ignore]
fn row_bands_in_the_training_steps() {
    switch_in_the_training_steps("row bands", "whole matrix", kernels::tuning::set_conv_row_bands);
}

/// [`switch_in_the_training_steps`] for the residual blocks' Winograd F(4, 3) against their
/// im2col GEMMs: `RAYON_NUM_THREADS=2 cargo test --release --bin nc-vqvae
/// winograd_in_the_training_steps -- --ignored --nocapture` (docs/benchmarks.md).
#[cfg(feature = "cpu")]
#[test]
#[ignore]
fn winograd_in_the_training_steps() {
    switch_in_the_training_steps("winograd", "im2col", kernels::tuning::set_conv_winograd);
}

/// [`switch_in_the_training_steps`] for the pool's idle workers spinning during a step
/// against asleep: `RAYON_NUM_THREADS=2 cargo test --release --bin nc-vqvae
/// pool_spin_in_the_training_steps -- --ignored --nocapture` (docs/benchmarks.md).
#[cfg(feature = "cpu")]
#[test]
#[ignore]
fn pool_spin_in_the_training_steps() {
    kernels::tuning::set_pool_spin(false);
    switch_in_the_training_steps("spinning", "asleep", kernels::tuning::set_pool_spin);
}
