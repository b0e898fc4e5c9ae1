//! GEMM on slices: strided matrix views, one single-threaded product through the `gemm` crate
//! (the kernels Burn's flex backend uses), and a parallel product that splits the output into
//! tiles, one single-threaded GEMM each.
//!
//! The tiles are on par with the `gemm` crate's own parallelism where the output is large (the
//! prior's `9728×256 · 256×256`) and faster where the inner dimension is long and the output small
//! (the prior's weight gradients `256×5248 · 5248×128`), and Burn's matmul around the same kernels
//! is slower on both (its output allocation and layout handling, docs/upstream.md §7): the figures
//! and the probe that measures them (`gemm_throughput`) are in docs/benchmarks-history.md. Our ops
//! also fuse the bias and run the whole backward as one op.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A strided matrix over a slice (non-negative strides).
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a> View<'a> {
    /// A contiguous row-major matrix.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix of {rows}×{cols} over {} values", data.len());
        View { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose (no copy).
    pub(crate) fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `start..start + len`.
    fn rows(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.rows, "row range");
        let data = if len == 0 { &self.data[..0] } else { &self.data[start * self.row_stride..] };
        View { data, rows: len, ..self }
    }

    /// Columns `start..start + len`.
    fn cols(self, start: usize, len: usize) -> Self {
        assert!(start + len <= self.cols, "column range");
        let data = if len == 0 { &self.data[..0] } else { &self.data[start * self.col_stride..] };
        View { data, cols: len, ..self }
    }

    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst (m×n, row-major) = lhs · rhs` on the calling thread.
pub(crate) fn matmul(dst: &mut [f32], lhs: View, rhs: View) {
    // SAFETY: `f32` and `MaybeUninit<f32>` have the same layout, and `matmul_uninit` only writes
    // initialised values.
    matmul_uninit(unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) }, lhs, rhs);
}

/// [`matmul`] into a buffer that need not be initialised: every one of its `m × n` values is
/// written (the GEMM never reads its destination), so an output needs no clearing first.
pub(crate) fn matmul_uninit(dst: &mut [MaybeUninit<f32>], lhs: View, rhs: View) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions");
    assert_eq!(dst.len(), m * n, "output size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.iter_mut().for_each(|v| {
            v.write(0.0);
        });
        return;
    }
    assert!(lhs.in_bounds() && rhs.in_bounds(), "view out of bounds");
    let start = std::time::Instant::now();
    // SAFETY: every index the GEMM reads lies inside the views (checked above) and it writes
    // exactly the `m × n` contiguous values of `dst`, a unique borrow that cannot overlap them;
    // with `read_dst = false` it never reads them.
    unsafe { product(kernels_for(), dst.as_mut_ptr().cast::<f32>(), lhs, rhs) };
    crate::record_gemm(2 * (m * n * k) as u64, start.elapsed().as_nanos() as u64);
}

/// The `gemm` crate's kernel sets a product can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// 256-bit FMA (AVX2) kernels: 16 × 6 tiles.
    Fma,
    /// AVX-512 kernels: 64 × 6 tiles (compiled with the `avx512` feature only).
    #[cfg_attr(not(all(feature = "avx512", target_arch = "x86_64")), allow(dead_code))]
    Avx512,
}

/// The kernel set for our products on this CPU: FMA, or with the `avx512` feature on a CPU with
/// AVX-512 the AVX-512 kernels unless `KERNELS_GEMM=fma` says otherwise (read once), so one
/// binary compares both. (The `gemm` crate's own entry point picks AVX-512 whenever the feature is
/// compiled in and the CPU has it, with no way to choose; on the Zen 4 development machine the
/// FMA kernels were faster on 8 of our 10 product shapes: docs/benchmarks.md.)
fn kernels_for() -> Kernels {
    #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
    {
        static CHOSEN: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let avx512 = std::arch::is_x86_feature_detected!("avx512f");
            if avx512 && std::env::var("KERNELS_GEMM").as_deref() != Ok("fma") {
                Kernels::Avx512
            } else {
                Kernels::Fma
            }
        })
    }
    #[cfg(not(all(feature = "avx512", target_arch = "x86_64")))]
    Kernels::Fma
}

/// `dst (m×n, row-major, not read) = lhs · rhs` on the calling thread with the kernel set
/// `kernels`, through the `gemm` crate's generic driver and its micro-kernels.
///
/// # Safety
/// `dst` must be valid for writes of `lhs.rows × rhs.cols` values and not overlap the views,
/// whose indices must lie inside their slices.
unsafe fn product(kernels: Kernels, dst: *mut f32, lhs: View, rhs: View) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    // The crate's arguments: `dst` row-major (column stride 1, row stride n), never read.
    let (dst_cs, dst_rs, read_dst) = (1isize, n as isize, false);
    let (l, l_cs, l_rs) = (lhs.data.as_ptr(), lhs.col_stride as isize, lhs.row_stride as isize);
    let (r, r_cs, r_rs) = (rhs.data.as_ptr(), rhs.col_stride as isize, rhs.row_stride as isize);
    match kernels {
        #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
        Kernels::Avx512 => {
            use gemm_f32::microkernel::avx512f::f32 as ukr;
            let simd = gemm_common::simd::V4::try_new()
                .expect("AVX-512 kernels chosen on a CPU without AVX-512");
            // SAFETY: as the caller guarantees; the kernel tables are the crate's own for V4.
            unsafe {
                gemm_common::gemm::gemm_basic_generic::<_, f32, 16, 64, 6, 4, 4, 4>(
                    simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    dst_rs,
                    read_dst,
                    l,
                    l_cs,
                    l_rs,
                    r,
                    r_cs,
                    r_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    |a, b, c| a * b + c,
                    &ukr::UKR,
                    &ukr::H_UKR,
                    false,
                    gemm::Parallelism::None,
                )
            }
        }
        #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
        Kernels::Fma => {
            use gemm_f32::microkernel::fma::f32 as ukr;
            let simd = gemm_common::simd::V3::try_new()
                .expect("FMA kernels on a CPU without AVX2 and FMA");
            // SAFETY: as the caller guarantees; the kernel tables are the crate's own for V3.
            unsafe {
                gemm_common::gemm::gemm_basic_generic::<_, f32, 8, 16, 6, 2, 2, 2>(
                    simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    dst_rs,
                    read_dst,
                    l,
                    l_cs,
                    l_rs,
                    r,
                    r_cs,
                    r_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    |a, b, c| a * b + c,
                    &ukr::UKR,
                    &ukr::H_UKR,
                    false,
                    gemm::Parallelism::None,
                )
            }
        }
        // SAFETY: as the caller guarantees.
        #[cfg(not(all(feature = "avx512", target_arch = "x86_64")))]
        _ => unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                dst_cs,
                dst_rs,
                read_dst,
                l,
                l_cs,
                l_rs,
                r,
                r_cs,
                r_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        },
    }
}

/// Below this many multiply-adds a product runs on the calling thread.
const SERIAL_MACS: usize = 1 << 18;
/// Fewest rows or columns of an output tile.
const MIN_TILE: usize = 32;

/// `batch` products `lhs(i) · rhs(i)`, each `m×k · k×n`, into one `(batch, m, n)` row-major
/// result, in parallel: whole products per task when there are enough of them, otherwise each
/// product cut into row tiles (written in place) or column tiles (computed apart and copied in).
/// (A split of the inner dimension, one partial per thread, for the weight gradients with a long
/// inner dimension was tried and was not measurably faster: docs/benchmarks-history.md.)
pub(crate) fn batched<'a, L, R>(batch: usize, [m, k, n]: [usize; 3], lhs: L, rhs: R) -> Vec<f32>
where
    L: Fn(usize) -> View<'a> + Sync,
    R: Fn(usize) -> View<'a> + Sync,
{
    let total = batch * m * n;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    // Every branch below writes all `total` values (products into uninitialised memory: the
    // output is never cleared first).
    let spare = &mut out.spare_capacity_mut()[..total];
    if total == 0 {
        return out;
    }
    let threads = rayon::current_num_threads().max(1);
    let macs = m * k * n;
    if batch * macs <= SERIAL_MACS || threads == 1 {
        for (i, dst) in spare.chunks_exact_mut(m * n).enumerate() {
            matmul_uninit(dst, lhs(i), rhs(i));
        }
    } else if (4 * threads).div_ceil(batch) <= 1 || macs <= SERIAL_MACS {
        spare
            .par_chunks_exact_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| matmul_uninit(dst, lhs(i), rhs(i)));
    } else if m >= n {
        let tiles = (4 * threads).div_ceil(batch);
        let rows = m.div_ceil(tiles).max(MIN_TILE.min(m));
        spare.par_chunks_exact_mut(m * n).enumerate().for_each(|(i, product)| {
            product.par_chunks_mut(rows * n).enumerate().for_each(|(t, dst)| {
                let len = dst.len() / n;
                matmul_uninit(dst, lhs(i).rows(t * rows, len), rhs(i));
            });
        });
    } else {
        let tiles = (4 * threads).div_ceil(batch);
        let cols = n.div_ceil(tiles).max(MIN_TILE.min(n));
        let count = n.div_ceil(cols);
        let pieces: Vec<(usize, usize, Vec<f32>)> = (0..batch * count)
            .into_par_iter()
            .map(|task| {
                let (i, t) = (task / count, task % count);
                let (start, len) = (t * cols, cols.min(n - t * cols));
                let mut dst = vec![0f32; m * len];
                matmul(&mut dst, lhs(i), rhs(i).cols(start, len));
                (i, start, dst)
            })
            .collect();
        for (i, start, piece) in pieces {
            let len = piece.len() / m;
            for (row, values) in piece.chunks_exact(len).enumerate() {
                for (d, &v) in spare[(i * m + row) * n + start..][..len].iter_mut().zip(values) {
                    d.write(v);
                }
            }
        }
    }
    // SAFETY: the products (or the column pieces copied in) wrote all `total` values.
    unsafe { out.set_len(total) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by definition, in f64.
    fn naive(a: View, b: View) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let s: f64 = (0..a.cols)
                    .map(|l| {
                        a.data[i * a.row_stride + l * a.col_stride] as f64
                            * b.data[l * b.row_stride + j * b.col_stride] as f64
                    })
                    .sum();
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104729) % 61) as f32 / 61.0 - 0.5).collect()
    }

    #[test]
    fn batched_products_equal_the_definition_in_every_split() {
        // Shapes that take each path: serial, whole products per task, row tiles, column tiles
        // (the last with a long inner dimension, as the weight gradients have); operands
        // transposed (strided) as the backward passes them. On 3 threads, so every split is
        // taken on any machine, with uneven tiles.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(every_split_equals_the_definition);
    }

    fn every_split_equals_the_definition() {
        for (batch, m, k, n) in [
            (1, 3, 4, 5),
            (6, 40, 30, 20),
            (1, 300, 70, 90),
            (1, 40, 300, 500),
            (2, 129, 33, 65),
            (3, 7, 200, 300),
            (1, 37, 1100, 53),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = values(batch * m * k, 1);
                let b = values(batch * k * n, 2);
                let view = |data: &'static [f32], rows: usize, cols: usize, t: bool| {
                    if t {
                        View::row_major(data, cols, rows).t()
                    } else {
                        View::row_major(data, rows, cols)
                    }
                };
                let (a, b): (&'static [f32], &'static [f32]) = (a.leak(), b.leak());
                let got = batched(
                    batch,
                    [m, k, n],
                    |i| view(&a[i * m * k..][..m * k], m, k, ta),
                    |i| view(&b[i * k * n..][..k * n], k, n, tb),
                );
                for i in 0..batch {
                    let want = naive(
                        view(&a[i * m * k..][..m * k], m, k, ta),
                        view(&b[i * k * n..][..k * n], k, n, tb),
                    );
                    for (j, (x, y)) in got[i * m * n..][..m * n].iter().zip(&want).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                            "{batch}×{m}×{k}×{n} ({ta}, {tb}) item {i} entry {j}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    /// GFLOP/s of the tiled products at the shapes of our models, against the `gemm` crate's own
    /// parallelism (what Burn's matmul runs): `MALLOC_TRIM_THRESHOLD_=4000000000
    /// MALLOC_MMAP_THRESHOLD_=4000000000 cargo test --release -p kernels gemm_throughput --
    /// --ignored --nocapture` (glibc then keeps freed outputs, as the binary's `mallopt` settings
    /// do; without them every repetition of a product of ≥ 1 MiB pays fresh page faults).
    #[test]
    #[ignore]
    fn gemm_throughput() {
        let shapes: [(&str, usize, usize, usize, bool); 18] = [
            ("prior 32x140 q 1312x256 . 256x128", 1312, 256, 128, false),
            ("prior 32x140 qkv fused 1312x256 . 256x384", 1312, 256, 384, false),
            ("prior 32x140 ff 1312x256 . 256x256", 1312, 256, 256, false),
            ("prior 32x140 out 1312x128 . 128x256", 1312, 128, 256, false),
            ("prior 32x140 dW q 256x1312 . 1312x128", 256, 1312, 128, true),
            ("prior 32x140 dW qkv fused 256x1312 . 1312x384", 256, 1312, 384, true),
            ("prior q 5248x256 . 256x128", 5248, 256, 128, false),
            ("prior dW 256x5248 . 5248x128", 256, 5248, 128, true),
            ("prior dW ff 256x5248 . 5248x256", 256, 5248, 256, true),
            ("prior 9728x256 . 256x256", 9728, 256, 256, false),
            ("prior MLP 9728x256 . 256x1024", 9728, 256, 1024, false),
            ("projector forward 32x4096 . 4096x4096", 32, 4096, 4096, false),
            ("projector forward 128x4096 . 4096x4096", 128, 4096, 4096, false),
            ("projector forward 256x4096 . 4096x4096", 256, 4096, 4096, false),
            ("projector weight grad 4096x32 . 32x4096", 4096, 32, 4096, true),
            ("projector weight grad 4096x128 . 128x4096", 4096, 128, 4096, true),
            ("projector weight grad 4096x256 . 256x4096", 4096, 256, 4096, true),
            ("conv chunk 64x576 . 576x256 (one thread)", 64, 576, 256, false),
        ];
        for (what, m, k, n, ta) in shapes {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let lhs = if ta { View::row_major(&a, k, m).t() } else { View::row_major(&a, m, k) };
            let rhs = View::row_major(&b, k, n);
            let time = |f: &dyn Fn()| {
                f();
                let reps = 10;
                let start = std::time::Instant::now();
                for _ in 0..reps {
                    f();
                }
                let s = start.elapsed().as_secs_f64() / reps as f64;
                (s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9)
            };
            let (ms, gflops) = if what.contains("one thread") {
                time(&|| {
                    let mut c = vec![0f32; m * n];
                    matmul(&mut c, lhs, rhs);
                })
            } else {
                time(&|| {
                    std::hint::black_box(batched(1, [m, k, n], |_| lhs, |_| rhs));
                })
            };
            let (ms_crate, gflops_crate) = time(&|| {
                let mut c = vec![0f32; m * n];
                // SAFETY: as in `matmul`, with the crate's own rayon parallelism.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        lhs.data.as_ptr(),
                        lhs.col_stride as isize,
                        lhs.row_stride as isize,
                        rhs.data.as_ptr(),
                        rhs.col_stride as isize,
                        rhs.row_stride as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(rayon::current_num_threads()),
                    );
                }
                std::hint::black_box(c);
            });
            println!(
                "{what}: tiled {ms:.2} ms {gflops:.0} GFLOP/s; gemm's own parallelism {ms_crate:.2} ms {gflops_crate:.0} GFLOP/s"
            );
        }
    }
    /// One thread's GFLOP/s of each kernel set on the products of NC-VQVAE 128 × 500's step, in
    /// the operand layouts our ops pass (`ᵀ`: a transposed view), alternating, best of 7:
    /// `cargo test --release -p kernels --features avx512 kernel_sets -- --ignored --nocapture`.
    #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
    #[test]
    #[ignore]
    fn kernel_sets() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU");
            return;
        }
        // (what, m, k, n, lhs transposed, rhs transposed)
        let shapes = [
            ("conv forward, band 3 rows x 62: cols . W'T", 372, 768, 64, false, true),
            ("conv forward, band 1 row x 62 x 5 samples: cols . W'T", 310, 512, 64, false, true),
            ("conv forward, whole 5 rows x 62: cols . W'T", 310, 768, 64, false, true),
            ("conv dx, band: g . W'", 372, 64, 768, false, false),
            ("conv dW, band: gT . cols", 64, 372, 768, true, false),
            ("residual forward 5 x 15 x 4 samples: cols . W'T", 300, 576, 64, false, true),
            ("projector forward tile 64 rows: x . WT", 64, 4096, 4096, false, true),
            ("projector forward column tile: x . WT", 256, 4096, 1024, false, true),
            ("projector dx column tile: g . W", 256, 4096, 1024, false, false),
            ("projector dW row tile: gT . x", 1024, 256, 4096, true, false),
        ];
        for (what, m, k, n, ta, tb) in shapes {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let lhs = if ta { View::row_major(&a, k, m).t() } else { View::row_major(&a, m, k) };
            let rhs = if tb { View::row_major(&b, n, k).t() } else { View::row_major(&b, k, n) };
            let mut dst = vec![0f32; m * n];
            let mut best = [f64::INFINITY; 2];
            for _ in 0..7 {
                for (i, kernels) in [Kernels::Fma, Kernels::Avx512].into_iter().enumerate() {
                    let start = std::time::Instant::now();
                    // SAFETY: dst holds m × n values; the views are in bounds.
                    unsafe { product(kernels, dst.as_mut_ptr(), lhs, rhs) };
                    best[i] = best[i].min(start.elapsed().as_secs_f64());
                }
            }
            let gflops = |s: f64| 2.0 * (m * k * n) as f64 / s / 1e9;
            println!(
                "{what} ({m}x{k}x{n}): FMA {:.0} GFLOP/s, AVX-512 {:.0} GFLOP/s",
                gflops(best[0]),
                gflops(best[1])
            );
        }
    }
}
