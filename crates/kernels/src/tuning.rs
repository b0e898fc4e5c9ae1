//! The process-wide switches of the kernels' strategies. **Not settings a program needs**: every
//! default is the strategy measured fastest (docs/benchmarks.md); they exist so that one process
//! can time a strategy against its alternative (the timing probes in `nc-vqvae`'s `bench` and the
//! convolution probe here). Each takes effect at the next op.

use std::sync::atomic::{AtomicBool, Ordering};

static SPIN: AtomicBool = AtomicBool::new(true);

/// Whether [`spinning`](crate::spinning) spins: on unless `KERNELS_SPIN=0` (read once) or turned
/// off here. Process-wide.
pub fn set_pool_spin(on: bool) {
    SPIN.store(on, Ordering::Relaxed);
}

/// Whether [`spinning`](crate::spinning) spins ([`set_pool_spin`], `KERNELS_SPIN`).
pub fn pool_spin() -> bool {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    SPIN.load(Ordering::Relaxed)
        && *ENV.get_or_init(|| std::env::var("KERNELS_SPIN").as_deref() != Ok("0"))
}

static ROW_BANDS: AtomicBool = AtomicBool::new(true);

/// Whether channels-last convolutions with padded rows run per row band, skipping the taps that
/// read the padding (`true`, the default), or over the whole im2col matrix as before (`false`):
/// the same values either way (to rounding), for comparisons of the two in one process (the
/// convolution benchmark `conv_throughput` and the step benchmark in `nc-vqvae`'s `bench`
/// module). Process-wide; takes effect at the next convolution.
pub fn set_conv_row_bands(on: bool) {
    ROW_BANDS.store(on, Ordering::Relaxed);
}

/// Whether the row bands of [`set_conv_row_bands`] are on.
pub fn conv_row_bands() -> bool {
    ROW_BANDS.load(Ordering::Relaxed)
}

static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// Whether channels-last convolutions with 3 kernel columns at column stride 1 (the residual
/// blocks' 3 × 3) or 4 at stride 2 (the encoder's strided 3 × 4, the decoder's transposed ones)
/// run as Winograd F(4, 3) / F(3, 2) along the columns (`true`, the default: 1/2 and 2/3 of the
/// multiply-adds), or as im2col GEMMs (`false`): the same values to rounding, for comparisons in
/// one process like [`set_conv_row_bands`]. Process-wide; takes effect at the next convolution.
pub fn set_conv_winograd(on: bool) {
    WINOGRAD.store(on, Ordering::Relaxed);
}

/// Whether the Winograd convolutions of [`set_conv_winograd`] are on.
pub fn conv_winograd() -> bool {
    WINOGRAD.load(Ordering::Relaxed)
}
