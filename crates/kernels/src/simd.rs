//! A branch-free `exp` the compiler can vectorise, and running a loop with 256-bit lanes where the
//! CPU has them.
//!
//! `f32::exp` is a call into libm per value, so no loop around it vectorises: in the sampling
//! profile GELU was 8 % of all samples, 5 % of them the scalar `expf` of its `erf`. [`exp`] is
//! range reduction `x = n·ln 2 + r` (`|r| ≤ ln 2 / 2`), the degree-7 Taylor polynomial of `e^r`
//! and `2^n` written into the exponent bits: only multiplies, adds, compares and integer shifts,
//! so a loop of it becomes SIMD code. [`wide`] runs such a loop compiled for AVX2 when the CPU has
//! it (chosen at run time, as the `gemm` crate does for its kernels): the crate itself is built
//! for baseline x86-64, whose SSE2 lanes hold 4 values, AVX2's hold 8.

/// `e^x` with a relative error below 3e-7 (a few units in the last place) for `x ≤ 88.3`; `+∞`
/// above (`e^88.3 ≈ 2.2e38`, `f32::MAX ≈ 3.4e38`), `0` below `−87.3` (where `e^x` leaves the
/// normal range), NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const HI: f32 = 88.3;
    const LO: f32 = -87.3;
    // ln 2 in two parts: `n · LN2_HI` is exact for the `|n| ≤ 128` used here (LN2_HI has 16
    // significant bits), so `r` keeps its precision.
    // Written out to every digit of their binary values, which is what the split needs.
    #[allow(clippy::excessive_precision, reason = "the exact binary values of the two parts")]
    const LN2_HI: f32 = 0.693_145_751_953_125;
    #[allow(clippy::excessive_precision, reason = "the exact binary values of the two parts")]
    const LN2_LO: f32 = 1.428_606_765_330_187e-6;
    // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits (round to nearest).
    const SHIFT: f32 = 12_582_912.0;
    let clamped = if x > HI { HI } else { x };
    let clamped = if clamped < LO { LO } else { clamped };
    let shifted = clamped * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // `n + 127` as a biased exponent: the integer in the low bits of `shifted`.
    let biased = (shifted.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32).wrapping_add(127);
    let value = p * f32::from_bits((biased << 23) as u32);
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else {
        value
    }
}

/// `f()`, compiled with AVX2 where the CPU has it (its loops then use 8-value lanes), else as
/// built. Give it a loop over slices with everything inside inlinable (closures, `#[inline]`
/// functions such as [`exp`]); a call to a function that is not inlined runs as built.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above), the only requirement of `avx2`.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against f64's `exp` on a dense sweep of the range, and the edges.
    #[test]
    fn exp_is_within_a_few_ulp_of_f64_exp_everywhere() {
        let mut worst = (0f64, 0f32);
        let mut x = -87.3f32;
        while x <= 88.3 {
            let want = (x as f64).exp();
            let err = ((exp(x) as f64 - want) / want).abs();
            if err > worst.0 {
                worst = (err, x);
            }
            x += 0.000_731;
        }
        assert!(worst.0 < 3e-7, "relative error {:e} at x = {}", worst.0, worst.1);
        for x in
            [0.0f32, -0.0, 1.0, -1.0, f32::MIN_POSITIVE, 1e-30, -1e-30, 0.346_573_6, -0.346_573_6]
        {
            let want = (x as f64).exp();
            assert!(((exp(x) as f64 - want) / want).abs() < 3e-7, "{x}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(88.4), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-87.4), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    /// The loop inside `wide` gives the values of the same loop run as built.
    #[test]
    fn a_wide_loop_gives_the_values_of_the_plain_one() {
        let xs: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.173).collect();
        let plain: Vec<f32> = xs.iter().map(|&x| exp(x)).collect();
        let mut wide_out = vec![0f32; xs.len()];
        wide(|| wide_out.iter_mut().zip(&xs).for_each(|(o, &x)| *o = exp(x)));
        assert_eq!(plain, wide_out, "the same operations in the same order, only wider lanes");
    }
}
