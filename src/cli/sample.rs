//! `nc-vqvae sample`: series drawn from a run's prior, written as UCR TSV (and a plot).

use std::path::PathBuf;

use super::{Ctx, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct SampleArgs {
    /// A run folder with a finished stage 1 and stage 2.
    #[arg(long, value_name = "DIR")]
    pub(crate) run: PathBuf,
    /// Number of series to draw.
    #[arg(long)]
    pub(crate) n: usize,
    /// Class label as written in the dataset files; omitted: unconditional (label -1 in the output).
    #[arg(long, value_name = "C", allow_hyphen_values = true, conflicts_with = "per_class")]
    pub(crate) class: Option<i64>,
    /// Draw N series for every class of the dataset (labelled with their class).
    #[arg(long)]
    pub(crate) per_class: bool,
    /// Also draw a PNG: real test series next to generated ones, one row per class.
    #[arg(long, value_name = "FILE.png")]
    pub(crate) plot: Option<PathBuf>,
    /// Classifier-free guidance weight (1: the plain conditional prior, as the reference).
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub(crate) guidance: f64,
    /// Seed of the decoding.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Output file (UCR TSV: label then values, in the data's original scale).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
}

/// Runs `sample`.
pub(crate) fn run(args: SampleArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    if args.n == 0 {
        return Err(Failure::Input(anyhow::anyhow!("--n must be at least 1")));
    }
    nc_vqvae::pipeline::check_guidance("--guidance", args.guidance)
        .map_err(|m| Failure::Input(anyhow::anyhow!(m)))?;
    let device = ctx.backend.device()?;
    let generator = nc_vqvae::stage2::Generator::load(&args.run, &device)?;
    let groups: Vec<(i64, Option<usize>)> = if args.per_class {
        generator.data.classes.iter().enumerate().map(|(i, &label)| (label, Some(i))).collect()
    } else if let Some(label) = args.class {
        let index = generator.class_index(label).ok_or_else(|| {
            Failure::Input(anyhow::anyhow!(
                "--class {label}: {} has the labels {:?}",
                generator.data.name,
                generator.data.classes
            ))
        })?;
        vec![(label, Some(index))]
    } else {
        vec![(-1, None)]
    };
    let labels: Vec<i64> =
        groups.iter().flat_map(|&(label, _)| std::iter::repeat_n(label, args.n)).collect();
    let classes: Option<Vec<usize>> = groups
        .iter()
        .map(|&(_, c)| c.map(|c| std::iter::repeat_n(c, args.n)))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect());
    let sampler = nc_vqvae::maskgit::SamplerConfig::new().with_guidance(args.guidance);
    let series =
        generator.generate(labels.len(), classes.as_deref(), &sampler, args.seed, true, &device)?;
    nc_vqvae::stage2::write_tsv(&args.out, &labels, &series)?;
    if let Some(plot) = &args.plot {
        let title = format!("{}: real test series vs generated", generator.data.name);
        generator
            .plot_comparison(plot, &title, &groups, &labels, &series, 10)
            .map_err(|e| Failure::Internal(e.into()))?;
    }
    println!(
        "{} series of length {} -> {}",
        series.len(),
        series.first().map_or(0, Vec::len),
        args.out.display()
    );
    Ok(())
}
