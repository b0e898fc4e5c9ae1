//! `nc-vqvae bench`: median wall time of one training or sampling step at given shapes on the
//! selected backend, for comparison with the PyTorch reference (`bench/pytorch_reference.py`
//! prints the same JSON; `bench/compare.sh` runs both).
//!
//! Cases (all on random inputs, standard normal series and uniform tokens; the data pipeline and
//! augmentation are outside the timed step, as in the reference where data loader workers do them):
//! - `stage1_baseline`: VQ-VAE losses, backward and the AdamW update (docs/reference.md §6, §8.1).
//! - `stage1_nc_vqvae`: the same plus the Barlow Twins branch on a second view, projector width
//!   4096 by default (34 M parameters at the thesis setting).
//! - `stage2_prior`: one MaskGIT prior step (variant A, masked positions, AdamW) on the `5 · W'`
//!   tokens of a series of the given length.
//! - `sampling`: iterative decoding of `batch` class-conditional token grids (10 steps) and their
//!   decoding to series; the time is per batch.
//!
//! Every step ends with a device sync, so GPU timings are complete.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use maskgit::{MaskGitConfig, SamplerConfig, TrunkConfig, Variant, int_tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use vqvae::VqVaeConfig;

use nc_vqvae::stage2::latent_width;

use super::steps::{prior_trainer, stage1_trainer};

pub(crate) use super::agreement::Agreement;

/// What one benchmark case times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub(crate) enum Case {
    /// Stage-1 step of the plain VQ-VAE, AdamW included.
    Stage1Baseline,
    /// Stage-1 step of NC-VQVAE with Barlow Twins, AdamW included.
    Stage1NcVqvae,
    /// Stage-2 prior step, AdamW included.
    Stage2Prior,
    /// Class-conditional sampling of one batch (10 decoding steps + the stage-1 decoder).
    Sampling,
}

impl Case {
    /// All cases, in report order.
    pub(crate) const ALL: [Case; 4] =
        [Case::Stage1Baseline, Case::Stage1NcVqvae, Case::Stage2Prior, Case::Sampling];

    /// The name used in JSON and tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::Stage1Baseline => "stage1_baseline",
            Case::Stage1NcVqvae => "stage1_nc_vqvae",
            Case::Stage2Prior => "stage2_prior",
            Case::Sampling => "sampling",
        }
    }
}

/// A batch × length shape, written `BxL` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Shape {
    /// Batch size.
    pub(crate) batch: usize,
    /// Series length.
    pub(crate) length: usize,
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a shape; write BATCHxLENGTH, e.g. 128x140");
        let (b, l) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let batch: usize = b.trim().parse().map_err(|_| bad())?;
        let length: usize = l.trim().parse().map_err(|_| bad())?;
        if batch == 0 || length == 0 {
            return Err(format!("'{s}': the batch and the length must be at least 1"));
        }
        Ok(Shape { batch, length })
    }
}

/// The shapes of docs/reference.md §12 (the reference's own timings): batch 32 and 128, lengths 140 and 500.
pub(crate) const THESIS_SHAPES: [Shape; 4] = [
    Shape { batch: 32, length: 140 },
    Shape { batch: 128, length: 140 },
    Shape { batch: 32, length: 500 },
    Shape { batch: 128, length: 500 },
];

/// Settings of one benchmark invocation.
#[derive(Debug, Clone)]
pub(crate) struct BenchOptions {
    /// Cases to time.
    pub(crate) cases: Vec<Case>,
    /// Shapes to time each case at.
    pub(crate) shapes: Vec<Shape>,
    /// Untimed steps before the timed ones (allocation, kernel compilation on GPUs).
    pub(crate) warmup: usize,
    /// Timed steps; the median is reported. The reference's figures are medians of 6.
    pub(crate) steps: usize,
    /// Width of the Barlow Twins projector. Thesis: 4096.
    pub(crate) projector_dim: usize,
    /// Seed of the weights and inputs.
    pub(crate) seed: u64,
    /// Called before each case, before its peak-memory mark is reset: hands memory the
    /// process keeps for reuse (an allocator's cache of freed blocks) back to the system, so
    /// each case's `peak_rss_mib` is its own and not the largest earlier case's. The binary
    /// passes [`crate::alloc`]'s release of its allocator; `None` keeps what is kept.
    pub(crate) release_memory: Option<fn()>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            cases: Case::ALL.to_vec(),
            shapes: THESIS_SHAPES.to_vec(),
            warmup: 1,
            steps: 6,
            projector_dim: 4096,
            seed: 0,
            release_memory: None,
        }
    }
}

/// The timing of one case at one shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Timing {
    /// The case name (see [`Case::name`]).
    pub(crate) case: String,
    /// Batch size.
    pub(crate) batch: usize,
    /// Series length.
    pub(crate) length: usize,
    /// Median step time in milliseconds.
    pub(crate) median_ms: f64,
    /// Fastest step in milliseconds.
    pub(crate) min_ms: f64,
    /// Slowest step in milliseconds.
    pub(crate) max_ms: f64,
    /// Number of timed steps.
    pub(crate) steps: usize,
    /// CPU time (user + system, all threads) over wall time of the timed steps: 2.0 means two
    /// cores busy throughout. `None` where the platform does not report it (only Linux does).
    #[serde(default)]
    pub(crate) cpu_utilisation: Option<f64>,
    /// The part of `cpu_utilisation` that the pool's idle workers spent spinning for work
    /// (`kernels::spinning`, as the training loop runs its steps) rather than working: CPU time
    /// that is not work, over wall time. 0 with `KERNELS_SPIN=0`; `null` from other programs.
    #[serde(default)]
    pub(crate) spin_utilisation: Option<f64>,
    /// Peak resident memory of the process while this case ran (model, optimizer state and
    /// steps), in MiB: the kernel's high-water mark, reset before the case. `None` off Linux.
    #[serde(default)]
    pub(crate) peak_rss_mib: Option<f64>,
    /// Floating-point operations per step in the matrix products of the `kernels` crate
    /// (convolutions, linear layers, attention), in GFLOP. `None` where none ran through them
    /// (another backend than cpu).
    #[serde(default)]
    pub(crate) gemm_gflop_per_step: Option<f64>,
    /// Thread time per step inside those products, summed over threads, in milliseconds: set
    /// against `median_ms × cpu_utilisation` it is the GEMM share of the step's CPU time.
    #[serde(default)]
    pub(crate) gemm_thread_ms_per_step: Option<f64>,
}

/// The whole benchmark report (the `--json` output).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BenchReport {
    /// Who produced it: `"nc-vqvae"` or `"pytorch"`.
    pub(crate) implementation: String,
    /// The backend (`cpu`, `wgpu`, `cuda`).
    pub(crate) backend: String,
    /// Worker threads the CPU backend may use (`RAYON_NUM_THREADS`, else the available cores).
    pub(crate) threads: usize,
    /// One entry per case and shape.
    pub(crate) results: Vec<Timing>,
    /// With `bench --check`: how closely the backend reproduced the CPU's numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agreement: Option<Agreement>,
}

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// Bad settings.
    #[error("{0}")]
    Config(String),
    /// A model could not be built.
    #[error(transparent)]
    Model(#[from] vqvae::Error),
    /// The prior or the sampler failed.
    #[error(transparent)]
    Prior(#[from] maskgit::Error),
    /// The device failed.
    #[error("device error: {0}")]
    Device(String),
}

/// Worker threads of the CPU backend: `RAYON_NUM_THREADS` when set, else the available cores.
pub(crate) fn cpu_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub(super) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) }
}

/// User + system CPU seconds of this process so far (Linux: `/proc/self/stat`, in the kernel's
/// fixed 100 Hz user-visible ticks).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Resets the kernel's peak-resident-memory mark of this process (Linux: `/proc/self/clear_refs`).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory since the last reset, in MiB (Linux: `VmHWM` of `/proc/self/status`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub(crate) fn sync(device: &Device) -> Result<(), BenchError> {
    device.sync().map_err(|e| BenchError::Device(format!("{e:?}")))
}

/// The timed steps of one case: milliseconds per step and the CPU utilisation over them.
struct Measured {
    times: Vec<f64>,
    cpu_utilisation: Option<f64>,
    /// Spinning workers' idle time over wall time.
    spin_utilisation: f64,
    /// The GEMM work of the timed steps.
    gemm: kernels::GemmWork,
}

/// Times `warmup + steps` calls of `step` (each followed by a device sync) and keeps the last
/// `steps`.
fn time_steps(
    options: &BenchOptions,
    device: &Device,
    mut step: impl FnMut() -> Result<(), BenchError>,
) -> Result<Measured, BenchError> {
    let mut times = Vec::with_capacity(options.steps);
    let (mut cpu_start, mut wall_start, mut gemm_start, mut spin_start) =
        (None, Instant::now(), kernels::gemm_work(), kernels::spin_time());
    for i in 0..options.warmup + options.steps {
        if i == options.warmup {
            (cpu_start, wall_start, gemm_start, spin_start) =
                (cpu_seconds(), Instant::now(), kernels::gemm_work(), kernels::spin_time());
        }
        let start = Instant::now();
        // As the training loop runs its steps (train::fit): the pool's idle workers spinning.
        kernels::spinning(device, &mut step)?;
        sync(device)?;
        if i >= options.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let wall = wall_start.elapsed().as_secs_f64();
    let cpu_utilisation = cpu_start.zip(cpu_seconds()).map(|(a, b)| (b - a) / wall);
    let spin_utilisation = (kernels::spin_time() - spin_start).as_secs_f64() / wall;
    Ok(Measured {
        times,
        cpu_utilisation,
        spin_utilisation,
        gemm: kernels::gemm_work().since(gemm_start),
    })
}

fn time_case(
    case: Case,
    shape: Shape,
    options: &BenchOptions,
    device: &Device,
) -> Result<Measured, BenchError> {
    let train = device.clone().autodiff();
    train.seed(options.seed);
    match case {
        Case::Stage1Baseline | Case::Stage1NcVqvae => {
            let mut step =
                stage1_trainer(case == Case::Stage1NcVqvae, shape, options.projector_dim, &train)?;
            time_steps(options, device, || {
                step();
                Ok(())
            })
        }
        Case::Stage2Prior => {
            let mut step = prior_trainer(shape, options.seed, device, &train)?;
            time_steps(options, device, || {
                step();
                Ok(())
            })
        }
        Case::Sampling => {
            let tokenizer = VqVaeConfig::new(shape.length).init(&train)?.valid();
            let n = 5 * latent_width(&tokenizer, device);
            let n_classes = 2;
            let prior = MaskGitConfig::new(TrunkConfig::new(n, n_classes), Variant::Token)
                .init(tokenizer.quantizer().codebook(), device)?;
            let sampler = SamplerConfig::new();
            let mut rng = StdRng::seed_from_u64(options.seed);
            let classes: Vec<usize> = (0..shape.batch).map(|i| i % n_classes).collect();
            time_steps(options, device, || {
                let tokens = maskgit::sample(
                    &prior,
                    shape.batch,
                    Some(&classes),
                    &sampler,
                    device,
                    &mut rng,
                )?;
                let z = tokenizer
                    .quantizer()
                    .decode_tokens(int_tensor(tokens, [shape.batch, n], device), 5);
                let (_, x_hat) = tokenizer.decode(z);
                let _ = x_hat.into_data();
                Ok(())
            })
        }
    }
}

/// Runs every case at every shape; `progress` is called with each finished timing.
pub(crate) fn run(
    options: &BenchOptions,
    backend: &str,
    device: &Device,
    mut progress: impl FnMut(&Timing),
) -> Result<BenchReport, BenchError> {
    if options.steps == 0 {
        return Err(BenchError::Config("--steps must be at least 1".into()));
    }
    if options.projector_dim == 0 {
        return Err(BenchError::Config("--projector-dim must be at least 1".into()));
    }
    let mut results = Vec::new();
    for &case in &options.cases {
        for &shape in &options.shapes {
            if let Some(release) = options.release_memory {
                release();
            }
            let tracked = reset_peak_rss();
            let Measured { mut times, cpu_utilisation, spin_utilisation, gemm } =
                time_case(case, shape, options, device)?;
            let steps = times.len() as f64;
            let per_step = |v: u64, unit: f64| (gemm.flops > 0).then(|| v as f64 / unit / steps);
            times.sort_by(f64::total_cmp);
            let timing = Timing {
                case: case.name().into(),
                batch: shape.batch,
                length: shape.length,
                median_ms: median(&times),
                min_ms: times[0],
                max_ms: times[times.len() - 1],
                steps: times.len(),
                cpu_utilisation,
                spin_utilisation: Some(spin_utilisation),
                peak_rss_mib: if tracked { peak_rss_mib() } else { None },
                gemm_gflop_per_step: per_step(gemm.flops, 1e9),
                gemm_thread_ms_per_step: per_step(gemm.nanos, 1e6),
            };
            progress(&timing);
            results.push(timing);
        }
    }
    Ok(BenchReport {
        implementation: "nc-vqvae".into(),
        backend: backend.into(),
        threads: cpu_threads(),
        results,
        agreement: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::agreement::agreement;

    #[test]
    fn shapes_parse_and_bad_ones_are_named() {
        assert_eq!("128x140".parse::<Shape>().unwrap(), Shape { batch: 128, length: 140 });
        assert_eq!("4X65".parse::<Shape>().unwrap(), Shape { batch: 4, length: 65 });
        for bad in ["128", "x140", "0x140", "12x0", "axb"] {
            let e = bad.parse::<Shape>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }

    /// The check itself, CPU against CPU: the same numbers (flex is deterministic at a fixed thread
    /// count), real losses that fall over the three baseline steps, and a report that round-trips.
    #[cfg(feature = "cpu")]
    #[test]
    fn the_agreement_check_of_the_cpu_with_itself() {
        let a = agreement("cpu", &Device::flex()).unwrap();
        assert!(a.agrees, "{a:?}");
        assert!(a.max_loss_difference <= 1e-6 && a.max_gradient_difference <= 1e-6, "{a:?}");
        assert_eq!((a.baseline_losses.len(), a.nc_losses.len()), (3, 4));
        assert!(a.baseline_losses_cpu[2] < a.baseline_losses_cpu[0], "{a:?}");
        assert!(a.nc_losses_cpu.iter().all(|l| l.is_finite() && *l > 0.0), "{a:?}");
        let back: Agreement = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[cfg(feature = "cpu")]
    #[test]
    fn every_case_times_a_tiny_shape() {
        let options = BenchOptions {
            shapes: vec![Shape { batch: 2, length: 65 }],
            warmup: 0,
            steps: 2,
            projector_dim: 16,
            ..BenchOptions::default()
        };
        let mut seen = 0;
        let report = run(&options, "cpu", &Device::flex(), |_| seen += 1).unwrap();
        assert_eq!(seen, 4);
        assert_eq!(
            report.results.iter().map(|t| t.case.as_str()).collect::<Vec<_>>(),
            ["stage1_baseline", "stage1_nc_vqvae", "stage2_prior", "sampling"]
        );
        for t in &report.results {
            assert_eq!(t.steps, 2);
            assert!(t.min_ms > 0.0 && t.min_ms <= t.median_ms && t.median_ms <= t.max_ms, "{t:?}");
            if cfg!(target_os = "linux") {
                let cpu = t.cpu_utilisation.expect("Linux reports CPU time");
                assert!((0.0..=cpu_threads() as f64 + 0.5).contains(&cpu), "{t:?}");
                assert!(t.peak_rss_mib.expect("Linux reports the peak RSS") > 1.0, "{t:?}");
            }
            // Every case's convolutions or linear layers run through the kernels' GEMMs on flex,
            // inside the steps' CPU time (with slack for a thread preempted in a product).
            let (gflop, gemm_ms) = (
                t.gemm_gflop_per_step.expect("flex runs the kernels' GEMMs"),
                t.gemm_thread_ms_per_step.unwrap(),
            );
            assert!(gflop > 0.0 && gemm_ms > 0.0, "{t:?}");
            assert!(gemm_ms <= t.max_ms * (cpu_threads() as f64 + 1.0), "{t:?}");
        }
        let json = serde_json::to_string(&report).unwrap();
        let back: BenchReport = serde_json::from_str(&json).unwrap();
        for (a, b) in back.results.iter().zip(&report.results) {
            assert_eq!(
                (&a.case, a.batch, a.length, a.steps),
                (&b.case, b.batch, b.length, b.steps)
            );
            assert!((a.median_ms - b.median_ms).abs() < 1e-9 * b.median_ms, "{a:?} vs {b:?}");
        }
        assert!(super::super::table(&report).contains("| stage2_prior | 2 × 65 |"));
    }
}
