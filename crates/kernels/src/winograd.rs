//! Winograd's minimal filtering F(4, 3) along the columns: the 3-column, stride-1 convolutions
//! with one zero column of padding on either side (the residual blocks' 3 × 3 convolutions) in
//! half the multiply-adds of the im2col GEMM.
//!
//! Along a row, 4 consecutive outputs of a 3-tap correlation `y_s = Σ_j g_j · d_{s+j}` read 6
//! inputs `d`, and (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
//!
//! ```text
//! y = Aᵀ [(G g) ⊙ (Bᵀ d)]        G (6 × 3), Bᵀ (6 × 6), Aᵀ (4 × 6), interpolation points 0, ±1, ±2, ∞
//! ```
//!
//! With channels, each of the 6 transform points `ξ` is one GEMM over the input channels and the
//! kernel rows of a [`Band`]: `M_ξ (tiles, O) = V_ξ (tiles, rows·C) · U_ξᵀ` with `V_ξ = (Bᵀ d)_ξ`
//! per input channel and kernel row and `U_ξ = (G g)_ξ` per weight. Per 4 outputs that is 6
//! products of `rows·C` values where im2col has 4 of `rows·3·C`: half the work (on a row of 15
//! columns, 4 tiles of 4, 0.53; on 8 columns 0.5). The same identity read backwards gives the
//! gradients (`E_ξ = (A e)_ξ` for an output gradient `e`): the input gradient `Σ_ξ Bᵀ[ξ, t] ·
//! (E_ξ · U_ξ)` added onto the 6 input columns of each tile (neighbouring tiles overlap by 2), and
//! the weight gradient `Σ_ξ G[ξ, j] · (E_ξᵀ · V_ξ)`. The transforms are a few additions per value,
//! vectorised along the channels (channels-last: contiguous).
//!
//! The matrices' rows are matrices here: `V` is `POINTS` row-major `(m, kb)` matrices one after
//! the other (rows `(sample, band row, tile)`, columns `(tap group, channel)`), and so are `M`,
//! `E` `(m, O)` and the weight transforms `U (O, kb)`, `Uᵀ (kb, O)`.

use std::mem::MaybeUninit;

use crate::im2col::{Band, Geometry};

/// Output columns per tile.
pub(crate) const TILE: usize = 4;
/// Transform points, and input columns per tile: `TILE + 3 − 1`.
pub(crate) const POINTS: usize = 6;

/// `G`: the kernel's 3 taps at the 6 points.
const G: [[f32; 3]; POINTS] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Whether F(4, 3) applies to a channels-last convolution of `geometry`: 3 kernel columns,
/// column stride 1 and one zero column of padding on either side (so as many output columns as
/// input columns). The rows are the bands' business (any kernel height, stride and zero padding).
pub(crate) fn applies(g: &Geometry) -> bool {
    g.kernel[1] == 3 && g.stride[1] == 1 && g.padding[1] == 1 && g.padding[3] == 1 && !g.edge
}

/// Tiles per row of `w` output columns.
pub(crate) fn tiles(w: usize) -> usize {
    w.div_ceil(TILE)
}

/// GEMM rows of a band over `n` samples: one per sample, band row and tile.
pub(crate) fn rows(n: usize, band: &Band, w: usize) -> usize {
    n * band.rows.len() * tiles(w)
}

/// The input row kernel row `i` reads for output row `oh`, or `None` in the zero padding.
fn source(g: &Geometry, oh: usize, i: usize, h: usize) -> Option<usize> {
    let raw = (oh * g.stride[0] + i) as isize - g.padding[0] as isize;
    (0..h as isize).contains(&raw).then_some(raw as usize)
}

/// `$body(args)` compiled with AVX2 where the CPU has it (8-value lanes for the transforms'
/// loops along the channels), else as built (baseline x86-64: 4 lanes). Unlike
/// [`crate::simd::wide`] with a closure, an `#[inline(always)]` body is certain to be inlined into
/// the AVX2 copy (the transforms' closures were not: the profile showed their SSE loops).
macro_rules! with_avx2 {
    ($body:ident($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, the only requirement of `avx2`.
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}

/// `dst[i] = Σ_k terms[k].0 · terms[k].1[i]`.
#[inline(always)]
fn combine<const N: usize>(dst: &mut [f32], terms: [(f32, &[f32]); N]) {
    let len = dst.len();
    assert!(terms.iter().all(|(_, s)| s.len() == len), "winograd: term lengths");
    for i in 0..len {
        let mut s = 0.0;
        for (coef, src) in &terms {
            s += coef * src[i];
        }
        dst[i] = s;
    }
}

/// `dst[i] += Σ_k terms[k].0 · terms[k].1[i]`.
#[inline(always)]
fn accumulate<const N: usize>(dst: &mut [f32], terms: [(f32, &[f32]); N]) {
    let len = dst.len();
    assert!(terms.iter().all(|(_, s)| s.len() == len), "winograd: term lengths");
    for i in 0..len {
        let mut s = 0.0;
        for (coef, src) in &terms {
            s += coef * src[i];
        }
        dst[i] += s;
    }
}

/// [`combine`] into memory that need not be initialised.
#[inline(always)]
fn write<const N: usize>(dst: &mut [MaybeUninit<f32>], terms: [(f32, &[f32]); N]) {
    let len = dst.len();
    assert!(terms.iter().all(|(_, s)| s.len() == len), "winograd: term lengths");
    for i in 0..len {
        let mut s = 0.0;
        for (coef, src) in &terms {
            s += coef * src[i];
        }
        dst[i].write(s);
    }
}

/// `data` as its `POINTS` consecutive matrices of `size` values.
fn points_mut(data: &mut [f32], size: usize) -> [&mut [f32]; POINTS] {
    assert_eq!(data.len(), POINTS * size, "winograd: {POINTS} matrices of {size} values");
    let mut it = data.chunks_exact_mut(size.max(1));
    std::array::from_fn(|_| if size == 0 { &mut [][..] } else { it.next().expect("six matrices") })
}

fn points(data: &[f32], size: usize) -> [&[f32]; POINTS] {
    assert_eq!(data.len(), POINTS * size, "winograd: {POINTS} matrices of {size} values");
    std::array::from_fn(|k| &data[k * size..][..size])
}

/// `V = Bᵀ d` of the channels-last chunk `x (n, H, W, C)` for `band`: `POINTS` matrices
/// `(rows(n, band, W), taps·C)`, zeros read where a tap lies in the padding.
pub(crate) fn input(x: &[f32], dims: [usize; 4], g: Geometry, band: &Band, v: &mut [f32]) {
    with_avx2!(input_body(x: &[f32], dims: [usize; 4], g: Geometry, band: &Band, v: &mut [f32]))
}

/// [`input`]'s loops, inlined into its AVX2 and baseline copies.
#[inline(always)]
fn input_body(x: &[f32], [n, c, h, w]: [usize; 4], g: Geometry, band: &Band, v: &mut [f32]) {
    let (t, kb) = (tiles(w), band.taps.len() * c);
    let m = rows(n, band, w);
    assert_eq!(x.len(), n * h * w * c, "winograd input: input size");
    let v = points_mut(v, m * kb);
    if kb == 0 {
        return;
    }
    let zeros = vec![0f32; c];
    {
        let [v0, v1, v2, v3, v4, v5] = v;
        let mut row = 0;
        for b in 0..n {
            for oh in band.rows.clone() {
                for tau in 0..t {
                    for (e, group) in band.taps.iter().enumerate() {
                        let src = source(&g, oh, group[0], h);
                        let d: [&[f32]; POINTS] = std::array::from_fn(|k| {
                            let col = (tau * TILE + k) as isize - 1;
                            match src {
                                Some(r) if (0..w as isize).contains(&col) => &x[((b * h + r) * w + col as usize) * c..][..c],
                                _ => &zeros[..],
                            }
                        });
                        let at = row * kb + e * c;
                        combine(&mut v0[at..at + c], [(4.0, d[0]), (-5.0, d[2]), (1.0, d[4])]);
                        combine(&mut v1[at..at + c], [(-4.0, d[1]), (-4.0, d[2]), (1.0, d[3]), (1.0, d[4])]);
                        combine(&mut v2[at..at + c], [(4.0, d[1]), (-4.0, d[2]), (-1.0, d[3]), (1.0, d[4])]);
                        combine(&mut v3[at..at + c], [(-2.0, d[1]), (-1.0, d[2]), (2.0, d[3]), (1.0, d[4])]);
                        combine(&mut v4[at..at + c], [(2.0, d[1]), (-1.0, d[2]), (-2.0, d[3]), (1.0, d[4])]);
                        combine(&mut v5[at..at + c], [(4.0, d[1]), (-5.0, d[3]), (1.0, d[5])]);
                    }
                    row += 1;
                }
            }
        }
    }
}

/// The adjoint of [`input`]: `R` (`POINTS` matrices `(rows, taps·C)`) added onto the input
/// gradient `dx (n, H, W, C)` as `Bᵀ[ξ, t] · R_ξ` on each tile's 6 input columns (the padding's
/// dropped).
pub(crate) fn input_adjoint(r: &[f32], dims: [usize; 4], g: Geometry, band: &Band, dx: &mut [f32]) {
    with_avx2!(input_adjoint_body(r: &[f32], dims: [usize; 4], g: Geometry, band: &Band, dx: &mut [f32]))
}

/// [`input_adjoint`]'s loops, inlined into its AVX2 and baseline copies.
#[inline(always)]
fn input_adjoint_body(r: &[f32], [n, c, h, w]: [usize; 4], g: Geometry, band: &Band, dx: &mut [f32]) {
    let (t, kb) = (tiles(w), band.taps.len() * c);
    let m = rows(n, band, w);
    assert_eq!(dx.len(), n * h * w * c, "winograd input adjoint: gradient size");
    let r = points(r, m * kb);
    if kb == 0 {
        return;
    }
    {
        let mut row = 0;
        for b in 0..n {
            for oh in band.rows.clone() {
                for tau in 0..t {
                    for (e, group) in band.taps.iter().enumerate() {
                        let Some(src) = source(&g, oh, group[0], h) else { continue };
                        let at = row * kb + e * c;
                        let p: [&[f32]; POINTS] = std::array::from_fn(|k| &r[k][at..at + c]);
                        for k in 0..POINTS {
                            let col = (tau * TILE + k) as isize - 1;
                            if !(0..w as isize).contains(&col) {
                                continue;
                            }
                            let dst = &mut dx[((b * h + src) * w + col as usize) * c..][..c];
                            match k {
                                0 => accumulate(dst, [(4.0, p[0])]),
                                1 => accumulate(dst, [(-4.0, p[1]), (4.0, p[2]), (-2.0, p[3]), (2.0, p[4]), (4.0, p[5])]),
                                2 => accumulate(dst, [(-5.0, p[0]), (-4.0, p[1]), (-4.0, p[2]), (-1.0, p[3]), (-1.0, p[4])]),
                                3 => accumulate(dst, [(1.0, p[1]), (-1.0, p[2]), (2.0, p[3]), (-2.0, p[4]), (-5.0, p[5])]),
                                4 => accumulate(dst, [(1.0, p[0]), (1.0, p[1]), (1.0, p[2]), (1.0, p[3]), (1.0, p[4])]),
                                _ => accumulate(dst, [(1.0, p[5])]),
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

/// `y = Aᵀ M (+ bias)` written into the band's rows of the channels-last chunk output `y (n, Ho,
/// W, O)` (`M`: `POINTS` matrices `(rows, O)`), the last tile's columns past `W` dropped.
pub(crate) fn output(mm: &[f32], n: usize, band: &Band, w: usize, o: usize, bias: Option<&[f32]>, y: &mut [MaybeUninit<f32>]) {
    with_avx2!(output_body(mm: &[f32], n: usize, band: &Band, w: usize, o: usize, bias: Option<&[f32]>, y: &mut [MaybeUninit<f32>]))
}

/// [`output`]'s loops, inlined into its AVX2 and baseline copies.
#[inline(always)]
fn output_body(mm: &[f32], n: usize, band: &Band, w: usize, o: usize, bias: Option<&[f32]>, y: &mut [MaybeUninit<f32>]) {
    let t = tiles(w);
    let m = rows(n, band, w);
    let mm = points(mm, m * o);
    let zeros = vec![0f32; o];
    let bias = match bias {
        Some(b) if !b.is_empty() => b,
        _ => &zeros[..],
    };
    assert_eq!(bias.len(), o, "winograd output: bias size");
    let sample = y.len() / n.max(1);
    {
        let mut row = 0;
        for b in 0..n {
            for oh in band.rows.clone() {
                for tau in 0..t {
                    let p: [&[f32]; POINTS] = std::array::from_fn(|k| &mm[k][row * o..][..o]);
                    for s in 0..TILE.min(w - tau * TILE) {
                        let dst = &mut y[b * sample + (oh * w + tau * TILE + s) * o..][..o];
                        match s {
                            0 => write(dst, [(1.0, p[0]), (1.0, p[1]), (1.0, p[2]), (1.0, p[3]), (1.0, p[4]), (1.0, bias)]),
                            1 => write(dst, [(1.0, p[1]), (-1.0, p[2]), (2.0, p[3]), (-2.0, p[4]), (1.0, bias)]),
                            2 => write(dst, [(1.0, p[1]), (1.0, p[2]), (4.0, p[3]), (4.0, p[4]), (1.0, bias)]),
                            _ => write(dst, [(1.0, p[1]), (-1.0, p[2]), (8.0, p[3]), (-8.0, p[4]), (1.0, p[5]), (1.0, bias)]),
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

/// The adjoint of [`output`]'s product: `E = A e` of the channels-last chunk output gradient
/// `e (n, Ho, W, O)` for the band's rows (`POINTS` matrices `(rows, O)`), zeros past column `W`.
pub(crate) fn output_adjoint(e: &[f32], n: usize, band: &Band, w: usize, o: usize, out: &mut [f32]) {
    with_avx2!(output_adjoint_body(e: &[f32], n: usize, band: &Band, w: usize, o: usize, out: &mut [f32]))
}

/// [`output_adjoint`]'s loops, inlined into its AVX2 and baseline copies.
#[inline(always)]
fn output_adjoint_body(e: &[f32], n: usize, band: &Band, w: usize, o: usize, out: &mut [f32]) {
    let t = tiles(w);
    let m = rows(n, band, w);
    let sample = e.len() / n.max(1);
    let out = points_mut(out, m * o);
    let zeros = vec![0f32; o];
    {
        let [e0, e1, e2, e3, e4, e5] = out;
        let mut row = 0;
        for b in 0..n {
            for oh in band.rows.clone() {
                for tau in 0..t {
                    let g: [&[f32]; TILE] = std::array::from_fn(|s| {
                        let col = tau * TILE + s;
                        if col < w { &e[b * sample + (oh * w + col) * o..][..o] } else { &zeros[..] }
                    });
                    let at = row * o;
                    combine(&mut e0[at..at + o], [(1.0, g[0])]);
                    combine(&mut e1[at..at + o], [(1.0, g[0]), (1.0, g[1]), (1.0, g[2]), (1.0, g[3])]);
                    combine(&mut e2[at..at + o], [(1.0, g[0]), (-1.0, g[1]), (1.0, g[2]), (-1.0, g[3])]);
                    combine(&mut e3[at..at + o], [(1.0, g[0]), (2.0, g[1]), (4.0, g[2]), (8.0, g[3])]);
                    combine(&mut e4[at..at + o], [(1.0, g[0]), (-2.0, g[1]), (4.0, g[2]), (-8.0, g[3])]);
                    combine(&mut e5[at..at + o], [(1.0, g[3])]);
                    row += 1;
                }
            }
        }
    }
}

/// A band's weight transform from the permuted weight `wp (O, kh·3·C)` (order `(i, j, c)`): `U =
/// G g` as `POINTS` matrices `(O, taps·C)`, or with `transposed` as their transposes `(taps·C,
/// O)` (a tap group's kernel rows summed).
pub(crate) fn weights(wp: &[f32], [o, kh, c]: [usize; 3], band: &Band, transposed: bool) -> Vec<f32> {
    let (k, kb) = (kh * 3 * c, band.taps.len() * c);
    assert_eq!(wp.len(), o * k, "winograd weights: size");
    let mut u = vec![0f32; POINTS * o * kb];
    for oi in 0..o {
        for (e, group) in band.taps.iter().enumerate() {
            for &i in group {
                let taps: [&[f32]; 3] = std::array::from_fn(|j| &wp[oi * k + (i * 3 + j) * c..][..c]);
                for (xi, coef) in G.iter().enumerate() {
                    accumulate(&mut u[(xi * o + oi) * kb + e * c..][..c], [(coef[0], taps[0]), (coef[1], taps[1]), (coef[2], taps[2])]);
                }
            }
        }
    }
    if !transposed {
        return u;
    }
    let mut ut = vec![0f32; POINTS * o * kb];
    for xi in 0..POINTS {
        for (oi, row) in u[xi * o * kb..][..o * kb].chunks_exact(kb.max(1)).enumerate() {
            for (col, &v) in row.iter().enumerate() {
                ut[(xi * kb + col) * o + oi] = v;
            }
        }
    }
    ut
}

/// The adjoint of [`weights`]' `U`: `P` (`POINTS` matrices `(O, taps·C)`, the products `E_ξᵀ ·
/// V_ξ`) added into the permuted weight gradient `dw (O, kh·3·C)` as `G[ξ, j] · P_ξ` on every
/// kernel row of each tap group.
pub(crate) fn add_weight_grad(dw: &mut [f32], p: &[f32], [o, kh, c]: [usize; 3], band: &Band) {
    let (k, kb) = (kh * 3 * c, band.taps.len() * c);
    assert_eq!(dw.len(), o * k, "winograd weight gradient: size");
    let p = points(p, o * kb);
    for oi in 0..o {
        for (e, group) in band.taps.iter().enumerate() {
            let src: [&[f32]; POINTS] = std::array::from_fn(|xi| &p[xi][oi * kb + e * c..][..c]);
            for &i in group {
                for j in 0..3 {
                    let dst = &mut dw[oi * k + (i * 3 + j) * c..][..c];
                    for (xi, s) in src.iter().enumerate() {
                        let gj = G[xi][j];
                        if gj != 0.0 {
                            dst.iter_mut().zip(s.iter()).for_each(|(d, v)| *d += gj * v);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104_729) % 97) as f32 / 97.0 - 0.5).collect()
    }

    /// The 3 × 3 (zero padding 1) convolution of `x (n, h, w, c)` with `wp (o, (i, j, c))` by
    /// definition, in f64, channels-last.
    fn direct(x: &[f32], [n, c, h, w]: [usize; 4], wp: &[f32], o: usize, kh: usize, top: usize) -> Vec<f64> {
        let ho = h + 2 * top + 1 - kh;
        let mut y = vec![0f64; n * ho * w * o];
        for b in 0..n {
            for oh in 0..ho {
                for ow in 0..w {
                    for oi in 0..o {
                        let mut s = 0f64;
                        for i in 0..kh {
                            for j in 0..3 {
                                let (r, col) = ((oh + i) as isize - top as isize, (ow + j) as isize - 1);
                                if (0..h as isize).contains(&r) && (0..w as isize).contains(&col) {
                                    for ci in 0..c {
                                        s += x[((b * h + r as usize) * w + col as usize) * c + ci] as f64 * wp[oi * kh * 3 * c + (i * 3 + j) * c + ci] as f64;
                                    }
                                }
                            }
                        }
                        y[((b * ho + oh) * w + ow) * o + oi] = s;
                    }
                }
            }
        }
        y
    }

    /// The band-wise forward through the transforms and a naive product per point.
    fn forward(x: &[f32], dims: [usize; 4], g: Geometry, bands: &[Band], wp: &[f32], o: usize, bias: &[f32]) -> Vec<f32> {
        let [n, c, h, w] = dims;
        let [ho, _] = g.output(h, w);
        let mut y = vec![MaybeUninit::new(f32::NAN); n * ho * w * o];
        for band in bands {
            let (m, kb) = (rows(n, band, w), band.taps.len() * c);
            let mut v = vec![0f32; POINTS * m * kb];
            input(x, dims, g, band, &mut v);
            let ut = weights(wp, [o, g.kernel[0], c], band, true);
            let mut mm = vec![0f32; POINTS * m * o];
            for xi in 0..POINTS {
                for r in 0..m {
                    for oi in 0..o {
                        mm[(xi * m + r) * o + oi] = (0..kb).map(|q| v[(xi * m + r) * kb + q] * ut[(xi * kb + q) * o + oi]).sum();
                    }
                }
            }
            output(&mm, n, band, w, o, Some(bias), &mut y);
        }
        y.into_iter().map(|v| unsafe { v.assume_init() }).collect()
    }

    #[test]
    fn f43_forward_equals_the_direct_convolution_in_bands_and_whole() {
        // Widths with a full last tile, a partial one and a single short tile; 5 rows (the
        // model's) and 3; the bands of the padded rows and the whole matrix as one band.
        for (n, c, h, w, o) in [(2, 3, 5, 8, 4), (1, 5, 5, 15, 3), (3, 2, 3, 3, 2), (1, 4, 5, 1, 2), (2, 3, 4, 9, 5)] {
            let g = Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], edge: false };
            assert!(applies(&g));
            let x = values(n * h * w * c, 1);
            let wp = values(o * 9 * c, 2);
            let bias = values(o, 3);
            let want = direct(&x, [n, c, h, w], &wp, o, 3, 1);
            let whole = [Band { rows: 0..h, taps: vec![vec![0], vec![1], vec![2]] }];
            for bands in [g.bands(h, w), whole.to_vec()] {
                let got = forward(&x, [n, c, h, w], g, &bands, &wp, o, &bias);
                for (idx, (a, b)) in got.iter().zip(&want).enumerate() {
                    let b = b + bias[idx % o] as f64;
                    assert!((*a as f64 - b).abs() < 1e-5, "{n}×{c}×{h}×{w}→{o}, bands {}: value {idx}: {a} vs {b}", bands.len());
                }
            }
        }
    }

    /// `⟨input(x), r⟩ = ⟨x, input_adjoint(r)⟩` and `⟨output(m), e⟩ = ⟨m, output_adjoint(e)⟩` and
    /// `⟨weights(w), p⟩ = ⟨w, add_weight_grad(p)⟩`: each backward transform is the adjoint of
    /// its forward one (so the gradients are those of the forward).
    #[test]
    fn the_backward_transforms_are_the_adjoints_of_the_forward_ones() {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
        let (n, c, h, w, o) = (2, 3, 5, 10, 4);
        let g = Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], edge: false };
        for band in g.bands(h, w) {
            let (m, kb) = (rows(n, &band, w), band.taps.len() * c);
            let x = values(n * h * w * c, 4);
            let r = values(POINTS * m * kb, 5);
            let mut v = vec![0f32; POINTS * m * kb];
            input(&x, [n, c, h, w], g, &band, &mut v);
            let mut dx = vec![0f32; x.len()];
            input_adjoint(&r, [n, c, h, w], g, &band, &mut dx);
            let (lhs, rhs) = (dot(&v, &r), dot(&x, &dx));
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "input: {lhs} vs {rhs}");

            let mm = values(POINTS * m * o, 6);
            let e = values(n * h * w * o, 7);
            let mut y = vec![MaybeUninit::new(0f32); n * h * w * o];
            output(&mm, n, &band, w, o, None, &mut y);
            let y: Vec<f32> = y.into_iter().map(|v| unsafe { v.assume_init() }).collect();
            // Only the band's rows were written: the inner product over them.
            let in_band: Vec<f32> = e.iter().enumerate().map(|(i, v)| if band.rows.contains(&((i / (w * o)) % h)) { *v } else { 0.0 }).collect();
            let mut ea = vec![0f32; POINTS * m * o];
            output_adjoint(&e, n, &band, w, o, &mut ea);
            let (lhs, rhs) = (dot(&y, &in_band), dot(&mm, &ea));
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "output: {lhs} vs {rhs}");

            let wp = values(o * 9 * c, 8);
            let p = values(POINTS * o * kb, 9);
            let (u, ut) = (weights(&wp, [o, 3, c], &band, false), weights(&wp, [o, 3, c], &band, true));
            let mut dw = vec![0f32; wp.len()];
            add_weight_grad(&mut dw, &p, [o, 3, c], &band);
            let (lhs, rhs) = (dot(&u, &p), dot(&wp, &dw));
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "weights: {lhs} vs {rhs}");
            for xi in 0..POINTS {
                for oi in 0..o {
                    for q in 0..kb {
                        assert_eq!(u[(xi * o + oi) * kb + q], ut[(xi * kb + q) * o + oi], "Uᵀ");
                    }
                }
            }
        }
    }
}
