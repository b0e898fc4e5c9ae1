//! `nc-vqvae fcn train`: the FCN classifier behind FID, IS and CAS.

use std::path::PathBuf;

use clap::Subcommand;
use nc_vqvae::config::layer;

use super::{Ctx, Failure, explicit_flags, report};

#[derive(Debug, Subcommand)]
pub(crate) enum FcnCommand {
    /// Train the FCN on a dataset (reference recipe): weights at FILE, FILE.json, FILE.metrics.jsonl.
    Train(FcnTrainArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct FcnTrainArgs {
    /// A UCR name or a path to a *_TRAIN.tsv[.gz] file.
    pub(crate) dataset: String,
    /// Output weights file.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Training epochs (reference: 1000).
    #[arg(long, default_value_t = 1000)]
    pub(crate) epochs: usize,
    /// Batch size (reference: 256).
    #[arg(long, default_value_t = 256)]
    pub(crate) batch_size: usize,
    /// Seed of the initialisation and shuffling.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Test accuracy every N epochs in FILE.metrics.jsonl (0: at the end only).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub(crate) eval_every: usize,
    /// Checkpoint every N epochs in FILE.run/; running the same command again continues from the last one.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) checkpoint_every: usize,
    /// A directory holding <Name>/<Name>_TRAIN.tsv[.gz] and <Name>/<Name>_TEST.tsv[.gz].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print FILE.json on stdout when done.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `fcn train`.
pub(crate) fn run(command: FcnCommand, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let FcnCommand::Train(args) = command;
    let m = ctx.matches.subcommand_matches("fcn").and_then(|m| m.subcommand_matches("train"));
    let mut config = layer(
        &nc_vqvae::fcn::FcnTrainConfig::new(&args.dataset),
        "fcn",
        ctx.config_file,
        ctx.sets,
    )?;
    config.dataset = args.dataset;
    if args.data_dir.is_some() {
        config.data_dir = args.data_dir;
    }
    explicit_flags!(m, config, args: epochs, batch_size, seed, eval_every, checkpoint_every);
    let device = ctx.backend.device()?;
    let summary = nc_vqvae::fcn::train(&config, &args.out, &device, true)?;
    report(args.json, &summary, |s| {
        format!(
            "FCN on {}: test accuracy {:.4} after {} epochs in {:.0}s -> {}",
            s.dataset,
            s.test_acc,
            s.epochs,
            s.wall_seconds,
            args.out.display()
        )
    })?;
    Ok(())
}
