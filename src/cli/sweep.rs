//! `nc-vqvae sweep`: grids of runs expanded, run point by point, collected into tables.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Ctx, Failure, report};

#[derive(Debug, Subcommand)]
pub(crate) enum SweepCommand {
    /// Write one folder per grid point of SPEC (datasets × configs × seeds) into DIR; prints the count.
    Expand {
        /// The sweep spec: a [grid] table plus [run] / [stage1] / [stage2] / [fcn] settings.
        spec: PathBuf,
        /// Sweep folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run point I (a finished point is skipped, an interrupted one resumes).
    Run {
        /// Sweep folder written by `sweep expand`.
        dir: PathBuf,
        /// Point index (e.g. $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        index: usize,
        /// Print the point's results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the thesis-style tables of the finished points; writes DIR/points.csv and DIR/tables.csv.
    /// On a folder of sweeps (the thesis campaign, results/thesis-cpu): ours next to the thesis'
    /// per-seed results with a verdict per claim; writes DIR/tables.md.
    Collect {
        /// Sweep folder, or a folder of sweep folders.
        dir: PathBuf,
    },
}

/// Runs a `sweep` subcommand.
pub(crate) fn run(command: SweepCommand, ctx: &Ctx<'_>) -> Result<(), Failure> {
    match command {
        SweepCommand::Expand { spec, out } => {
            let n = nc_vqvae::sweep::expand(&spec, &out)?;
            println!(
                "{n} points in {} (indices 0..{}; Slurm: --array=0-{})",
                out.display(),
                n - 1,
                n - 1
            );
        }
        SweepCommand::Run { dir, index, json } => {
            let device = ctx.backend.device()?;
            let r = nc_vqvae::sweep::run(&dir, index, true, &device)?;
            let flat = r.flat();
            report(json, &flat, |_| {
                format!(
                    "point {index}: {} {:?}/{:?} seed {}: SVM {:.3} KNN {:.3} recon {:.4}, prior loss {:.3}, FID {:.3} IS {:.3} CAS {:.3}",
                    r.stage1.dataset,
                    r.stage1.ssl,
                    r.stage1.aug,
                    r.stage1.seed,
                    r.stage1.probe_svm_acc,
                    r.stage1.probe_knn_acc,
                    r.stage1.recon_mse_time,
                    r.stage2.loss,
                    r.eval.fid,
                    r.eval.is_mean,
                    r.eval.cas_final_acc
                )
            })?;
        }
        SweepCommand::Collect { dir }
            if !dir.join("sweep.toml").exists() && !nc_vqvae::campaign::blocks(&dir).is_empty() =>
        {
            let c = nc_vqvae::campaign::collect(&dir)?;
            print!("{}", c.markdown);
            nc_vqvae::train::run_dir::write_atomic(&dir.join("tables.md"), c.markdown.as_bytes())
                .map_err(|e| Failure::Internal(e.into()))?;
            eprintln!(
                "{} of {} campaign points finished -> {}",
                c.finished,
                c.total,
                dir.join("tables.md").display()
            );
        }
        SweepCommand::Collect { dir } => {
            let c = nc_vqvae::sweep::collect(&dir)?;
            print!("{}", c.markdown);
            eprintln!(
                "{} of {} points finished -> {}, {}",
                c.finished,
                c.total,
                dir.join("points.csv").display(),
                dir.join("tables.csv").display()
            );
        }
    };
    Ok(())
}
