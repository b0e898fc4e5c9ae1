//! The im2col matrix of a convolution as one differentiable op.
//!
//! `cols[(c, i, j), (b, oh, ow)] = x[b, c, oh·sh + i − top, ow·sw + j − left]` (zero outside the
//! input), shape `(C·kh·kw, B·Ho·Wo)`: every convolution of the model is then one GEMM
//! `W (O, C·kh·kw) · cols` with the whole batch in its long dimension, and its gradients are two
//! GEMMs plus the adjoint of this gather (col2im, a scatter-add).
//!
//! On Burn's `flex` CPU backend the op is a backend extension with its own backward: the gather and
//! the scatter-add are one parallel pass each over the data (see [`flex`]). Built from Burn's
//! slices instead, the backward of every shifted slice allocates a zero tensor of the whole input
//! and adds it in: measured on the stage-1 step at 128 × 140, that made the step 1.7× slower
//! than Burn's own convolutions, whereas this op makes it faster (docs/benchmarks.md). The same
//! matrix from Burn's slices (`im2col_slices`, test-only) is kept as the reference the kernels are tested
//! against; on other backends (WGPU, CUDA) the layers use Burn's convolutions.

use burn::tensor::Tensor;
#[cfg(test)]
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

/// Whether [`im2col`] has its fast kernels for `x`: an `f32` tensor on the flex CPU backend (with
/// or without autodiff). The convolutions use Burn's own ops everywhere else.
pub(crate) fn fast_path(x: &Tensor<4>) -> bool {
    #[cfg(feature = "flex")]
    return flex::applies(x);
    #[cfg(not(feature = "flex"))]
    {
        let _ = x;
        false
    }
}

/// The im2col matrix `(C·kh·kw, B·Ho·Wo)` of `x` `(B, C, H, W)`; differentiable, its backward is
/// [`col2im`]. Flex only: callers check [`fast_path`] first.
pub(crate) fn im2col(x: Tensor<4>, geometry: Geometry) -> Tensor<2> {
    #[cfg(feature = "flex")]
    return flex::im2col(x, geometry);
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, geometry);
        unreachable!("im2col runs on the flex backend only, and fast_path is false without it")
    }
}

/// The adjoint of [`im2col`] (col2im): `(C·kh·kw, B·Ho·Wo)` back to `(B, C, H, W)`, summing the
/// entries that read the same element; differentiable, its backward is [`im2col`]. Flex only:
/// callers check [`fast_path`] first.
pub(crate) fn col2im(cols: Tensor<2>, dims: [usize; 4], geometry: Geometry) -> Tensor<4> {
    #[cfg(feature = "flex")]
    return flex::col2im(cols, dims, geometry);
    #[cfg(not(feature = "flex"))]
    {
        let _ = (cols, dims, geometry);
        unreachable!("col2im runs on the flex backend only, and fast_path is false without it")
    }
}

/// The same matrix from Burn's pad, stepped slices, stack and permute (any backend): the reference
/// the flex kernels are tested against.
#[cfg(test)]
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
    //! The flex-backend extension: a parallel gather forward and a parallel scatter-add backward.

    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, TensorMetadata, backend_extension};
    use burn::tensor::{DType, Tensor, TensorData};
    use rayon::prelude::*;
    use std::borrow::Cow;

    use super::Geometry;

    /// The op as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait Im2colBackend: Backend {
        /// `(B, C, H, W) → (C·kh·kw, B·Ho·Wo)`.
        fn im2col(x: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;
        /// The adjoint: `(C·kh·kw, B·Ho·Wo) → (B, C, H, W)` for the input size `dims`, summing
        /// the columns that read the same input element.
        fn col2im(cols: FloatTensor<Self>, dims: [usize; 4], geometry: Geometry) -> FloatTensor<Self>;
    }

    /// Whether the flex kernels apply to `x`.
    pub(super) fn applies(x: &Tensor<4>) -> bool {
        matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_)) && x.dtype() == DType::F32
    }

    pub(super) fn im2col(x: Tensor<4>, geometry: Geometry) -> Tensor<2> {
        Tensor::from_dispatch(<Dispatch as Im2colBackend>::im2col(x.into_dispatch(), geometry))
    }

    pub(super) fn col2im(cols: Tensor<2>, dims: [usize; 4], geometry: Geometry) -> Tensor<4> {
        Tensor::from_dispatch(<Dispatch as Im2colBackend>::col2im(cols.into_dispatch(), dims, geometry))
    }

    fn dims4(x: &FlexTensor) -> [usize; 4] {
        let shape = x.shape();
        assert_eq!(shape.num_dims(), 4, "im2col: expected a 4-D input, got {shape:?}");
        [shape[0], shape[1], shape[2], shape[3]]
    }

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

    fn gather(x: &[f32], [b, c, h, w]: [usize; 4], g: Geometry) -> Vec<f32> {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [top, left, ..] = g.padding;
        let [ho, wo] = g.output(h, w);
        let mut cols = vec![0f32; c * kh * kw * b * ho * wo];
        cols.par_chunks_mut(b * ho * wo).enumerate().for_each(|(row, out)| {
            let (ci, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
            let (di, dj) = (i as isize - top as isize, j as isize - left as isize);
            let (rows, columns) = (valid(ho, h, sh, di), valid(wo, w, sw, dj));
            for bi in 0..b {
                let plane = &x[(bi * c + ci) * h * w..][..h * w];
                for oh in rows.clone() {
                    let src = &plane[(oh as isize * sh as isize + di) as usize * w..][..w];
                    let dst = &mut out[(bi * ho + oh) * wo..][..wo];
                    if sw == 1 {
                        let start = (columns.start as isize + dj) as usize;
                        dst[columns.clone()].copy_from_slice(&src[start..start + columns.len()]);
                    } else {
                        for ow in columns.clone() {
                            dst[ow] = src[(ow as isize * sw as isize + dj) as usize];
                        }
                    }
                }
            }
        });
        cols
    }

    fn scatter_add(cols: &[f32], [b, c, h, w]: [usize; 4], g: Geometry) -> Vec<f32> {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [top, left, ..] = g.padding;
        let [ho, wo] = g.output(h, w);
        let n = b * ho * wo;
        let mut x = vec![0f32; b * c * h * w];
        x.par_chunks_mut(h * w).enumerate().for_each(|(plane_index, plane)| {
            let (bi, ci) = (plane_index / c, plane_index % c);
            for i in 0..kh {
                for j in 0..kw {
                    let row = &cols[((ci * kh + i) * kw + j) * n..][..n];
                    let (di, dj) = (i as isize - top as isize, j as isize - left as isize);
                    let (rows, columns) = (valid(ho, h, sh, di), valid(wo, w, sw, dj));
                    for oh in rows {
                        let dst = &mut plane[(oh as isize * sh as isize + di) as usize * w..][..w];
                        let src = &row[(bi * ho + oh) * wo..][..wo];
                        if sw == 1 {
                            let start = (columns.start as isize + dj) as usize;
                            for (d, s) in dst[start..start + columns.len()].iter_mut().zip(&src[columns.clone()]) {
                                *d += s;
                            }
                        } else {
                            for ow in columns.clone() {
                                dst[(ow as isize * sw as isize + dj) as usize] += src[ow];
                            }
                        }
                    }
                }
            }
        });
        x
    }

    fn forward_flex(x: FlexTensor, g: Geometry) -> FlexTensor {
        let dims @ [b, c, h, w] = dims4(&x);
        let [ho, wo] = g.output(h, w);
        let cols = gather(&f32_values(&x), dims, g);
        FlexTensor::from_data(TensorData::new(cols, [c * g.kernel[0] * g.kernel[1], b * ho * wo]))
    }

    fn adjoint_flex(cols: FlexTensor, dims: [usize; 4], g: Geometry) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(scatter_add(&f32_values(&cols), dims, g), dims))
    }

    impl Im2colBackend for Flex {
        fn im2col(x: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
            forward_flex(x, geometry)
        }

        fn col2im(cols: FloatTensor<Self>, dims: [usize; 4], geometry: Geometry) -> FloatTensor<Self> {
            adjoint_flex(cols, dims, geometry)
        }
    }

    #[derive(Debug)]
    struct Im2colBackward;

    impl Backward<Flex, 1> for Im2colBackward {
        type State = ([usize; 4], Geometry);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let (dims, geometry) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| adjoint_flex(grad, dims, geometry));
        }
    }

    #[derive(Debug)]
    struct Col2imBackward;

    impl Backward<Flex, 1> for Col2imBackward {
        type State = Geometry;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let geometry = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| forward_flex(grad, geometry));
        }
    }

    impl<C: CheckpointStrategy> Im2colBackend for Autodiff<Flex, C> {
        fn im2col(x: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
            let (primitive, node) = x.into_parts();
            let dims = dims4(&primitive);
            match Im2colBackward.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((dims, geometry), forward_flex(primitive, geometry)),
                OpsKind::UnTracked(prep) => prep.finish(forward_flex(primitive, geometry)),
            }
        }

        fn col2im(cols: FloatTensor<Self>, dims: [usize; 4], geometry: Geometry) -> FloatTensor<Self> {
            let (primitive, node) = cols.into_parts();
            match Col2imBackward.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(geometry, adjoint_flex(primitive, dims, geometry)),
                OpsKind::UnTracked(prep) => prep.finish(adjoint_flex(primitive, dims, geometry)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

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
            let got = values(im2col(x.clone(), g));
            let sliced = values(im2col_slices(x, g));
            let [kh, kw] = g.kernel;
            assert_eq!(got.len(), c * kh * kw * b * ho * wo);
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
            assert_eq!(got, sliced, "{g:?}");
        }
    }

    #[test]
    fn backward_is_the_adjoint_and_equals_the_slice_formulations() {
        // <im2col(x), r> = <x, col2im(r)> for all x, r; the autodiff gradient of sum(im2col(x)·r)
        // is col2im(r), the same as the slices' gradient.
        let device = Device::flex().autodiff();
        for g in GEOMETRIES {
            let dims = [2, 3, 5, 7];
            let [ho, wo] = g.output(5, 7);
            let rows = 3 * g.kernel[0] * g.kernel[1];
            let r: Vec<f32> = (0..rows * 2 * ho * wo).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let r = Tensor::<2>::from_data(TensorData::new(r, [rows, 2 * ho * wo]), &device);
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let grad = |f: fn(Tensor<4>, Geometry) -> Tensor<2>| {
                let x = x.clone().detach().require_grad();
                let y = (f(x.clone(), g) * r.clone()).sum();
                let grads = y.clone().backward();
                (y.into_scalar::<f32>(), values(x.grad(&grads).unwrap()))
            };
            let (y1, g1) = grad(im2col);
            let (y2, g2) = grad(im2col_slices);
            assert!((y1 - y2).abs() <= 1e-4 * y2.abs().max(1.0), "{g:?}: {y1} vs {y2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() <= 1e-4, "{g:?}: {a} vs {b}");
            }
            let dot: f32 = values(x.clone().inner()).iter().zip(&g1).map(|(a, b)| a * b).sum();
            assert!((dot - y1).abs() <= 1e-3 * y1.abs().max(1.0), "{g:?}: <x, col2im r> = {dot}, <im2col x, r> = {y1}");
        }
    }
}
