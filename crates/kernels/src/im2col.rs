//! The im2col gather of a convolution and its adjoint (col2im), the kernels of [`crate::conv`].
//!
//! `cols[(c, i, j), (b, oh, ow)] = x[b, c, oh·sh + i − top, ow·sw + j − left]` (zero outside the
//! input), shape `(C·kh·kw, B·Ho·Wo)`: a convolution is then the GEMM `W (O, C·kh·kw) · cols`,
//! and its input gradient the scatter-add of `Wᵀ · dy` back onto the input grid. The convolutions
//! call these kernels once per chunk of samples, in parallel ([`crate::conv`]); both are plain
//! loops over contiguous rows. Built from Burn's slices instead (`im2col_slices`, kept test-only
//! as the reference the kernels are checked against), the backward of every shifted slice
//! allocates a zero tensor of the whole input: measured on the stage-1 step at 128 × 140 that made
//! the step 1.7× slower than Burn's own convolutions (docs/benchmarks.md).

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
    /// Zero padding `(top, left, bottom, right)`.
    pub(crate) padding: [usize; 4],
}

impl Geometry {
    /// Output rows and columns for an input of `h × w`.
    pub(crate) fn output(&self, h: usize, w: usize) -> [usize; 2] {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [top, left, bottom, right] = self.padding;
        let (hp, wp) = (h + top + bottom, w + left + right);
        assert!(hp >= kh && wp >= kw, "im2col: padded input {hp}×{wp} smaller than the kernel {kh}×{kw}");
        [(hp - kh) / sh + 1, (wp - kw) / sw + 1]
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
    let x = if top + left + bottom + right > 0 { x.pad([(0, 0), (0, 0), (top, bottom), (left, right)], burn::tensor::ops::PadMode::Constant(0.0)) } else { x };
    let taps = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| x.clone().slice(s![.., .., i..i + (ho - 1) * sh + 1;sh as isize, j..j + (wo - 1) * sw + 1;sw as isize]))
        .collect();
    // (B, C, taps, Ho, Wo) → (C, taps, B, Ho, Wo).
    Tensor::stack::<5>(taps, 2).permute([1, 2, 0, 3, 4]).reshape([c * kh * kw, b * ho * wo])
}

#[cfg(feature = "flex")]
pub(crate) mod flex {
    //! The kernels on slices, and what the flex-backend ops need around them.

    use burn::backend::flex::FlexTensor;
    use std::borrow::Cow;

    use super::Geometry;


    /// The values of an `f32` tensor: borrowed from its buffer where its layout is contiguous
    /// (the usual case), copied otherwise. Never copies a buffer only because it is shared.
    pub(crate) fn f32_values(x: &FlexTensor) -> Cow<'_, [f32]> {
        match x.as_slice::<f32>() {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(x.clone().into_data().try_into_vec::<f32>().expect("flex kernels take f32 tensors")),
        }
    }

    /// For tap offset `j − left` and stride `s`, the output positions `o` whose input position
    /// `o·s + j − left` lies in `0..n`.
    fn valid(outputs: usize, n: usize, s: usize, offset: isize) -> std::ops::Range<usize> {
        let first = if offset >= 0 { 0 } else { ((-offset) as usize).div_ceil(s) };
        let last = if (n as isize) <= offset { 0 } else { ((n as isize - offset - 1) as usize / s + 1).min(outputs) };
        first..last.max(first)
    }

    /// Where tap offset `d` (a column offset `j − left`, any sign) reads in a row split into
    /// `stride` phases: the phase `d mod stride` and the shift `⌊d / stride⌋`, so that input
    /// column `o·stride + d` is entry `o + shift` of that phase.
    fn phase_of(d: isize, stride: usize) -> (usize, isize) {
        (d.rem_euclid(stride as isize) as usize, d.div_euclid(stride as isize))
    }

    /// `rows` input rows of width `w` split into their `stride` column phases (row `r`, phase
    /// `ph` holds columns `ph, ph + stride, …`, each phase `⌈w / stride⌉` long, zero-padded): a
    /// strided gather or scatter then moves contiguous runs. Stride 1 is the input itself.
    fn split_phases(x: &[f32], w: usize, stride: usize) -> Cow<'_, [f32]> {
        if stride == 1 {
            return Cow::Borrowed(x);
        }
        let wq = w.div_ceil(stride);
        let mut out = vec![0f32; x.len() / w * stride * wq];
        for (src, dst) in x.chunks_exact(w).zip(out.chunks_exact_mut(stride * wq)) {
            for (ph, phase) in dst.chunks_exact_mut(wq).enumerate() {
                for (d, s) in phase.iter_mut().zip(src.iter().skip(ph).step_by(stride)) {
                    *d = *s;
                }
            }
        }
        Cow::Owned(out)
    }

    /// The im2col matrix `(C·kh·kw, B·Ho·Wo)` of `x` `(B, C, H, W)` into `cols`, every entry
    /// written (zero where a tap reads the padding), on the calling thread: the convolutions call
    /// it once per chunk of samples, in parallel. Row `(c, i, j)`, sample `b` and output row `oh`
    /// are one contiguous run of `Wo` values, copied from one phase of one input row.
    pub(crate) fn gather_into(x: &[f32], [b, c, h, w]: [usize; 4], g: Geometry, cols: &mut [f32]) {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [top, left, ..] = g.padding;
        let [ho, wo] = g.output(h, w);
        let wq = w.div_ceil(sw);
        let src = split_phases(x, w, sw);
        assert_eq!(cols.len(), c * kh * kw * b * ho * wo, "im2col: output size");
        for (row, out) in cols.chunks_exact_mut(b * ho * wo).enumerate() {
            let (ci, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
            let (di, dj) = (i as isize - top as isize, j as isize - left as isize);
            let (rows, columns) = (valid(ho, h, sh, di), valid(wo, w, sw, dj));
            let (phase, shift) = phase_of(dj, sw);
            let start = (columns.start as isize + shift) as usize;
            for (bi, sample) in out.chunks_exact_mut(ho * wo).enumerate() {
                let plane = &src[(bi * c + ci) * h * sw * wq..][..h * sw * wq];
                for (oh, dst) in sample.chunks_exact_mut(wo).enumerate() {
                    if !rows.contains(&oh) {
                        dst.fill(0.0);
                        continue;
                    }
                    let ih = (oh * sh) as isize + di;
                    let run = &plane[(ih as usize * sw + phase) * wq..][..wq];
                    dst[..columns.start].fill(0.0);
                    dst[columns.end..].fill(0.0);
                    dst[columns.clone()].copy_from_slice(&run[start..start + columns.len()]);
                }
            }
        }
    }

    /// The adjoint of [`gather_into`]: adds `cols` into `x` `(B, C, H, W)` on the calling thread,
    /// one contiguous run per tap, sample and output row (into the column phases of `x` when the
    /// stride is above 1, interleaved back at the end).
    pub(crate) fn scatter_into(cols: &[f32], [b, c, h, w]: [usize; 4], g: Geometry, x: &mut [f32]) {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [top, left, ..] = g.padding;
        let [ho, wo] = g.output(h, w);
        let wq = w.div_ceil(sw);
        let n = b * ho * wo;
        assert_eq!((cols.len(), x.len()), (c * kh * kw * n, b * c * h * w), "col2im: sizes");
        let mut phased = if sw == 1 { Vec::new() } else { vec![0f32; b * c * h * sw * wq] };
        let target: &mut [f32] = if sw == 1 { &mut *x } else { &mut phased };
        for (plane_index, plane) in target.chunks_exact_mut(h * sw * wq).enumerate() {
            let (bi, ci) = (plane_index / c, plane_index % c);
            for i in 0..kh {
                let di = i as isize - top as isize;
                let rows = valid(ho, h, sh, di);
                for j in 0..kw {
                    let dj = j as isize - left as isize;
                    let columns = valid(wo, w, sw, dj);
                    let (phase, shift) = phase_of(dj, sw);
                    let start = (columns.start as isize + shift) as usize;
                    let row = &cols[((ci * kh + i) * kw + j) * n + bi * ho * wo..][..ho * wo];
                    for oh in rows.clone() {
                        let ih = (oh * sh) as isize + di;
                        let dst = &mut plane[(ih as usize * sw + phase) * wq..][..wq];
                        let src = &row[oh * wo..][..wo];
                        for (d, s) in dst[start..start + columns.len()].iter_mut().zip(&src[columns.clone()]) {
                            *d += s;
                        }
                    }
                }
            }
        }
        if sw > 1 {
            for (dst, src) in x.chunks_exact_mut(w).zip(phased.chunks_exact(sw * wq)) {
                for (ph, phase) in src.chunks_exact(wq).enumerate() {
                    for (d, s) in dst.iter_mut().skip(ph).step_by(sw).zip(phase) {
                        *d += s;
                    }
                }
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::flex::{gather_into, scatter_into};
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    const GEOMETRIES: [Geometry; 5] = [
        Geometry { kernel: [3, 4], stride: [1, 2], padding: [0, 0, 0, 0] },
        Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1] },
        Geometry { kernel: [1, 1], stride: [1, 1], padding: [0, 0, 0, 0] },
        Geometry { kernel: [2, 3], stride: [2, 3], padding: [1, 0, 2, 1] },
        Geometry { kernel: [3, 3], stride: [1, 1], padding: [1, 0, 1, 2] },
    ];

    #[test]
    fn gather_equals_the_definition_and_the_slice_formulation() {
        let device = Device::flex();
        device.seed(7);
        for g in GEOMETRIES {
            let (b, c, h, w) = (2, 3, 5, 9);
            let x = Tensor::<4>::random([b, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let xs = values(x.clone());
            let [ho, wo] = g.output(h, w);
            let [kh, kw] = g.kernel;
            let mut got = vec![0f32; c * kh * kw * b * ho * wo];
            gather_into(&xs, [b, c, h, w], g, &mut got);
            for (row, chunk) in got.chunks(b * ho * wo).enumerate() {
                let (ci, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
                for (col, &v) in chunk.iter().enumerate() {
                    let (bi, oh, ow) = (col / (ho * wo), col / wo % ho, col % wo);
                    let ih = (oh * g.stride[0] + i) as isize - g.padding[0] as isize;
                    let iw = (ow * g.stride[1] + j) as isize - g.padding[1] as isize;
                    let want = if (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw) { xs[((bi * c + ci) * h + ih as usize) * w + iw as usize] } else { 0.0 };
                    assert_eq!(v, want, "{g:?} row {row} col {col}");
                }
            }
            assert_eq!(got, values(im2col_slices(x, g)), "{g:?}");
        }
    }

    #[test]
    fn scatter_is_the_adjoint_of_gather_and_the_slices_gradient() {
        // <gather(x), r> = <x, scatter(r)> for all x, r, and scatter(r) is the autodiff gradient
        // of sum(im2col_slices(x) · r).
        let device = Device::flex().autodiff();
        for g in GEOMETRIES {
            let dims @ [b, c, h, w] = [2, 3, 5, 7];
            let [ho, wo] = g.output(h, w);
            let rows = c * g.kernel[0] * g.kernel[1];
            let r: Vec<f32> = (0..rows * b * ho * wo).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let xs = values(x.clone().inner());
            let mut cols = vec![0f32; r.len()];
            gather_into(&xs, dims, g, &mut cols);
            let mut adjoint = vec![0f32; xs.len()];
            scatter_into(&r, dims, g, &mut adjoint);
            let lhs: f32 = cols.iter().zip(&r).map(|(a, b)| a * b).sum();
            let rhs: f32 = xs.iter().zip(&adjoint).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() <= 1e-3 * lhs.abs().max(1.0), "{g:?}: <gather x, r> = {lhs}, <x, scatter r> = {rhs}");
            let x = x.detach().require_grad();
            let r = Tensor::<2>::from_data(burn::tensor::TensorData::new(r, [rows, b * ho * wo]), &device);
            let grads = (im2col_slices(x.clone(), g) * r).sum().backward();
            for (a, b) in adjoint.iter().zip(values(x.grad(&grads).unwrap())) {
                assert!((a - b).abs() <= 1e-4, "{g:?}: {a} vs {b}");
            }
        }
    }
}
