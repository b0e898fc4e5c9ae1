//! `nc-vqvae stage2`: the prior trained on a finished stage-1 run.

use std::path::PathBuf;

use nc_vqvae::config::layer;

use super::{Ctx, Failure, choice, explicit_flags, report};

#[derive(Debug, clap::Args)]
pub(crate) struct Stage2Args {
    /// A finished stage-1 run folder; stage 2 writes DIR/stage2/ and DIR/stage2.json.
    #[arg(long, value_name = "DIR")]
    pub(crate) run: PathBuf,
    /// Training epochs (thesis: 1000).
    #[arg(long, default_value_t = 1000)]
    pub(crate) epochs: usize,
    /// Batch size (thesis: 256).
    #[arg(long, default_value_t = 256)]
    pub(crate) batch_size: usize,
    /// Seed for the prior's initialisation, shuffling, token draws, masks and class dropout.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Prior variant: auto (the thesis' pairing: token for the baseline, embedding for NC-VQVAE), token or embedding.
    #[arg(long, default_value = "auto", value_parser = choice::<nc_vqvae::stage2::PriorChoice>(nc_vqvae::stage2::PriorChoice::ALL.map(nc_vqvae::stage2::PriorChoice::name)))]
    pub(crate) prior: nc_vqvae::stage2::PriorChoice,
    /// Reproduce the reference's quirks: inverted masking for the token prior (Q5) and loss on all positions (Q6).
    #[arg(long)]
    pub(crate) faithful: bool,
    /// Tokens are the nearest codewords instead of draws from softmax(-distance) (quirk Q8).
    #[arg(long)]
    pub(crate) argmin_tokens: bool,
    /// Test-token loss every N epochs (0: at the end only).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) eval_every: usize,
    /// Write a checkpoint every N epochs (and at the end).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub(crate) checkpoint_every: usize,
    /// Continue the stage-2 run in DIR/stage2 from its last checkpoint.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Print stage2.json on stdout when done.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `stage2`.
pub(crate) fn run(args: Stage2Args, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let m = ctx.matches.subcommand_matches("stage2");
    let mut config =
        layer(&nc_vqvae::stage2::Stage2Config::default(), "stage2", ctx.config_file, ctx.sets)?;
    explicit_flags!(m, config, args: epochs, batch_size, seed, prior, eval_every, checkpoint_every);
    if args.argmin_tokens {
        config.stochastic_tokens = false;
    }
    if args.faithful {
        config.inverted_masking = true;
        config.loss_on_all_positions = true;
    }
    let device = ctx.backend.device()?;
    let options = nc_vqvae::stage2::Stage2Options { resume: args.resume, progress: true };
    let summary = nc_vqvae::stage2::train(&config, &args.run, &device, &options)?;
    report(args.json, &summary, |s| {
        format!(
            "prior ({}, {} tokens): test masked-token loss {:.4} nats (uniform: {:.4}), all positions {:.4}, {} epochs in {:.0}s -> {}",
            s.variant,
            s.n_tokens,
            s.loss,
            s.uniform_loss,
            s.loss_all_positions,
            s.epochs,
            s.wall_seconds,
            args.run.join("stage2.json").display()
        )
    })?;
    Ok(())
}
