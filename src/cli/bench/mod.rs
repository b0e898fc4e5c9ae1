//! `nc-vqvae bench`: training and sampling steps timed on the chosen backend.

mod agreement;
#[cfg(all(test, feature = "cpu"))]
mod probes;
mod steps;
mod timing;

use super::backend::Backend;
use super::{Ctx, Failure, alloc, print_json};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Cases to time (comma-separated). Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) cases: Vec<timing::Case>,
    /// Shapes BATCHxLENGTH (comma-separated). Default: the reference's 32x140,128x140,32x500,128x500.
    #[arg(long, value_delimiter = ',')]
    pub(crate) shapes: Vec<timing::Shape>,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub(crate) warmup: usize,
    /// Timed steps per case and shape (the median is reported; the reference's figures are medians of 6).
    #[arg(long, default_value_t = 6)]
    pub(crate) steps: usize,
    /// Width of the Barlow Twins projector (thesis: 4096).
    #[arg(long, default_value_t = 4096)]
    pub(crate) projector_dim: usize,
    /// Print the report as one JSON object (the format of bench/pytorch_reference.py).
    #[arg(long)]
    pub(crate) json: bool,
    /// First check that the backend computes what the CPU computes (tiny stage-1 steps from the
    /// same weights); the result goes into the report (`agreement`), and a disagreement fails the
    /// command (exit 1) after the report is printed.
    #[arg(long)]
    pub(crate) check: bool,
}

/// Runs `bench`.
pub(crate) fn run(args: BenchArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    use timing::{BenchOptions, Case, THESIS_SHAPES};
    let options = BenchOptions {
        cases: if args.cases.is_empty() { Case::ALL.to_vec() } else { args.cases },
        shapes: if args.shapes.is_empty() { THESIS_SHAPES.to_vec() } else { args.shapes },
        warmup: args.warmup,
        steps: args.steps,
        projector_dim: args.projector_dim,
        release_memory: Some(|| {
            crate::ALLOCATOR.release();
            alloc::trim_system_allocator();
        }),
        ..BenchOptions::default()
    };
    let device = ctx.backend.device()?;
    let failure = |e: timing::BenchError| match e {
        timing::BenchError::Config(_) | timing::BenchError::Model(_) => Failure::Input(e.into()),
        _ => Failure::Internal(e.into()),
    };
    let agreement =
        if args.check { Some(check_backend(ctx.backend, &device).map_err(failure)?) } else { None };
    let mut report = timing::run(&options, ctx.backend.name(), &device, |t| {
        eprintln!("{:<16} {:>4} x {:<5} median {:>9.1} ms", t.case, t.batch, t.length, t.median_ms);
    })
    .map_err(failure)?;
    report.agreement = agreement;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", table(&report));
    }
    if let Some(a) = report.agreement.as_ref().filter(|a| !a.agrees) {
        return Err(Failure::Internal(anyhow::anyhow!(
            "the {} backend disagrees with the CPU: largest loss difference {:.2e} (tolerance {:.0e}), gradient difference {:.2e} (tolerance {:.0e})",
            a.backend,
            a.max_loss_difference,
            agreement::LOSS_TOLERANCE,
            a.max_gradient_difference,
            agreement::GRADIENT_TOLERANCE
        )));
    }
    Ok(())
}

/// `bench --check`: the agreement of `device` with the CPU backend, printed as one line on stderr.
fn check_backend(
    backend: Backend,
    device: &burn::tensor::Device,
) -> Result<timing::Agreement, timing::BenchError> {
    #[cfg(feature = "cpu")]
    {
        let a = agreement::agreement(backend.name(), device)?;
        eprintln!(
            "check: {} vs cpu: largest loss difference {:.2e}, gradient difference {:.2e}: {}",
            a.backend,
            a.max_loss_difference,
            a.max_gradient_difference,
            if a.agrees { "agrees" } else { "DISAGREES" }
        );
        Ok(a)
    }
    #[cfg(not(feature = "cpu"))]
    {
        let _ = (backend, device);
        Err(timing::BenchError::Config(
            "--check compares with the CPU backend: build with the `cpu` feature".into(),
        ))
    }
}

/// The report as a markdown table.
pub(super) fn table(report: &timing::BenchReport) -> String {
    let mut out = format!(
        "{} on {} ({} threads)\n\n| case | batch × length | median ms | min ms | max ms | steps | CPU / wall | of it spinning | peak RSS MiB | GEMM GFLOP / step | GEMM thread-ms / step |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        report.implementation, report.backend, report.threads
    );
    for t in &report.results {
        let or_dash =
            |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        out += &format!(
            "| {} | {} × {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
            t.case,
            t.batch,
            t.length,
            t.median_ms,
            t.min_ms,
            t.max_ms,
            t.steps,
            or_dash(t.cpu_utilisation, 2),
            or_dash(t.spin_utilisation, 2),
            or_dash(t.peak_rss_mib, 0),
            or_dash(t.gemm_gflop_per_step, 2),
            or_dash(t.gemm_thread_ms_per_step, 1)
        );
    }
    out
}
