//! Winograd's minimal filtering along the columns: the convolutions of the VQ-VAE whose kernels
//! are 3 columns wide at stride 1 (the residual blocks' 3 × 3) or 4 wide at stride 2 (the
//! encoder's strided 3 × 4 and, as their adjoints, the decoder's transposed ones) in 1/2 and 2/3
//! of the multiply-adds of the im2col GEMM.
//!
//! Along a row, `m` consecutive outputs of an `r`-tap correlation `y_s = Σ_u g_u · d_{s+u}` read
//! `m + r − 1` inputs `d`, and (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2016; Toom–Cook interpolation at the points 0, ±1, ±2, …, ∞)
//!
//! ```text
//! y = Aᵀ [(G g) ⊙ (Bᵀ d)]        Aᵀ (m × n), G (n × r), Bᵀ (n × n), n = m + r − 1 points
//! ```
//!
//! A column stride of 2 with 4 taps is two such correlations (polyphase): the even taps read the
//! odd input columns and the odd taps the even ones, each a 2-tap, stride-1 correlation of its
//! phase, so F(3, 2) per phase. The schemes: [`F43`] (4 outputs per 6 points, 3 taps, stride 1)
//! and [`F32_STRIDE2`] (3 outputs per 4 points, 2 taps per phase, 2 phases).
//!
//! With channels, each transform point `ξ` is one GEMM over the phases, the kernel rows of a
//! [`Band`] and the input channels: `M_ξ (tiles, O) = V_ξ (tiles, phases·rows·C) · U_ξᵀ` with `V_ξ
//! = (Bᵀ d)_ξ` per phase, kernel row and channel and `U_ξ = (G g)_ξ` per weight. Per `m` outputs
//! that is `n` products of `phases·rows·C` values where im2col has `m` of `rows·kw·C`: 6·3 / (4·3·3)
//! = 1/2 for F(4, 3), 4·2 / (3·4) = 2/3 for F(3, 2) on two phases (a little more where a row's
//! last tile is partly past its end). The same identity read backwards gives the gradients (`E_ξ =
//! (A e)_ξ` for an output gradient `e`): the input gradient `Σ_ξ Bᵀ[ξ, t] · (E_ξ · U_ξ)` added onto
//! each tile's input columns (neighbouring tiles overlap), and the weight gradient `Σ_ξ G[ξ, u] ·
//! (E_ξᵀ · V_ξ)`. The transforms are a few additions per value, vectorised along the channels
//! (channels-last: contiguous).
//!
//! Padding: a tap in the zero padding reads zeros (its gradient is dropped); in a replicate
//! padding it reads the edge column or row (its gradient is added there). Input columns a tile
//! reads past the padded row (only for outputs past the row's end, which are dropped) read zeros.
//!
//! The matrices' rows are matrices here: `V` is `n` row-major `(m, kb)` matrices one after the
//! other (rows `(sample, band row, tile)`, columns `(phase, tap group, channel)`), and so are `M`,
//! `E` `(m, O)` and the weight transforms `U (O, kb)`, `Uᵀ (kb, O)`.

use std::mem::MaybeUninit;

use crate::im2col::{Band, Geometry};

/// A Winograd scheme along the columns: `tile` outputs of a `taps`-tap correlation per phase from
/// `points()` inputs, over `stride` phases (the column stride; the kernel has `stride · taps`
/// columns).
#[derive(Debug)]
pub(crate) struct Scheme {
    pub(crate) tile: usize,
    pub(crate) taps: usize,
    pub(crate) stride: usize,
    /// Which [`Table`] the transforms compile in.
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    F43,
    F32Stride2,
}

/// A scheme's interpolation matrices as constants (padded to 6 columns), so that the transforms'
/// loops over points and taps unroll and their zero coefficients drop out at compile time
/// (read from a [`Scheme`] at run time, the loops kept a branch and a broadcast per coefficient
/// and the transforms cost more than the multiply-adds they saved).
trait Table {
    const TILE: usize;
    const STRIDE: usize;
    const POINTS: usize;
    /// Taps per phase.
    const TAPS: usize;
    /// `G (POINTS × TAPS)`.
    const G: [[f32; 3]; 6];
    /// `Aᵀ (TILE × POINTS)`.
    const AT: [[f32; 6]; 4];
    /// `Bᵀ (POINTS × POINTS)`.
    const BT: [[f32; 6]; 6];
}

/// F(4, 3)'s matrices.
struct F43Table;
/// F(3, 2)'s matrices (per phase).
struct F32Table;

impl Table for F43Table {
    const TILE: usize = 4;
    const STRIDE: usize = 1;
    const POINTS: usize = 6;
    const TAPS: usize = 3;
    const G: [[f32; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f32; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];
    const BT: [[f32; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
}

impl Table for F32Table {
    const TILE: usize = 3;
    const STRIDE: usize = 2;
    const POINTS: usize = 4;
    const TAPS: usize = 2;
    const G: [[f32; 3]; 6] =
        [[-1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 1.0, 0.0], [0.0; 3], [0.0; 3]];
    const AT: [[f32; 6]; 4] = [
        [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, -1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
        [0.0; 6],
    ];
    const BT: [[f32; 6]; 6] = [
        [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, 1.0, 0.0, 0.0],
        [0.0; 6],
        [0.0; 6],
    ];
}

/// F(4, 3) at the points 0, ±1, ±2, ∞, for 3-column kernels at stride 1.
pub(crate) const F43: Scheme = Scheme { tile: 4, taps: 3, stride: 1, kind: Kind::F43 };

/// F(3, 2) at the points 0, ±1, ∞ on each of 2 phases, for 4-column kernels at stride 2.
pub(crate) const F32_STRIDE2: Scheme =
    Scheme { tile: 3, taps: 2, stride: 2, kind: Kind::F32Stride2 };

impl Scheme {
    /// Transform points, and input columns per tile and phase: `tile + taps − 1`.
    pub(crate) fn points(&self) -> usize {
        self.tile + self.taps - 1
    }

    /// Tiles per row of `wo` output columns.
    pub(crate) fn tiles(&self, wo: usize) -> usize {
        wo.div_ceil(self.tile)
    }

    /// GEMM rows of a band over `n` samples: one per sample, band row and tile.
    pub(crate) fn rows(&self, n: usize, band: &Band, wo: usize) -> usize {
        n * band.rows.len() * self.tiles(wo)
    }

    /// The inner dimension of a band's GEMMs: phases × tap groups × channels.
    pub(crate) fn width(&self, band: &Band, c: usize) -> usize {
        self.stride * band.taps.len() * c
    }
}

/// The scheme for a channels-last convolution of `geometry` (any kernel height, row stride and
/// padding: the rows are the bands' business), if any: 3 kernel columns at column stride 1, or 4
/// at stride 2.
pub(crate) fn scheme(g: &Geometry) -> Option<&'static Scheme> {
    match (g.kernel[1], g.stride[1]) {
        (3, 1) => Some(&F43),
        (4, 2) => Some(&F32_STRIDE2),
        _ => None,
    }
}

/// The input index a padded index `raw` reads along an axis of `len` with `before` / `after`
/// padding: itself inside, the edge in a replicate padding, `None` in a zero padding or past the
/// padded axis.
fn source(raw: isize, len: usize, [before, after]: [usize; 2], edge: bool) -> Option<usize> {
    if (0..len as isize).contains(&raw) {
        Some(raw as usize)
    } else if edge && raw >= -(before as isize) && raw < (len + after) as isize {
        Some(raw.clamp(0, len as isize - 1) as usize)
    } else {
        None
    }
}

/// The input row tap group `group` of a band reads for output row `oh`.
fn source_row(g: &Geometry, oh: usize, group: &[usize], h: usize) -> Option<usize> {
    source(
        (oh * g.stride[0] + group[0]) as isize - g.padding[0] as isize,
        h,
        [g.padding[0], g.padding[2]],
        g.edge,
    )
}

/// The input column phase `phase` of a tile starting at output column `first` reads at point `t`.
fn source_col(
    g: &Geometry,
    stride: usize,
    first: usize,
    phase: usize,
    t: usize,
    w: usize,
) -> Option<usize> {
    source(
        (stride * (first + t) + phase) as isize - g.padding[1] as isize,
        w,
        [g.padding[1], g.padding[3]],
        g.edge,
    )
}

/// `$body::<T>(args)` compiled with AVX2 where the CPU has it (8-value lanes for the transforms'
/// loops along the channels), else as built (baseline x86-64: 4 lanes). Unlike
/// [`crate::simd::wide`] with a closure, an `#[inline(always)]` body is certain to be inlined into
/// the AVX2 copy (the transforms' closures were not: the profile showed their SSE loops).
macro_rules! with_avx2 {
    ($body:ident::<$t:ident>($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2<$t: Table>($($arg: $ty),*) {
                $body::<$t>($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, the only requirement of `avx2`.
                return unsafe { avx2::<$t>($($arg),*) };
            }
        }
        $body::<$t>($($arg),*)
    }};
}

/// `$name(scheme, args)`: `$generic::<F43Table>` or `$generic::<F32Table>` by the scheme.
macro_rules! by_table {
    ($scheme:expr, $generic:ident($($arg:expr),*)) => {
        match $scheme.kind {
            Kind::F43 => $generic::<F43Table>($($arg),*),
            Kind::F32Stride2 => $generic::<F32Table>($($arg),*),
        }
    };
}

/// For every 8 channels: `out_k = Σ_{t < n} coef(k, t) · srcs[t]` for `k < outs` (at most 8
/// sources), each handed to `store(k, first channel, values)`: the sources' 8 lanes are loaded
/// once and every output is a few vector multiply-adds in registers. Called with `n`, `outs` and
/// `coef` from a [`Table`]'s constants (the hot transforms), the loops unroll and the zero
/// coefficients drop out (the weight transform, once per pass, and its adjoint, once per chunk
/// and band, too, with the table's `G`).
#[inline(always)]
fn transform(
    c: usize,
    srcs: &[&[f32]],
    n: usize,
    outs: usize,
    coef: impl Fn(usize, usize) -> f32,
    mut store: impl FnMut(usize, usize, &[f32]),
) {
    const LANES: usize = 8;
    assert!(
        n <= 8 && srcs.len() >= n && srcs[..n].iter().all(|s| s.len() >= c),
        "winograd: at most 8 sources of {c} values"
    );
    let mut v = [[0f32; LANES]; 8];
    let mut i = 0;
    while i + LANES <= c {
        for (vt, src) in v.iter_mut().zip(&srcs[..n]) {
            vt.copy_from_slice(&src[i..i + LANES]);
        }
        for k in 0..outs {
            let mut acc = [0f32; LANES];
            for (t, vt) in v[..n].iter().enumerate() {
                let cf = coef(k, t);
                if cf != 0.0 {
                    for (a, x) in acc.iter_mut().zip(vt) {
                        *a += cf * x;
                    }
                }
            }
            store(k, i, &acc);
        }
        i += LANES;
    }
    // The channels past the last multiple of 8, one at a time.
    while i < c {
        for k in 0..outs {
            let mut acc = 0f32;
            for (t, src) in srcs[..n].iter().enumerate() {
                acc += coef(k, t) * src[i];
            }
            store(k, i, &[acc]);
        }
        i += 1;
    }
}

/// The `points` consecutive matrices of `size` values of `data`.
fn split_points(data: &mut [f32], points: usize, size: usize) -> Vec<&mut [f32]> {
    assert_eq!(data.len(), points * size, "winograd: {points} matrices of {size} values");
    if size == 0 {
        return (0..points).map(|_| &mut [][..]).collect();
    }
    data.chunks_exact_mut(size).collect()
}

/// `V = Bᵀ d` of the channels-last chunk `x (n, H, W, C)` for `band`: `points` matrices
/// `(rows, width)`.
pub(crate) fn input(
    s: &Scheme,
    x: &[f32],
    dims: [usize; 4],
    g: Geometry,
    band: &Band,
    v: &mut [f32],
) {
    by_table!(s, input_t(x, dims, g, band, v))
}

fn input_t<T: Table>(x: &[f32], dims: [usize; 4], g: Geometry, band: &Band, v: &mut [f32]) {
    with_avx2!(input_body::<T>(x: &[f32], dims: [usize; 4], g: Geometry, band: &Band, v: &mut [f32]))
}

#[inline(always)]
fn input_body<T: Table>(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    g: Geometry,
    band: &Band,
    v: &mut [f32],
) {
    let [_, wo] = g.output(h, w);
    let (np, tiles, groups) = (T::POINTS, wo.div_ceil(T::TILE), band.taps.len());
    let (kb, m) = (T::STRIDE * groups * c, n * band.rows.len() * tiles);
    assert_eq!(x.len(), n * h * w * c, "winograd input: input size");
    let mut v = split_points(v, np, m * kb);
    if kb == 0 {
        return;
    }
    let zeros = vec![0f32; c];
    let mut d: [&[f32]; 8] = [&zeros[..]; 8];
    let mut row = 0;
    for b in 0..n {
        for oh in band.rows.clone() {
            for tau in 0..tiles {
                for (e, group) in band.taps.iter().enumerate() {
                    let src = source_row(&g, oh, group, h);
                    for phase in 0..T::STRIDE {
                        for (t, d) in d.iter_mut().enumerate().take(np) {
                            *d = match (src, source_col(&g, T::STRIDE, tau * T::TILE, phase, t, w))
                            {
                                (Some(r), Some(col)) => &x[((b * h + r) * w + col) * c..][..c],
                                _ => &zeros[..],
                            };
                        }
                        let at = row * kb + (phase * groups + e) * c;
                        transform(
                            c,
                            &d,
                            np,
                            np,
                            |xi, t| T::BT[xi][t],
                            |xi, i, vals| v[xi][at + i..][..vals.len()].copy_from_slice(vals),
                        );
                    }
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`input`]: `R` (`points` matrices `(rows, width)`) added onto the input gradient
/// `dx (n, H, W, C)` as `Bᵀ[ξ, t] · R_ξ` on each tile's input columns.
pub(crate) fn input_adjoint(
    s: &Scheme,
    r: &[f32],
    dims: [usize; 4],
    g: Geometry,
    band: &Band,
    dx: &mut [f32],
) {
    by_table!(s, input_adjoint_t(r, dims, g, band, dx))
}

fn input_adjoint_t<T: Table>(
    r: &[f32],
    dims: [usize; 4],
    g: Geometry,
    band: &Band,
    dx: &mut [f32],
) {
    with_avx2!(input_adjoint_body::<T>(r: &[f32], dims: [usize; 4], g: Geometry, band: &Band, dx: &mut [f32]))
}

// The same loop nest as `input_body`'s, written out again on purpose: shared as a function that
// takes the loop body as a closure, the closure was not inlined into the AVX2 copies and both
// transforms ran 5–10 % slower per convolution (`conv_throughput`).
#[inline(always)]
fn input_adjoint_body<T: Table>(
    r: &[f32],
    [n, c, h, w]: [usize; 4],
    g: Geometry,
    band: &Band,
    dx: &mut [f32],
) {
    let [_, wo] = g.output(h, w);
    let (np, tiles, groups) = (T::POINTS, wo.div_ceil(T::TILE), band.taps.len());
    let (kb, m) = (T::STRIDE * groups * c, n * band.rows.len() * tiles);
    assert_eq!(dx.len(), n * h * w * c, "winograd input adjoint: gradient size");
    assert_eq!(r.len(), np * m * kb, "winograd input adjoint: size");
    if kb == 0 {
        return;
    }
    let mut p: [&[f32]; 8] = [&[][..]; 8];
    let mut cols = [None; 8];
    let mut row = 0;
    for b in 0..n {
        for oh in band.rows.clone() {
            for tau in 0..tiles {
                for (e, group) in band.taps.iter().enumerate() {
                    let Some(src) = source_row(&g, oh, group, h) else { continue };
                    for phase in 0..T::STRIDE {
                        let at = row * kb + (phase * groups + e) * c;
                        for xi in 0..np {
                            p[xi] = &r[xi * m * kb + at..][..c];
                            cols[xi] = source_col(&g, T::STRIDE, tau * T::TILE, phase, xi, w);
                        }
                        transform(
                            c,
                            &p,
                            np,
                            np,
                            |t, xi| T::BT[xi][t],
                            |t, i, vals| {
                                if let Some(col) = cols[t] {
                                    let dst =
                                        &mut dx[((b * h + src) * w + col) * c + i..][..vals.len()];
                                    dst.iter_mut().zip(vals).for_each(|(d, v)| *d += v);
                                }
                            },
                        );
                    }
                }
                row += 1;
            }
        }
    }
}

/// `y = Aᵀ M (+ bias)` written into the band's rows of the channels-last chunk output `y (n, Ho,
/// Wo, O)` (`M`: `points` matrices `(rows, O)`), the last tile's columns past `Wo` dropped.
#[allow(
    clippy::too_many_arguments,
    reason = "the operands and geometry of one kernel call, as its siblings take them"
)]
pub(crate) fn output(
    s: &Scheme,
    mm: &[f32],
    n: usize,
    band: &Band,
    wo: usize,
    o: usize,
    bias: Option<&[f32]>,
    y: &mut [MaybeUninit<f32>],
) {
    by_table!(s, output_t(mm, n, band, wo, o, bias, y))
}

fn output_t<T: Table>(
    mm: &[f32],
    n: usize,
    band: &Band,
    wo: usize,
    o: usize,
    bias: Option<&[f32]>,
    y: &mut [MaybeUninit<f32>],
) {
    with_avx2!(output_body::<T>(mm: &[f32], n: usize, band: &Band, wo: usize, o: usize, bias: Option<&[f32]>, y: &mut [MaybeUninit<f32>]))
}

#[inline(always)]
fn output_body<T: Table>(
    mm: &[f32],
    n: usize,
    band: &Band,
    wo: usize,
    o: usize,
    bias: Option<&[f32]>,
    y: &mut [MaybeUninit<f32>],
) {
    let (np, tiles) = (T::POINTS, wo.div_ceil(T::TILE));
    let m = n * band.rows.len() * tiles;
    assert_eq!(mm.len(), np * m * o, "winograd output: size");
    let zeros = vec![0f32; o];
    let bias = match bias {
        Some(b) if !b.is_empty() => b,
        _ => &zeros[..],
    };
    assert_eq!(bias.len(), o, "winograd output: bias size");
    let sample = y.len() / n.max(1);
    let mut terms: [&[f32]; 8] = [&zeros[..]; 8];
    let mut row = 0;
    for b in 0..n {
        for oh in band.rows.clone() {
            for tau in 0..tiles {
                for (xi, term) in terms.iter_mut().take(np).enumerate() {
                    *term = &mm[(xi * m + row) * o..][..o];
                }
                terms[np] = bias;
                let (base, count) =
                    (b * sample + (oh * wo + tau * T::TILE) * o, T::TILE.min(wo - tau * T::TILE));
                transform(
                    o,
                    &terms,
                    np + 1,
                    T::TILE,
                    |k, t| if t < np { T::AT[k][t] } else { 1.0 },
                    |k, i, vals| {
                        if k < count {
                            y[base + k * o + i..][..vals.len()].iter_mut().zip(vals).for_each(
                                |(d, &v)| {
                                    d.write(v);
                                },
                            );
                        }
                    },
                );
                row += 1;
            }
        }
    }
}

/// The adjoint of [`output`]'s product: `E = A e` of the channels-last chunk output gradient `e
/// (n, Ho, Wo, O)` for the band's rows (`points` matrices `(rows, O)`), zeros past column `Wo`.
pub(crate) fn output_adjoint(
    s: &Scheme,
    e: &[f32],
    n: usize,
    band: &Band,
    wo: usize,
    o: usize,
    out: &mut [f32],
) {
    by_table!(s, output_adjoint_t(e, n, band, wo, o, out))
}

fn output_adjoint_t<T: Table>(
    e: &[f32],
    n: usize,
    band: &Band,
    wo: usize,
    o: usize,
    out: &mut [f32],
) {
    with_avx2!(output_adjoint_body::<T>(e: &[f32], n: usize, band: &Band, wo: usize, o: usize, out: &mut [f32]))
}

#[inline(always)]
fn output_adjoint_body<T: Table>(
    e: &[f32],
    n: usize,
    band: &Band,
    wo: usize,
    o: usize,
    out: &mut [f32],
) {
    let (np, tiles) = (T::POINTS, wo.div_ceil(T::TILE));
    let m = n * band.rows.len() * tiles;
    let sample = e.len() / n.max(1);
    let mut out = split_points(out, np, m * o);
    let zeros = vec![0f32; o];
    let mut gs: [&[f32]; 8] = [&zeros[..]; 8];
    let mut row = 0;
    for b in 0..n {
        for oh in band.rows.clone() {
            for tau in 0..tiles {
                for (k, gk) in gs.iter_mut().enumerate().take(T::TILE) {
                    let col = tau * T::TILE + k;
                    *gk = if col < wo {
                        &e[b * sample + (oh * wo + col) * o..][..o]
                    } else {
                        &zeros[..]
                    };
                }
                transform(
                    o,
                    &gs,
                    T::TILE,
                    np,
                    |xi, k| T::AT[k][xi],
                    |xi, i, vals| out[xi][row * o + i..][..vals.len()].copy_from_slice(vals),
                );
                row += 1;
            }
        }
    }
}

/// A band's weight transform from the permuted weight `wp (O, kh·kw·C)` (order `(i, j, c)`): `U =
/// G g` as `points` matrices `(O, width)`, or with `transposed` as their transposes `(width, O)`
/// (a tap group's kernel rows summed).
pub(crate) fn weights(
    s: &Scheme,
    wp: &[f32],
    dims: [usize; 3],
    band: &Band,
    transposed: bool,
) -> Vec<f32> {
    use rayon::prelude::*;
    let (np, [o, _, c]) = (s.points(), dims);
    let kb = s.width(band, c);
    let mut u = crate::buffers::zeroed(np * o * kb);
    if u.is_empty() {
        return u;
    }
    // In parallel over runs of output channels (a run's rows of every point's matrix are its
    // own), once per pass: on one thread most of its profile samples had the other core idle
    // (the stage-1 profiles in docs/benchmarks-history.md).
    let per = o.div_ceil(2 * rayon::current_num_threads().max(1)).max(1);
    let mut runs: Vec<Vec<&mut [f32]>> =
        (0..o.div_ceil(per)).map(|_| Vec::with_capacity(np)).collect();
    for point in u.chunks_exact_mut(o * kb) {
        for (run, rows) in runs.iter_mut().zip(point.chunks_mut(per * kb)) {
            run.push(rows);
        }
    }
    runs.into_par_iter()
        .enumerate()
        .for_each(|(r, mut rows)| by_table!(s, weights_t(wp, dims, band, r * per, &mut rows)));
    if !transposed {
        return u;
    }
    let mut ut = crate::buffers::zeroed(u.len());
    ut.par_chunks_exact_mut(o * kb)
        .zip(u.par_chunks_exact(o * kb))
        .for_each(|(t, m)| crate::im2col::flex::transpose_samples(m, [1, o, kb], None, t));
    ut
}

fn weights_t<T: Table>(
    wp: &[f32],
    dims: [usize; 3],
    band: &Band,
    first: usize,
    rows: &mut [&mut [f32]],
) {
    with_avx2!(weights_body::<T>(wp: &[f32], dims: [usize; 3], band: &Band, first: usize, rows: &mut [&mut [f32]]))
}

/// The rows of output channels `first..` of every point's `U` (`rows[ξ]`, the same count each).
#[inline(always)]
fn weights_body<T: Table>(
    wp: &[f32],
    [o, kh, c]: [usize; 3],
    band: &Band,
    first: usize,
    rows: &mut [&mut [f32]],
) {
    let (np, kw, groups) = (T::POINTS, T::STRIDE * T::TAPS, band.taps.len());
    let (k, kb) = (kh * kw * c, T::STRIDE * groups * c);
    assert_eq!(wp.len(), o * k, "winograd weights: size");
    assert_eq!(rows.len(), np, "winograd weights: one piece per point");
    let count = rows[0].len() / kb;
    assert!(
        first + count <= o && rows.iter().all(|r| r.len() == count * kb),
        "winograd weights: rows"
    );
    for (r, oi) in (first..first + count).enumerate() {
        for (e, group) in band.taps.iter().enumerate() {
            for phase in 0..T::STRIDE {
                let col = (phase * groups + e) * c;
                for &i in group {
                    let taps: [&[f32]; 3] = std::array::from_fn(|q| {
                        if q < T::TAPS {
                            &wp[oi * k + (i * kw + phase + T::STRIDE * q) * c..][..c]
                        } else {
                            &[]
                        }
                    });
                    transform(
                        c,
                        &taps,
                        T::TAPS,
                        np,
                        |xi, q| T::G[xi][q],
                        |xi, j, vals| {
                            rows[xi][r * kb + col + j..][..vals.len()]
                                .iter_mut()
                                .zip(vals)
                                .for_each(|(d, v)| *d += v);
                        },
                    );
                }
            }
        }
    }
}

/// The adjoint of [`weights`]' `U`: `P` (`points` matrices `(O, width)`, the products `E_ξᵀ ·
/// V_ξ`) added into the permuted weight gradient `dw (O, kh·kw·C)` as `G[ξ, u] · P_ξ` on every
/// kernel row of each tap group.
pub(crate) fn add_weight_grad(
    s: &Scheme,
    dw: &mut [f32],
    p: &[f32],
    dims: [usize; 3],
    band: &Band,
) {
    by_table!(s, add_weight_grad_t(dw, p, dims, band))
}

fn add_weight_grad_t<T: Table>(dw: &mut [f32], p: &[f32], dims: [usize; 3], band: &Band) {
    with_avx2!(add_weight_grad_body::<T>(dw: &mut [f32], p: &[f32], dims: [usize; 3], band: &Band))
}

#[inline(always)]
fn add_weight_grad_body<T: Table>(dw: &mut [f32], p: &[f32], [o, kh, c]: [usize; 3], band: &Band) {
    let (np, kw, groups) = (T::POINTS, T::STRIDE * T::TAPS, band.taps.len());
    let (k, kb) = (kh * kw * c, T::STRIDE * groups * c);
    assert_eq!(dw.len(), o * k, "winograd weight gradient: size");
    assert_eq!(p.len(), np * o * kb, "winograd weight gradient: products");
    for oi in 0..o {
        for (e, group) in band.taps.iter().enumerate() {
            for phase in 0..T::STRIDE {
                let col = (phase * groups + e) * c;
                let src: [&[f32]; 6] = std::array::from_fn(|xi| {
                    if xi < np { &p[(xi * o + oi) * kb + col..][..c] } else { &[] }
                });
                for &i in group {
                    transform(
                        c,
                        &src,
                        np,
                        T::TAPS,
                        |q, xi| T::G[xi][q],
                        |q, j, vals| {
                            let dst = &mut dw[oi * k + (i * kw + phase + T::STRIDE * q) * c + j..]
                                [..vals.len()];
                            dst.iter_mut().zip(vals).for_each(|(d, v)| *d += v);
                        },
                    );
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

    /// The convolution of `x (n, h, w, c)` with `wp (o, (i, j, c))` by definition, in f64,
    /// channels-last, with the padding of `g` (zeros or replicate).
    fn direct(x: &[f32], [n, c, h, w]: [usize; 4], wp: &[f32], o: usize, g: Geometry) -> Vec<f64> {
        let ([ho, wo], [kh, kw]) = (g.output(h, w), g.kernel);
        let mut y = vec![0f64; n * ho * wo * o];
        for b in 0..n {
            for oh in 0..ho {
                for ow in 0..wo {
                    for oi in 0..o {
                        let mut s = 0f64;
                        for i in 0..kh {
                            for j in 0..kw {
                                let r = source(
                                    (oh * g.stride[0] + i) as isize - g.padding[0] as isize,
                                    h,
                                    [g.padding[0], g.padding[2]],
                                    g.edge,
                                );
                                let col = source(
                                    (ow * g.stride[1] + j) as isize - g.padding[1] as isize,
                                    w,
                                    [g.padding[1], g.padding[3]],
                                    g.edge,
                                );
                                if let (Some(r), Some(col)) = (r, col) {
                                    for ci in 0..c {
                                        s += x[((b * h + r) * w + col) * c + ci] as f64
                                            * wp[oi * kh * kw * c + (i * kw + j) * c + ci] as f64;
                                    }
                                }
                            }
                        }
                        y[((b * ho + oh) * wo + ow) * o + oi] = s;
                    }
                }
            }
        }
        y
    }

    /// The band-wise forward through the transforms and a naive product per point.
    #[allow(clippy::too_many_arguments, reason = "the same operands as the kernel it checks")]
    fn forward(
        s: &Scheme,
        x: &[f32],
        dims: [usize; 4],
        g: Geometry,
        bands: &[Band],
        wp: &[f32],
        o: usize,
        bias: &[f32],
    ) -> Vec<f32> {
        let [n, c, h, w] = dims;
        let [ho, wo] = g.output(h, w);
        let mut y = vec![MaybeUninit::new(f32::NAN); n * ho * wo * o];
        let np = s.points();
        for band in bands {
            let (m, kb) = (s.rows(n, band, wo), s.width(band, c));
            let mut v = vec![0f32; np * m * kb];
            input(s, x, dims, g, band, &mut v);
            let ut = weights(s, wp, [o, g.kernel[0], c], band, true);
            let mut mm = vec![0f32; np * m * o];
            for xi in 0..np {
                for r in 0..m {
                    for oi in 0..o {
                        mm[(xi * m + r) * o + oi] = (0..kb)
                            .map(|q| v[(xi * m + r) * kb + q] * ut[(xi * kb + q) * o + oi])
                            .sum();
                    }
                }
            }
            output(s, &mm, n, band, wo, o, Some(bias), &mut y);
        }
        y.into_iter().map(|v| unsafe { v.assume_init() }).collect()
    }

    /// Each scheme's sizes (read at run time for the buffers) are those of the table its
    /// transforms compile in.
    #[test]
    fn schemes_and_their_tables_agree() {
        fn check<T: Table>(s: &Scheme) {
            assert_eq!(
                (s.tile, s.taps, s.stride, s.points()),
                (T::TILE, T::TAPS, T::STRIDE, T::POINTS),
                "{s:?}"
            );
        }
        check::<F43Table>(&F43);
        check::<F32Table>(&F32_STRIDE2);
    }

    /// The geometries of the model's convolutions and odd ones: (kernel, stride, padding, edge).
    fn geometries() -> Vec<Geometry> {
        let geometry = |kernel, stride, padding, edge| Geometry { kernel, stride, padding, edge };
        vec![
            geometry([3, 3], [1, 1], [1, 1, 1, 1], false),
            geometry([3, 4], [1, 2], [1, 1, 1, 1], true),
            geometry([3, 4], [1, 2], [1, 1, 1, 1], false),
            geometry([2, 3], [1, 1], [0, 2, 1, 0], true),
            geometry([3, 4], [2, 2], [0, 0, 2, 3], false),
        ]
    }

    #[test]
    fn forward_equals_the_direct_convolution_in_bands_and_whole() {
        // Widths with a full last tile, a partial one and a single short tile; 5 rows (the
        // model's) and fewer; the row bands and the whole matrix as one band.
        for g in geometries() {
            let s = scheme(&g).expect("a scheme");
            for (n, c, h, w, o) in [
                (2, 3, 5, 8, 4),
                (1, 5, 5, 15, 3),
                (3, 2, 3, 3, 2),
                (1, 4, 5, 2, 2),
                (2, 3, 4, 13, 5),
            ] {
                if g.padding[1] + g.padding[3] + w < g.kernel[1]
                    || g.padding[0] + g.padding[2] + h < g.kernel[0]
                {
                    continue;
                }
                let x = values(n * h * w * c, 1);
                let wp = values(o * g.kernel[0] * g.kernel[1] * c, 2);
                let bias = values(o, 3);
                let want = direct(&x, [n, c, h, w], &wp, o, g);
                let whole = [Band {
                    rows: 0..g.output(h, w)[0],
                    taps: (0..g.kernel[0]).map(|i| vec![i]).collect(),
                }];
                let bands = [g.bands(h, w), whole.to_vec()];
                for bands in &bands {
                    let got = forward(s, &x, [n, c, h, w], g, bands, &wp, o, &bias);
                    for (idx, (a, b)) in got.iter().zip(&want).enumerate() {
                        let b = b + bias[idx % o] as f64;
                        assert!(
                            (*a as f64 - b).abs() < 1e-5,
                            "{g:?} {n}×{c}×{h}×{w}→{o}, {} bands: value {idx}: {a} vs {b}",
                            bands.len()
                        );
                    }
                }
            }
        }
    }

    /// `⟨input(x), r⟩ = ⟨x, input_adjoint(r)⟩`, `⟨output(m), e⟩ = ⟨m, output_adjoint(e)⟩` and
    /// `⟨weights(w), p⟩ = ⟨w, add_weight_grad(p)⟩`: each backward transform is the adjoint of
    /// its forward one (so the gradients are those of the forward).
    #[test]
    fn the_backward_transforms_are_the_adjoints_of_the_forward_ones() {
        let dot =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
        let (n, c, h, w, o) = (2, 3, 5, 10, 4);
        for g in geometries() {
            let s = scheme(&g).expect("a scheme");
            let np = s.points();
            let [ho, wo] = g.output(h, w);
            for band in g.bands(h, w) {
                let (m, kb) = (s.rows(n, &band, wo), s.width(&band, c));
                let x = values(n * h * w * c, 4);
                let r = values(np * m * kb, 5);
                let mut v = vec![0f32; np * m * kb];
                input(s, &x, [n, c, h, w], g, &band, &mut v);
                let mut dx = vec![0f32; x.len()];
                input_adjoint(s, &r, [n, c, h, w], g, &band, &mut dx);
                let (lhs, rhs) = (dot(&v, &r), dot(&x, &dx));
                assert!(
                    (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                    "{g:?} input: {lhs} vs {rhs}"
                );

                let mm = values(np * m * o, 6);
                let e = values(n * ho * wo * o, 7);
                let mut y = vec![MaybeUninit::new(0f32); n * ho * wo * o];
                output(s, &mm, n, &band, wo, o, None, &mut y);
                let y: Vec<f32> = y.into_iter().map(|v| unsafe { v.assume_init() }).collect();
                // Only the band's rows were written: the inner product over them.
                let in_band: Vec<f32> = e
                    .iter()
                    .enumerate()
                    .map(|(i, v)| if band.rows.contains(&((i / (wo * o)) % ho)) { *v } else { 0.0 })
                    .collect();
                let mut ea = vec![0f32; np * m * o];
                output_adjoint(s, &e, n, &band, wo, o, &mut ea);
                let (lhs, rhs) = (dot(&y, &in_band), dot(&mm, &ea));
                assert!(
                    (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                    "{g:?} output: {lhs} vs {rhs}"
                );

                let wp = values(o * g.kernel[0] * g.kernel[1] * c, 8);
                let p = values(np * o * kb, 9);
                let (u, ut) = (
                    weights(s, &wp, [o, g.kernel[0], c], &band, false),
                    weights(s, &wp, [o, g.kernel[0], c], &band, true),
                );
                let mut dw = vec![0f32; wp.len()];
                add_weight_grad(s, &mut dw, &p, [o, g.kernel[0], c], &band);
                let (lhs, rhs) = (dot(&u, &p), dot(&wp, &dw));
                assert!(
                    (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                    "{g:?} weights: {lhs} vs {rhs}"
                );
                for xi in 0..np {
                    for oi in 0..o {
                        for q in 0..kb {
                            assert_eq!(u[(xi * o + oi) * kb + q], ut[(xi * kb + q) * o + oi], "Uᵀ");
                        }
                    }
                }
            }
        }
    }
}
