//! The report of `nc-vqvae run`: `report.md` and the PNG plots in `plots/` that compare the
//! baseline VQ-VAE with NC-VQVAE on one dataset.
//!
//! Plots (all with labelled axes and legends):
//! - `curves.png`: stage-1 training losses per epoch (reconstruction, and the SSL loss), the probe
//!   accuracies where they were computed during training, and the stage-2 prior's loss;
//! - `reconstructions.png`: test series (one per class) with both models' reconstructions;
//! - `samples_baseline.png`, `samples_nc_vqvae.png`: real test vs generated series per class;
//! - `token_grids.png`: test series (one per class) above their token grids under both tokenizers
//!   (time on x, frequency bands on y, one colour per code);
//! - `token_usage.png`: how often each codebook entry is used on the test set, by rank;
//! - `scores.png`: probe accuracies, CAS, FID and IS of both models side by side.

mod markdown;
mod plots;

use std::path::Path;

use burn::tensor::Device;

pub use plots::metric_curve;

use crate::RunError;
use crate::pipeline::{JobConfig, JobSummary, ModelResult};
use crate::plot::{curve_grid, token_grids};
use crate::stage1::SslChoice;
use crate::stage2::Generator;
use train::run_dir::write_atomic;

fn plot_err(e: crate::PlotError) -> RunError {
    RunError::Plot(e)
}

fn model_name(config: &JobConfig) -> String {
    let ssl = match config.run.ssl {
        SslChoice::BarlowTwins => "Barlow Twins",
        SslChoice::Vibcreg => "VIbCReg",
        SslChoice::None => "none",
    };
    format!("NC-VQVAE ({ssl} + {})", config.run.aug)
}

/// `nc-vqvae run`: runs (or finishes) the job of `config` in `out` ([`crate::pipeline::run_job`]),
/// then draws the plots and writes `report.md`.
pub fn job(
    config: &JobConfig,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<(JobSummary, ModelResult, ModelResult), RunError> {
    let (summary, base, nc) = crate::pipeline::run_job(config, out, device, progress)?;
    crate::pipeline::step(progress, "report and plots");
    write(out, config, &base, &nc, device)?;
    Ok((summary, base, nc))
}

/// Draws the plots and writes `report.md` for a finished job in `out`.
pub fn write(
    out: &Path,
    config: &JobConfig,
    base: &ModelResult,
    nc: &ModelResult,
    device: &Device,
) -> Result<(), RunError> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(train::run_dir::RunDirError::io(&plots))?;
    let (base_dir, nc_dir) = (out.join("baseline"), out.join("nc_vqvae"));
    let nc_name = model_name(config);
    let dataset = &base.stage1.dataset;

    plots::curves(&plots, dataset, &nc_name, &base_dir, &nc_dir)?;

    // Each run's tokenizer, prior and dataset, loaded once for the remaining plots.
    let (base_run, nc_run) =
        (Generator::load(&base_dir, device)?, Generator::load(&nc_dir, device)?);

    curve_grid(
        &plots.join("reconstructions.png"),
        &format!("{dataset}: test series and their reconstructions"),
        2,
        &plots::reconstruction_panels(&base_run, &nc_run, 6, device)?,
    )
    .map_err(plot_err)?;

    token_grids(
        &plots.join("token_grids.png"),
        &format!("{dataset}: test series and their tokens (one colour per code)"),
        2,
        &plots::token_panels(&base_run, &nc_run, &nc_name, 4, device)?,
    )
    .map_err(plot_err)?;

    let seed = config.stage2.seed;
    plots::sample_plot(
        &base_run,
        &plots.join("samples_baseline.png"),
        &format!("{dataset}, baseline: real test (blue) vs generated (orange)"),
        config.run.plot_samples,
        config.run.guidance,
        seed,
        device,
    )?;
    plots::sample_plot(
        &nc_run,
        &plots.join("samples_nc_vqvae.png"),
        &format!("{dataset}, {nc_name}: real test (blue) vs generated (orange)"),
        config.run.plot_samples,
        config.run.guidance,
        seed,
        device,
    )?;

    plots::usage(&plots, dataset, &nc_name, (base, nc), (&base_run, &nc_run), device)?;
    plots::scores(&plots, dataset, &nc_name, base, nc)?;

    let text = markdown::markdown(config, base, nc, &nc_name);
    write_atomic(&out.join("report.md"), text.as_bytes())?;
    Ok(())
}
