//! `nc-vqvae encode`: tokens and probe features of a file of series.

use std::path::PathBuf;

use super::{Ctx, Failure, report};

#[derive(Debug, clap::Args)]
pub(crate) struct EncodeArgs {
    /// A finished stage-1 run folder (its model.bpk and config.toml).
    #[arg(long, value_name = "DIR")]
    pub(crate) run: PathBuf,
    /// The series: a .npy 2-D float array (rows = series), or text (UCR TSV, CSV) with or without a label column.
    pub(crate) input: PathBuf,
    /// Output prefix: writes PREFIX.tokens.npy, PREFIX.features.npy, PREFIX.tokens.csv and PREFIX.features.csv.
    #[arg(long, value_name = "PREFIX")]
    pub(crate) out: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `encode`.
pub(crate) fn run(args: EncodeArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let device = ctx.backend.device()?;
    let summary = nc_vqvae::encode::encode(&args.run, &args.input, &args.out, &device)?;
    report(args.json, &summary, |s| {
        let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
        format!(
            "{} series of length {}: tokens {:?}, features {:?} -> {}",
            s.n,
            s.length,
            s.tokens_shape,
            s.features_shape,
            files.join(", ")
        )
    })?;
    Ok(())
}
