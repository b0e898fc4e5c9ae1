#![doc = include_str!("../README.md")]

mod activation;
mod attention;
#[cfg(feature = "flex")]
mod buffers;
mod conv;
#[cfg(feature = "flex")]
mod gemm;
mod im2col;
mod matmul;
mod norm;
mod rms_norm;
#[cfg(feature = "flex")]
mod simd;
pub mod tuning;
#[cfg(feature = "flex")]
mod winograd;

pub use activation::{gelu, leaky_relu};
pub use attention::{attention, attention_packed};
pub use conv::{
    conv_transpose2d, conv_transpose2d_channels_last, conv1d_channels_last, conv2d,
    conv2d_channels_last,
};
pub use matmul::{linear, matmul, rows_times};
pub use norm::{batch_norm, batch_norm_channels_last};
pub use rms_norm::rms_norm;

/// Whether the flex kernels apply to `x`: an `f32` tensor on Burn's flex CPU backend (with or
/// without autodiff), and the crate built with its `flex` feature.
pub fn flex_f32<const D: usize>(x: &burn::tensor::Tensor<D>) -> bool {
    flex_device(&x.device()) && x.dtype() == burn::tensor::DType::F32
}

/// Whether `device` is Burn's flex CPU backend (with or without autodiff) and the crate is built
/// with its `flex` feature.
fn flex_device(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "flex")]
    return matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_));
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// Runs `f` on a worker of rayon's global pool, the pool the flex kernels run their parallel
/// loops on, with the calling thread waiting once for all of it. Called from a thread outside the
/// pool (a program's main thread), every parallel loop otherwise hands its work to the pool and
/// puts the caller to sleep until it is done: a sleep and a wake-up per op, hundreds per training
/// step. Run from a worker, the loops split their work in place: small training steps gain most
/// (docs/benchmarks-history.md has the figures). The `nc-vqvae` binary runs each command this way;
/// a program using the crates can wrap its training loop in it.
///
/// If the global pool does not exist yet it is built with 16 MiB stacks per worker (the main
/// thread's 8 MiB and more, where `f` may recurse as deep as the main thread would) and rayon's
/// usual thread count (`RAYON_NUM_THREADS`, else the available cores).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    {
        // An error only says the global pool was built before (then its settings stay).
        let _ = rayon::ThreadPoolBuilder::new().stack_size(16 << 20).build_global();
        rayon::scope(|_| f())
    }
    #[cfg(not(feature = "flex"))]
    f()
}

/// Runs `f`, called on a worker of rayon's pool (see [`on_pool`]), with the pool's other workers
/// spinning while they wait for work instead of going to sleep: they keep taking the pool's jobs
/// (`rayon::yield_now`) and are there the moment an op splits its work, where a sleeping worker has
/// to be woken first (a futex wake-up, in a VM an interrupt to a halted virtual CPU: the second
/// half of a convolution pass started ~15–40 µs after the first on the 2-core development VM,
/// hundreds of times per step); the stage-1 steps gain a few per cent (docs/benchmarks-history.md,
/// the probe `pool_spin_in_the_training_steps`). This is what OpenMP's spin-wait does for PyTorch;
/// the cost is that the other cores stay busy for as long as `f` runs, so wrap the compute (a
/// training epoch, a sampling batch), not waits for input. [`spin_time`] counts the spinning.
///
/// Without effect (just `f()`) unless `device` is the flex CPU backend (on a GPU the CPU would spin
/// through every wait for the device), off the pool, on one thread, inside another `spinning`,
/// with `KERNELS_SPIN=0` in the environment or after [`tuning::set_pool_spin`]`(false)`, and without the
/// `flex` feature.
pub fn spinning<R>(device: &burn::tensor::Device, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "flex")]
    {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        if !flex_device(device) {
            return f();
        }
        let threads = rayon::current_num_threads();
        let Some(me) = rayon::current_thread_index() else { return f() };
        if threads < 2 || !tuning::pool_spin() || SPINNING.swap(true, Ordering::AcqRel) {
            return f();
        }
        let state = Arc::new((AtomicBool::new(false), AtomicUsize::new(threads - 1)));
        for _ in 1..threads {
            let state = state.clone();
            rayon::spawn(move || {
                // Never on the caller's own thread: it may take this job while it waits in a
                // join, and would then spin on top of its own unfinished work.
                if rayon::current_thread_index() != Some(me) {
                    spin_until(&state.0);
                }
                state.1.fetch_sub(1, Ordering::AcqRel);
            });
        }
        let out = f();
        state.0.store(true, Ordering::Release);
        // Spinners not started yet are in the pool's queues: run or wait for them.
        while state.1.load(Ordering::Acquire) > 0 {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::hint::spin_loop();
            }
        }
        SPINNING.store(false, Ordering::Release);
        out
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        f()
    }
}

/// A spinner's loop: the pool's jobs until `stop`, its idle time added to [`spin_time`].
#[cfg(feature = "flex")]
fn spin_until(stop: &std::sync::atomic::AtomicBool) {
    use std::time::{Duration, Instant};
    let (mut idle, mut idle_since, mut last, mut last_idle) =
        (Duration::ZERO, None::<Instant>, Instant::now(), false);
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        // The previous round, if it found no work, was idle spinning; a round that took long was
        // preempted (another thread had the core) and is not counted.
        if last_idle && now - last < Duration::from_micros(20) {
            idle += now - last;
        }
        last = now;
        last_idle = rayon::yield_now() != Some(rayon::Yield::Executed);
        if !last_idle {
            idle_since = None;
        } else if now - *idle_since.get_or_insert(now) < Duration::from_micros(200) {
            // A pure spin for the first 200 µs of idleness (the gaps between a step's ops), then
            // an OS yield per round: the core stays awake (no halt, no wake-up to wait for) but
            // gives way at once to any other thread that wants it (other processes, the tests'
            // binaries running side by side). Yielding after 20 µs kept less of the gain.
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    SPIN_NANOS.fetch_add(idle.as_nanos() as u64, Ordering::Relaxed);
}

#[cfg(feature = "flex")]
static SPINNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SPIN_NANOS: AtomicU64 = AtomicU64::new(0);
/// The time [`spinning`]'s workers have spent spinning without work since the process started
/// (summed over workers): CPU time that is not work, for utilisation figures.
pub fn spin_time() -> std::time::Duration {
    std::time::Duration::from_nanos(SPIN_NANOS.load(Ordering::Relaxed))
}

use std::sync::atomic::{AtomicU64, Ordering};

static FLOPS: AtomicU64 = AtomicU64::new(0);
static NANOS: AtomicU64 = AtomicU64::new(0);

/// The matrix products this crate's kernels have computed since the process started (none
/// without the `flex` feature): how much of a step is GEMM, and how fast the GEMMs ran in place.
/// `bench` reports it per step (docs/benchmarks.md: which cases are GEMM-bound).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GemmWork {
    /// Floating-point operations (`2·m·k·n` per product).
    pub flops: u64,
    /// Thread time inside the products, summed over the threads that ran them.
    pub nanos: u64,
}

impl GemmWork {
    /// The work done since `earlier`.
    pub fn since(self, earlier: GemmWork) -> GemmWork {
        GemmWork { flops: self.flops - earlier.flops, nanos: self.nanos - earlier.nanos }
    }
}

/// The totals so far (one relaxed atomic counter pair per product: ~20 ns against products of
/// microseconds and more).
pub fn gemm_work() -> GemmWork {
    GemmWork { flops: FLOPS.load(Ordering::Relaxed), nanos: NANOS.load(Ordering::Relaxed) }
}

/// Adds one product to the totals of [`gemm_work`].
#[cfg(feature = "flex")]
pub(crate) fn record_gemm(flops: u64, nanos: u64) {
    FLOPS.fetch_add(flops, Ordering::Relaxed);
    NANOS.fetch_add(nanos, Ordering::Relaxed);
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
    use burn::tensor::{Device, Distribution, Gradients, Tensor};

    fn bits<const D: usize>(t: Option<Tensor<D>>) -> Vec<u32> {
        t.expect("a gradient")
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    }

    /// `spinning` returns what its closure returns with the parallel work inside it done, on
    /// pools of 1, 2 and 4 threads, and on more than one thread counts the other workers' idle
    /// spinning (the caller sleeps 50 × 200 µs between parallel sums; rounds preempted by other
    /// processes are not counted, so on a loaded machine much less than 10 ms of it may be).
    #[test]
    fn spinning_runs_the_work_and_counts_the_idle_spinning() {
        use rayon::prelude::*;
        for threads in [1, 2, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (sum, spun) = pool.install(|| {
                let before = crate::spin_time();
                let sum = crate::spinning(&burn::tensor::Device::flex(), || {
                    (0..50)
                        .map(|_| {
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            (0..10_000u64).into_par_iter().sum::<u64>()
                        })
                        .sum::<u64>()
                });
                (sum, crate::spin_time() - before)
            });
            assert_eq!(sum, 50 * 49_995_000, "{threads} threads");
            if threads > 1 && crate::tuning::pool_spin() {
                assert!(spun > std::time::Duration::ZERO, "{threads} threads: no spinning counted");
            }
        }
    }

    /// The same inputs on a 4-thread pool, ten times: the same bits every time. The kernels sum
    /// per-task partials (BatchNorm statistics and its γ/β gradients, a linear layer's bias
    /// gradient, a convolution's weight and bias gradients); added in rayon's work-stealing order
    /// they changed in the last bits between runs, so training with one seed was not reproducible.
    #[test]
    fn sums_over_parallel_tasks_are_the_same_bits_every_run() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let device = Device::flex().autodiff();
        device.seed(3);
        let image = Tensor::<4>::random([64, 16, 5, 33], Distribution::Normal(0.0, 1.0), &device);
        let rows = Tensor::<2>::random([8192, 64], Distribution::Normal(0.5, 2.0), &device);
        let conv = Conv2dConfig::new([16, 32], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let layer = LinearConfig::new(64, 48).init(&device);
        let norm = BatchNormConfig::new(64).init(&device);
        // Channels-last with padded rows: the row bands' path.
        let banded = Conv2dConfig::new([16, 32], [3, 4]).with_stride([1, 2]).init(&device);
        // Channels-last 3 × 3 with zero padding: the Winograd path.
        let winograd = Conv2dConfig::new([16, 16], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let run = || {
            pool.install(|| {
                let y = crate::conv2d(&conv, image.clone().detach().require_grad());
                let u = crate::conv2d_channels_last(
                    &banded,
                    image.clone().detach().require_grad().permute([0, 2, 3, 1]),
                    [1, 1, 1, 1],
                );
                let v = crate::conv2d_channels_last(
                    &winograd,
                    image.clone().detach().require_grad().permute([0, 2, 3, 1]),
                    [0; 4],
                );
                let z = crate::linear(
                    &layer,
                    crate::batch_norm(&norm, rows.clone().detach().require_grad()),
                );
                let grads: Gradients = ((y.clone() * y).sum()
                    + (z.clone() * z).sum()
                    + (u.clone() * u).sum()
                    + (v.clone() * v).sum())
                .backward();
                let grad = |p: &Param<Tensor<1>>| bits(p.grad(&grads));
                [
                    bits(conv.weight.grad(&grads)),
                    grad(conv.bias.as_ref().unwrap()),
                    grad(layer.bias.as_ref().unwrap()),
                    grad(&norm.gamma),
                    grad(&norm.beta),
                    bits(banded.weight.grad(&grads)),
                    bits(winograd.weight.grad(&grads)),
                ]
            })
        };
        let first = run();
        for _ in 0..9 {
            assert!(run() == first, "a gradient changed between runs of the same inputs");
        }
    }
}
