//! GEMM throughput of Burn's `flex` backend at the products of our models (an ignored test that
//! docs/upstream.md §4 quotes): which kernels the optimizer and the convolutions run on.

use burn::tensor::{Device, Distribution, Tensor};

/// GFLOP/s of Burn's matmul on flex at the products of our models (row-major operands, or a
/// transposed view where the backward pass uses one):
/// `MALLOC_MMAP_THRESHOLD_=4000000000 cargo test --release -p train gemm_throughput -- --ignored --nocapture`
/// (the threshold keeps glibc from mapping fresh pages for every result, as the binary's
/// allocator does).
#[test]
#[ignore]
fn gemm_throughput() {
    let device = Device::flex();
    // (what, m, k, n, lhs transposed, rhs transposed)
    let shapes: [(&str, usize, usize, usize, bool, bool); 7] = [
        ("projector forward 32x4096 . 4096x4096", 32, 4096, 4096, false, true),
        ("projector weight grad 4096x32 . 32x4096", 4096, 32, 4096, true, false),
        ("prior 9728x256 . 256x256", 9728, 256, 256, false, true),
        ("prior 9728x256 . 256x1024 (MLP)", 9728, 256, 1024, false, true),
        ("conv forward 64x576 . 576x20480", 64, 576, 20480, false, false),
        ("conv input grad 576x64 . 64x20480", 576, 64, 20480, true, false),
        ("conv weight grad 64x20480 . 20480x576", 64, 20480, 576, false, true),
    ];
    for (what, m, k, n, tl, tr) in shapes {
        let a = if tl {
            Tensor::<2>::random([k, m], Distribution::Default, &device).transpose()
        } else {
            Tensor::<2>::random([m, k], Distribution::Default, &device)
        };
        let b = if tr {
            Tensor::<2>::random([n, k], Distribution::Default, &device).transpose()
        } else {
            Tensor::<2>::random([k, n], Distribution::Default, &device)
        };
        let _ = a.clone().matmul(b.clone()).into_data();
        let start = std::time::Instant::now();
        let reps = 8;
        for _ in 0..reps {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        let s = start.elapsed().as_secs_f64() / reps as f64;
        println!("{what}: {:.2} ms, {:.0} GFLOP/s", s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9);
    }
}
