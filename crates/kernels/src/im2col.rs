//! The im2col gather of a convolution and its adjoint (col2im), the kernels of [`crate::conv`],
//! in channels-last order.
//!
//! For a chunk of samples in channels-last layout `xt (n, H, W, C)`, row `(b, oh, ow)` of the
//! im2col matrix holds the `kh·kw·C` inputs output position `(oh, ow)` reads, in the order
//! `(i, j, c)`:
//!
//! ```text
//! cols[(b, oh, ow), (i, j, c)] = x[b, c, oh·sh + i − top, ow·sw + j − left]   (zero outside)
//! ```
//!
//! so a convolution is the GEMM `cols (n·Ho·Wo, kh·kw·C) · Wᵀ` with the weight permuted to the
//! same `(i, j, c)` order, and its input gradient the scatter-add of `dy · W` back onto the grid.
//! In this order the taps of one kernel row are `kw·C` consecutive values of `xt` (whatever the
//! stride), so both kernels move long contiguous runs; in the channels-first order they moved
//! runs of one output row (8–15 values in the latent layers), and the per-run overhead was most of
//! their cost. The layout changes in and out are one transpose per sample. The convolutions call
//! these kernels once per chunk of samples, in parallel ([`crate::conv`]).
//!
//! Built from Burn's slices instead (`im2col_slices`, kept test-only as the reference the kernels
//! are checked against), the backward of every shifted slice allocates a zero tensor of the whole
//! input, which made the stage-1 step slower than Burn's own convolutions
//! (docs/benchmarks-history.md).

#[cfg(all(test, feature = "flex"))]
use burn::tensor::Tensor;
#[cfg(all(test, feature = "flex"))]
use burn::tensor::s;

/// Kernel, stride and zero padding of an im2col gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Kernel rows and columns.
    pub(crate) kernel: [usize; 2],
    /// Stride along rows and columns.
    pub(crate) stride: [usize; 2],
    /// Padding `(top, left, bottom, right)`: zeros, or the nearest edge value where `edge`.
    pub(crate) padding: [usize; 4],
    /// Replicate padding (a tap outside the input reads the nearest input row and column)
    /// instead of zeros.
    pub(crate) edge: bool,
}

impl Geometry {
    /// Output rows and columns for an input of `h × w`.
    pub(crate) fn output(&self, h: usize, w: usize) -> [usize; 2] {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [top, left, bottom, right] = self.padding;
        let (hp, wp) = (h + top + bottom, w + left + right);
        assert!(
            hp >= kh && wp >= kw,
            "im2col: padded input {hp}×{wp} smaller than the kernel {kh}×{kw}"
        );
        [(hp - kh) / sh + 1, (wp - kw) / sw + 1]
    }
}

/// Consecutive output rows of a convolution that read the same kernel rows in the same way: per
/// tap group, one input row (`oh·sh + taps[e][0] − top`, clamped to the edge with replicate
/// padding). Kernel rows that read the zero padding are in no group; kernel rows that a replicate
/// padding sends to the same edge row form one group, whose weights are summed. On the encoder's
/// 5 frequency rows a 3-row kernel with padding 1 has three bands: the first and last output
/// rows with 2 taps and the 3 between with all 3, so the GEMMs skip 2 of 15 kernel rows' work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Band {
    /// The output rows.
    pub(crate) rows: std::ops::Range<usize>,
    /// The tap groups: kernel rows, ascending, each group reading one input row.
    pub(crate) taps: Vec<Vec<usize>>,
}

impl Geometry {
    /// The output rows of an input of `h` rows in [`Band`]s, top to bottom.
    pub(crate) fn bands(&self, h: usize, w: usize) -> Vec<Band> {
        let [kh, _] = self.kernel;
        let [sh, _] = self.stride;
        let top = self.padding[0];
        let [ho, _] = self.output(h, w);
        let mut bands: Vec<Band> = Vec::new();
        for oh in 0..ho {
            let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
            for i in 0..kh {
                let raw = (oh * sh + i) as isize - top as isize;
                let src = if (0..h as isize).contains(&raw) {
                    raw as usize
                } else if self.edge {
                    raw.clamp(0, h as isize - 1) as usize
                } else {
                    continue;
                };
                match groups.last_mut() {
                    Some((last, members)) if *last == src => members.push(i),
                    _ => groups.push((src, vec![i])),
                }
            }
            let taps: Vec<Vec<usize>> = groups.into_iter().map(|(_, members)| members).collect();
            match bands.last_mut() {
                Some(band) if band.taps == taps => band.rows.end = oh + 1,
                _ => bands.push(Band { rows: oh..oh + 1, taps }),
            }
        }
        bands
    }
}

impl Band {
    /// Whether `bands` (of a kernel of `kernel_rows` rows) are the whole matrix: one band whose
    /// every kernel row reads its own input row (no padding along the rows reached).
    pub(crate) fn whole(bands: &[Band], kernel_rows: usize) -> bool {
        bands.len() == 1 && bands[0].taps.len() == kernel_rows
    }
}

/// The same matrix from Burn's pad, stepped slices, stack and permute (any backend): the reference
/// the flex kernels are tested against.
#[cfg(all(test, feature = "flex"))]
fn im2col_slices(x: Tensor<4>, geometry: Geometry) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    let [kh, kw] = geometry.kernel;
    let [sh, sw] = geometry.stride;
    let [top, left, bottom, right] = geometry.padding;
    let [ho, wo] = geometry.output(h, w);
    let mode = if geometry.edge {
        burn::tensor::ops::PadMode::Edge
    } else {
        burn::tensor::ops::PadMode::Constant(0.0)
    };
    let x = if top + left + bottom + right > 0 {
        x.pad([(0, 0), (0, 0), (top, bottom), (left, right)], mode)
    } else {
        x
    };
    let taps = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| x.clone().slice(s![.., .., i..i + (ho - 1) * sh + 1;sh as isize, j..j + (wo - 1) * sw + 1;sw as isize]))
        .collect();
    // (B, C, taps, Ho, Wo) → (C, taps, B, Ho, Wo).
    Tensor::stack::<5>(taps, 2).permute([1, 2, 0, 3, 4]).reshape([c * kh * kw, b * ho * wo])
}

#[cfg(feature = "flex")]
pub(crate) mod flex {
    //! The kernels on slices.

    use super::{Band, Geometry};
    use std::ops::Range;

    /// `src (n, rows, cols)` → `dst (n, cols, rows)`, plus `bias[c]` along the new rows `c` where
    /// given: the layout change between channels-first and channels-last, per sample, in blocks
    /// that stay in L1.
    pub(crate) fn transpose_samples(
        src: &[f32],
        [n, rows, cols]: [usize; 3],
        bias: Option<&[f32]>,
        dst: &mut [f32],
    ) {
        assert_eq!((src.len(), dst.len()), (n * rows * cols, n * rows * cols), "transpose: sizes");
        for (s, d) in src.chunks_exact(rows * cols).zip(dst.chunks_exact_mut(rows * cols)) {
            let (r4, c4) = (rows / 4 * 4, cols / 4 * 4);
            for r in (0..r4).step_by(4) {
                for c in (0..c4).step_by(4) {
                    transpose4(s, cols, r, c, d, rows);
                }
            }
            // The edges that do not fill a 4 × 4 tile.
            for r in 0..rows {
                let columns = if r < r4 { c4..cols } else { 0..cols };
                for c in columns {
                    d[c * rows + r] = s[r * cols + c];
                }
            }
            if let Some(bias) = bias {
                for (row, &b) in d.chunks_exact_mut(rows).zip(bias) {
                    row.iter_mut().for_each(|v| *v += b);
                }
            }
        }
    }

    /// The 4 × 4 tile at `(r, c)` of the row-major `s` (`cols` wide) into the row-major `d`
    /// (`rows` wide) at `(c, r)`, in SSE registers (x86-64 always has SSE2).
    #[inline(always)]
    fn transpose4(s: &[f32], cols: usize, r: usize, c: usize, d: &mut [f32], rows: usize) {
        let src = |i: usize| &s[(r + i) * cols + c..][..4];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            let (a, b, e, f) = (src(0), src(1), src(2), src(3));
            // SAFETY: SSE2 is part of the x86-64 baseline; every load reads the four values of
            // a slice of length 4 and every store writes the four values of one (bounds checked
            // by the slicing).
            unsafe {
                let (a, b, e, f) = (
                    _mm_loadu_ps(a.as_ptr()),
                    _mm_loadu_ps(b.as_ptr()),
                    _mm_loadu_ps(e.as_ptr()),
                    _mm_loadu_ps(f.as_ptr()),
                );
                let (t0, t1, t2, t3) = (
                    _mm_unpacklo_ps(a, b),
                    _mm_unpackhi_ps(a, b),
                    _mm_unpacklo_ps(e, f),
                    _mm_unpackhi_ps(e, f),
                );
                let out = [
                    _mm_movelh_ps(t0, t2),
                    _mm_movehl_ps(t2, t0),
                    _mm_movelh_ps(t1, t3),
                    _mm_movehl_ps(t3, t1),
                ];
                for (j, v) in out.into_iter().enumerate() {
                    _mm_storeu_ps(d[(c + j) * rows + r..][..4].as_mut_ptr(), v);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for i in 0..4 {
            for (j, &v) in src(i).iter().enumerate() {
                d[(c + j) * rows + r + i] = v;
            }
        }
    }

    /// For output position `o` along one axis, the kernel taps `t` whose input `o·s + t − pad`
    /// lies in `0..n`, and the input index of the first of them.
    fn taps(o: usize, s: usize, pad: usize, k: usize, n: usize) -> (std::ops::Range<usize>, usize) {
        let start = (o * s) as isize - pad as isize;
        let first = (-start).max(0) as usize;
        let last = ((n as isize - start).max(0) as usize).min(k);
        let first = first.min(last);
        (first..last, (start + first as isize) as usize)
    }

    /// The input row or column a tap at padded offset `raw` reads: itself inside `0..n`, the
    /// nearest edge where `edge`, none (a zero) otherwise.
    #[inline]
    fn source(raw: isize, n: usize, edge: bool) -> Option<usize> {
        if (0..n as isize).contains(&raw) {
            Some(raw as usize)
        } else {
            edge.then(|| raw.clamp(0, n as isize - 1) as usize)
        }
    }

    /// The im2col matrix `(n·Ho·Wo, kh·kw·C)` of the channels-last chunk `xt (n, H, W, C)` into
    /// `cols`, every entry written (zero, or the edge value, where a tap reads the padding), on
    /// the calling thread: one contiguous copy of up to `kw·C` values per output position and
    /// kernel row, plus one of `C` values per tap in the padding.
    pub(crate) fn gather_into(xt: &[f32], [n, c, h, w]: [usize; 4], g: Geometry, cols: &mut [f32]) {
        let [kh, _] = g.kernel;
        let [sh, _] = g.stride;
        let [ho, _] = g.output(h, w);
        let top = g.padding[0];
        gather_rows(
            xt,
            [n, c, h, w],
            g,
            0..ho,
            kh,
            |oh, i| source((oh * sh + i) as isize - top as isize, h, g.edge),
            cols,
        );
    }

    /// The rows of [`gather_into`]'s matrix for the output rows `band.rows` of every sample, with
    /// only the band's taps: row `(b, oh, ow)` holds, per tap group `e` of the band, the `kw·C`
    /// values of the one input row the group reads ([`Band`]). No zero rows of the padding.
    pub(crate) fn gather_band_into(
        xt: &[f32],
        [n, c, h, w]: [usize; 4],
        g: Geometry,
        band: &Band,
        cols: &mut [f32],
    ) {
        let [sh, _] = g.stride;
        let top = g.padding[0];
        gather_rows(
            xt,
            [n, c, h, w],
            g,
            band.rows.clone(),
            band.taps.len(),
            |oh, e| source((oh * sh + band.taps[e][0]) as isize - top as isize, h, g.edge),
            cols,
        );
    }

    /// The gather for the output rows `rows` of each sample and `segments` kernel-row segments
    /// per output position, segment `s` of output row `oh` reading input row `input_row(oh, s)`
    /// (`None`: zeros).
    #[allow(clippy::too_many_arguments)]
    fn gather_rows(
        xt: &[f32],
        [n, c, h, w]: [usize; 4],
        g: Geometry,
        rows: Range<usize>,
        segments: usize,
        input_row: impl Fn(usize, usize) -> Option<usize>,
        cols: &mut [f32],
    ) {
        let [_, kw] = g.kernel;
        let [_, sw] = g.stride;
        let left = g.padding[1];
        let [_, wo] = g.output(h, w);
        let k = segments * kw * c;
        let band = rows.len();
        assert_eq!((xt.len(), cols.len()), (n * h * w * c, n * band * wo * k), "im2col: sizes");
        if k == 0 {
            return;
        }
        for (position, row) in cols.chunks_exact_mut(k).enumerate() {
            let (b, oh, ow) =
                (position / (band * wo), rows.start + position / wo % band, position % wo);
            let (columns, iw0) = taps(ow, sw, left, kw, w);
            for (s, segment) in row.chunks_exact_mut(kw * c).enumerate() {
                let Some(ih) = input_row(oh, s) else {
                    segment.fill(0.0);
                    continue;
                };
                let line = &xt[(b * h + ih) * w * c..][..w * c];
                if !columns.is_empty() {
                    segment[columns.start * c..columns.end * c]
                        .copy_from_slice(&line[iw0 * c..][..columns.len() * c]);
                }
                for j in (0..columns.start).chain(columns.end.max(columns.start)..kw) {
                    let tap = &mut segment[j * c..][..c];
                    match source((ow * sw + j) as isize - left as isize, w, g.edge) {
                        Some(iw) => tap.copy_from_slice(&line[iw * c..][..c]),
                        None => tap.fill(0.0),
                    }
                }
            }
        }
    }

    /// The adjoint of [`gather_into`]: adds `cols` into the channels-last `xt (n, H, W, C)` on the
    /// calling thread, one contiguous run per output position and kernel row (and one of `C`
    /// values per tap in a replicate padding, added onto the edge it read).
    pub(crate) fn scatter_into(
        cols: &[f32],
        [n, c, h, w]: [usize; 4],
        g: Geometry,
        xt: &mut [f32],
    ) {
        let [kh, _] = g.kernel;
        let [sh, _] = g.stride;
        let [ho, _] = g.output(h, w);
        let top = g.padding[0];
        scatter_rows(
            cols,
            [n, c, h, w],
            g,
            0..ho,
            kh,
            |oh, i| source((oh * sh + i) as isize - top as isize, h, g.edge),
            xt,
        );
    }

    /// The adjoint of [`gather_band_into`]: adds the band's rows `cols` into `xt`, each tap
    /// group's segment onto the one input row the group reads.
    pub(crate) fn scatter_band_into(
        cols: &[f32],
        [n, c, h, w]: [usize; 4],
        g: Geometry,
        band: &Band,
        xt: &mut [f32],
    ) {
        let [sh, _] = g.stride;
        let top = g.padding[0];
        scatter_rows(
            cols,
            [n, c, h, w],
            g,
            band.rows.clone(),
            band.taps.len(),
            |oh, e| source((oh * sh + band.taps[e][0]) as isize - top as isize, h, g.edge),
            xt,
        );
    }

    /// The adjoint of [`gather_rows`].
    #[allow(clippy::too_many_arguments)]
    fn scatter_rows(
        cols: &[f32],
        [n, c, h, w]: [usize; 4],
        g: Geometry,
        rows: Range<usize>,
        segments: usize,
        input_row: impl Fn(usize, usize) -> Option<usize>,
        xt: &mut [f32],
    ) {
        let [_, kw] = g.kernel;
        let [_, sw] = g.stride;
        let left = g.padding[1];
        let [_, wo] = g.output(h, w);
        let k = segments * kw * c;
        let band = rows.len();
        assert_eq!((xt.len(), cols.len()), (n * h * w * c, n * band * wo * k), "col2im: sizes");
        if k == 0 {
            return;
        }
        let add = |dst: &mut [f32], src: &[f32]| dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        for (position, row) in cols.chunks_exact(k).enumerate() {
            let (b, oh, ow) =
                (position / (band * wo), rows.start + position / wo % band, position % wo);
            let (columns, iw0) = taps(ow, sw, left, kw, w);
            for (s, segment) in row.chunks_exact(kw * c).enumerate() {
                let Some(ih) = input_row(oh, s) else { continue };
                let line = &mut xt[(b * h + ih) * w * c..][..w * c];
                if !columns.is_empty() {
                    add(
                        &mut line[iw0 * c..][..columns.len() * c],
                        &segment[columns.start * c..columns.end * c],
                    );
                }
                if g.edge {
                    for j in (0..columns.start).chain(columns.end.max(columns.start)..kw) {
                        if let Some(iw) = source((ow * sw + j) as isize - left as isize, w, true) {
                            add(&mut line[iw * c..][..c], &segment[j * c..][..c]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::flex::{
        gather_band_into, gather_into, scatter_band_into, scatter_into, transpose_samples,
    };
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    const GEOMETRIES: [Geometry; 9] = [
        Geometry { kernel: [3, 4], stride: [1, 2], padding: [0, 0, 0, 0], edge: false },
        Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], edge: false },
        Geometry { kernel: [1, 1], stride: [1, 1], padding: [0, 0, 0, 0], edge: false },
        Geometry { kernel: [2, 3], stride: [2, 3], padding: [1, 0, 2, 1], edge: false },
        Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 0, 1, 2], edge: false },
        Geometry { kernel: [3, 4], stride: [1, 2], padding: [1, 1, 1, 1], edge: false },
        // Replicate padding: the encoder's strided block, a wider pad than the kernel reaches
        // into on one side, and an asymmetric one.
        Geometry { kernel: [3, 4], stride: [1, 2], padding: [1, 1, 1, 1], edge: true },
        Geometry { kernel: [3, 3], stride: [1, 1], padding: [2, 3, 1, 0], edge: true },
        Geometry { kernel: [2, 3], stride: [2, 3], padding: [1, 0, 2, 1], edge: true },
    ];

    /// `x (n, C, H, W)` in channels-last order.
    fn channels_last(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        transpose_samples(x, [n, c, h * w], None, &mut out);
        out
    }

    #[test]
    fn transpose_moves_every_entry_and_adds_the_bias() {
        let (n, rows, cols) = (2, 37, 19);
        let src: Vec<f32> = (0..n * rows * cols).map(|i| i as f32).collect();
        let bias: Vec<f32> = (0..cols).map(|c| 1000.0 * c as f32).collect();
        let mut dst = vec![f32::NAN; src.len()];
        transpose_samples(&src, [n, rows, cols], Some(&bias), &mut dst);
        for b in 0..n {
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[(b * cols + c) * rows + r],
                        src[(b * rows + r) * cols + c] + bias[c]
                    );
                }
            }
        }
    }

    #[test]
    fn bands_of_the_encoder_layers_by_hand() {
        // 3-row kernel, padding 1, on 5 rows: the first and last output rows lose a tap (zero
        // padding) or read the edge row twice (replicate: that tap group is 2 kernel rows).
        let zero = Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], edge: false };
        let band = |rows: std::ops::Range<usize>, taps: &[&[usize]]| Band {
            rows,
            taps: taps.iter().map(|t| t.to_vec()).collect(),
        };
        assert_eq!(
            zero.bands(5, 9),
            vec![
                band(0..1, &[&[1], &[2]]),
                band(1..4, &[&[0], &[1], &[2]]),
                band(4..5, &[&[0], &[1]])
            ]
        );
        assert!(!Band::whole(&zero.bands(5, 9), 3));
        let edge = Geometry { kernel: [3, 4], stride: [1, 2], padding: [1, 1, 1, 1], edge: true };
        assert_eq!(
            edge.bands(5, 13),
            vec![
                band(0..1, &[&[0, 1], &[2]]),
                band(1..4, &[&[0], &[1], &[2]]),
                band(4..5, &[&[0], &[1, 2]])
            ]
        );
        // Unpadded rows: one band, every tap.
        let valid = Geometry { kernel: [3, 4], stride: [1, 2], padding: [0; 4], edge: false };
        assert_eq!(valid.bands(5, 13), vec![band(0..3, &[&[0], &[1], &[2]])]);
        assert!(Band::whole(&valid.bands(5, 13), 3));
        // A row that reads only padding has no taps.
        let wide = Geometry { kernel: [1, 3], stride: [1, 1], padding: [1, 1, 1, 1], edge: false };
        assert_eq!(wide.bands(1, 6), vec![band(0..1, &[]), band(1..2, &[&[0]]), band(2..3, &[])]);
    }

    #[test]
    fn band_gathers_are_the_full_gathers_rows_and_their_scatters_its_adjoint() {
        // Every band's row (b, oh, ow) holds, per tap group, the full gather's segment of the
        // group's kernel rows (all equal within a group); kernel rows in no group read zeros; and
        // <gather_band(x), r> = <x, scatter_band(r)>.
        let device = Device::flex();
        device.seed(9);
        for g in GEOMETRIES {
            let dims @ [b, c, h, w] = [2, 3, 5, 9];
            let xt = channels_last(
                &values(Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device)),
                dims,
            );
            let [ho, wo] = g.output(h, w);
            let [kh, kw] = g.kernel;
            let (k, seg) = (kh * kw * c, kw * c);
            let mut full = vec![f32::NAN; b * ho * wo * k];
            gather_into(&xt, dims, g, &mut full);
            let bands = g.bands(h, w);
            assert_eq!(
                bands.iter().map(|band| band.rows.len()).sum::<usize>(),
                ho,
                "{g:?}: the bands cover the rows"
            );
            for band in &bands {
                let kb = band.taps.len() * seg;
                let mut cols = vec![f32::NAN; b * band.rows.len() * wo * kb];
                gather_band_into(&xt, dims, g, band, &mut cols);
                for (position, row) in
                    cols.chunks(kb.max(1)).enumerate().take(b * band.rows.len() * wo)
                {
                    let (bi, oh, ow) = (
                        position / (band.rows.len() * wo),
                        band.rows.start + position / wo % band.rows.len(),
                        position % wo,
                    );
                    let whole = &full[((bi * ho + oh) * wo + ow) * k..][..k];
                    for i in 0..kh {
                        let in_group = band.taps.iter().position(|group| group.contains(&i));
                        match in_group {
                            Some(e) => assert_eq!(
                                &row[e * seg..][..seg],
                                &whole[i * seg..][..seg],
                                "{g:?} row {oh} tap {i}"
                            ),
                            None => assert!(
                                whole[i * seg..][..seg].iter().all(|&v| v == 0.0),
                                "{g:?} row {oh}: tap {i} in no group reads padding"
                            ),
                        }
                    }
                }
                let r: Vec<f32> = (0..cols.len()).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
                let mut back = vec![0f32; xt.len()];
                scatter_band_into(&r, dims, g, band, &mut back);
                let lhs: f64 = cols.iter().zip(&r).map(|(a, b)| *a as f64 * *b as f64).sum();
                let rhs: f64 = xt.iter().zip(&back).map(|(a, b)| *a as f64 * *b as f64).sum();
                assert!(
                    (lhs - rhs).abs() <= 1e-3 * (1.0 + lhs.abs()),
                    "{g:?} band {:?}: {lhs} vs {rhs}",
                    band.rows
                );
            }
        }
    }

    #[test]
    fn gather_equals_the_definition_and_the_slice_formulation() {
        let device = Device::flex();
        device.seed(7);
        for g in GEOMETRIES {
            let dims @ [b, c, h, w] = [2, 3, 5, 9];
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let xs = values(x.clone());
            let [ho, wo] = g.output(h, w);
            let [kh, kw] = g.kernel;
            let k = kh * kw * c;
            let mut got = vec![f32::NAN; b * ho * wo * k];
            gather_into(&channels_last(&xs, dims), dims, g, &mut got);
            let sliced = values(im2col_slices(x, g));
            for (position, row) in got.chunks(k).enumerate() {
                let (bi, oh, ow) = (position / (ho * wo), position / wo % ho, position % wo);
                for (entry, &v) in row.iter().enumerate() {
                    let (i, j, ci) = (entry / (kw * c), entry / c % kw, entry % c);
                    let ih = (oh * g.stride[0] + i) as isize - g.padding[0] as isize;
                    let iw = (ow * g.stride[1] + j) as isize - g.padding[1] as isize;
                    let inside = (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw);
                    let (ih, iw) = (
                        ih.clamp(0, h as isize - 1) as usize,
                        iw.clamp(0, w as isize - 1) as usize,
                    );
                    let want =
                        if inside || g.edge { xs[((bi * c + ci) * h + ih) * w + iw] } else { 0.0 };
                    assert_eq!(v, want, "{g:?} position {position} entry {entry}");
                    assert_eq!(
                        v,
                        sliced[((ci * kh + i) * kw + j) * b * ho * wo + position],
                        "{g:?} against the slices"
                    );
                }
            }
        }
    }

    #[test]
    fn scatter_is_the_adjoint_of_gather_and_the_slices_gradient() {
        // <gather(x), r> = <x, scatter(r)> for all x, r, and scatter(r) is the autodiff gradient
        // of sum(im2col_slices(x) · r) (r permuted to the slices' order).
        let device = Device::flex().autodiff();
        for g in GEOMETRIES {
            let dims @ [b, c, h, w] = [2, 3, 5, 7];
            let [ho, wo] = g.output(h, w);
            let [kh, kw] = g.kernel;
            let k = kh * kw * c;
            let r: Vec<f32> = (0..b * ho * wo * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let xs = values(x.clone().inner());
            let xt = channels_last(&xs, dims);
            let mut cols = vec![0f32; r.len()];
            gather_into(&xt, dims, g, &mut cols);
            let mut adjoint_t = vec![0f32; xs.len()];
            scatter_into(&r, dims, g, &mut adjoint_t);
            let lhs: f32 = cols.iter().zip(&r).map(|(a, b)| a * b).sum();
            let rhs: f32 = xt.iter().zip(&adjoint_t).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() <= 1e-3 * lhs.abs().max(1.0),
                "{g:?}: <gather x, r> = {lhs}, <x, scatter r> = {rhs}"
            );
            // Back to channels-first: (n, H·W, C) → (n, C, H·W).
            let mut adjoint = vec![0f32; xs.len()];
            transpose_samples(&adjoint_t, [b, h * w, c], None, &mut adjoint);
            let mut r_sliced = vec![0f32; r.len()];
            for (position, row) in r.chunks(k).enumerate() {
                for (entry, &v) in row.iter().enumerate() {
                    let (i, j, ci) = (entry / (kw * c), entry / c % kw, entry % c);
                    r_sliced[((ci * kh + i) * kw + j) * b * ho * wo + position] = v;
                }
            }
            let x = x.detach().require_grad();
            let r = Tensor::<2>::from_data(
                burn::tensor::TensorData::new(r_sliced, [k, b * ho * wo]),
                &device,
            );
            let grads = (im2col_slices(x.clone(), g) * r).sum().backward();
            for (a, b) in adjoint.iter().zip(values(x.grad(&grads).unwrap())) {
                assert!((a - b).abs() <= 1e-4, "{g:?}: {a} vs {b}");
            }
        }
    }
}
