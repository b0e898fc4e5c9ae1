//! Matrix products and linear layers whose forward and backward run on the tiled GEMM
//! ([`crate::gemm::batched`]) on the flex CPU backend.
//!
//! Burn's `matmul` and `Linear` on flex reach 77–119 GFLOP/s on our products where the same
//! kernels, split into tiles into our own buffers, reach 135–190 (docs/benchmarks.md). Here a
//! product and a linear layer are one op each, with their own
//! backward: `dA = dC · Bᵀ`, `dB = Aᵀ · dC` (and `db = Σ dY` over rows for a linear layer), the
//! transposes being strided views of the saved operands, never copies. Operands may be strided
//! views themselves (a transposed key matrix, a sliced batch): they are read in place. Other
//! backends, and shapes this op does not cover (batch broadcasting, other float types), use
//! Burn's ops.

use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::flex_f32;

/// `lhs.matmul(rhs)` for `(…, m, k) · (…, k, n)`: on flex (f32, the same batch dimensions on both
/// sides) one tiled-GEMM op with its own backward; Burn's `matmul` otherwise (broadcasting, other
/// backends).
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    let (l, r) = (lhs.dims(), rhs.dims());
    if D >= 2
        && l[..D - 2] == r[..D - 2]
        && l[D - 1] == r[D - 2]
        && flex_f32(&lhs)
        && flex_f32(&rhs)
    {
        #[cfg(feature = "flex")]
        return flex::matmul(lhs, rhs);
    }
    lhs.matmul(rhs)
}

/// `layer.forward(x)` for `x (…, d_input)`: on flex (f32) one op, `x · W + b` over all rows at
/// once, with its own backward; Burn's `Linear` otherwise.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    match &layer.bias {
        None if D >= 2 => rows_times(x, layer.weight.val()),
        #[cfg(feature = "flex")]
        Some(bias) if x.dims()[D - 1] == layer.weight.dims()[0] && flex_f32(&x) => {
            let [d_input, d_output] = layer.weight.dims();
            let (rows, out) = flattened(x.dims(), d_output);
            flex::linear(x.reshape([rows, d_input]), layer.weight.val(), bias.val()).reshape(out)
        }
        _ => layer.forward(x),
    }
}

/// `x (…, d_in) · weight (d_in, d_out)` (`x` of rank 2 or more), the weight shared by every row of `x` (a linear layer
/// without bias, or a tied output embedding): on flex one product over all rows at once;
/// Burn's broadcasting `matmul` otherwise.
pub fn rows_times<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    assert!(D >= 2, "rows_times: x needs a row dimension");
    let [d_input, d_output] = weight.dims();
    if x.dims()[D - 1] == d_input && flex_f32(&x) {
        #[cfg(feature = "flex")]
        {
            let (rows, out) = flattened(x.dims(), d_output);
            return flex::matmul(x.reshape([rows, d_input]), weight).reshape(out);
        }
    }
    let mut shape = [1; D];
    shape[D - 2..].copy_from_slice(&[d_input, d_output]);
    x.matmul(weight.reshape(shape))
}

/// For an input of `dims (…, d_in)`: the number of rows `Π …` and the output dims `(…, d_out)`.
#[cfg(feature = "flex")]
fn flattened<const D: usize>(dims: [usize; D], d_output: usize) -> (usize, [usize; D]) {
    let mut out = dims;
    out[D - 1] = d_output;
    (dims[..D - 1].iter().product(), out)
}

#[cfg(feature = "flex")]
mod flex {
    //! The flex-backend extension.

    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
    use burn::tensor::{Shape, Tensor};
    use rayon::prelude::*;
    use std::borrow::Cow;

    use crate::buffers::{sum_in_order, tensor};
    use crate::gemm::{View, batched};

    /// The ops as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait GemmBackend: Backend {
        /// `(…, m, k) · (…, k, n)` with equal batch dimensions.
        fn matmul_tiled(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;
        /// `x (rows, d_in) · weight (d_in, d_out) + bias (d_out)`.
        fn linear_tiled(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
        Tensor::from_dispatch(<Dispatch as GemmBackend>::matmul_tiled(
            lhs.into_dispatch(),
            rhs.into_dispatch(),
        ))
    }

    pub(super) fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
        Tensor::from_dispatch(<Dispatch as GemmBackend>::linear_tiled(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ))
    }

    /// A tensor `(…, rows, cols)` as a batch of strided matrices over its buffer, read in place.
    struct Operand<'a> {
        data: Cow<'a, [f32]>,
        offsets: Vec<usize>,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    }

    impl Operand<'_> {
        fn new(t: &FlexTensor) -> Operand<'_> {
            let layout = t.layout();
            let (shape, strides) = (layout.shape(), layout.strides());
            let d = shape.num_dims();
            assert!(d >= 2, "matmul: operands of rank 2 or more");
            if strides.iter().any(|&s| s < 0) {
                // A flipped view: read a contiguous copy instead.
                let c = t.to_contiguous();
                let values = c.as_slice::<f32>().expect("contiguous").to_vec();
                let (rows, cols) = (shape[d - 2], shape[d - 1]);
                let batch = shape.num_elements() / (rows * cols).max(1);
                return Operand {
                    data: Cow::Owned(values),
                    offsets: (0..batch).map(|i| i * rows * cols).collect(),
                    rows,
                    cols,
                    row_stride: cols,
                    col_stride: 1,
                };
            }
            let mut offsets = vec![layout.start_offset()];
            for axis in 0..d - 2 {
                let (n, stride) = (shape[axis], strides[axis] as usize);
                offsets =
                    offsets.iter().flat_map(|&o| (0..n).map(move |i| o + i * stride)).collect();
            }
            Operand {
                data: Cow::Borrowed(t.storage::<f32>()),
                offsets,
                rows: shape[d - 2],
                cols: shape[d - 1],
                row_stride: strides[d - 2] as usize,
                col_stride: strides[d - 1] as usize,
            }
        }

        fn view(&self, i: usize) -> View<'_> {
            View {
                data: &self.data[self.offsets[i]..],
                rows: self.rows,
                cols: self.cols,
                row_stride: self.row_stride,
                col_stride: self.col_stride,
            }
        }

        fn batch(&self) -> usize {
            self.offsets.len()
        }
    }

    /// The values of `lhs · rhs` and the output shape `(…, m, n)`.
    fn product_values(lhs: &FlexTensor, rhs: &FlexTensor) -> (Vec<f32>, Shape) {
        let (a, b) = (Operand::new(lhs), Operand::new(rhs));
        assert_eq!(
            (a.batch(), a.cols),
            (b.batch(), b.rows),
            "matmul: shapes {:?} · {:?}",
            lhs.shape(),
            rhs.shape()
        );
        let mut dims = lhs.shape().to_vec();
        let d = dims.len();
        dims[d - 1] = b.cols;
        (
            batched(a.batch(), [a.rows, a.cols, b.cols], |i| a.view(i), |i| b.view(i)),
            Shape::from(dims),
        )
    }

    fn product(lhs: &FlexTensor, rhs: &FlexTensor) -> FlexTensor {
        let (values, shape) = product_values(lhs, rhs);
        tensor(values, shape)
    }

    /// `(dA, dB)` for `C = A · B` and the output gradient `dC`, each only where asked for.
    fn product_grads(
        lhs: &FlexTensor,
        rhs: &FlexTensor,
        grad: &FlexTensor,
        want: [bool; 2],
    ) -> [Option<FlexTensor>; 2] {
        let (a, b, g) = (Operand::new(lhs), Operand::new(rhs), Operand::new(grad));
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let da = want[0].then(|| {
            tensor(batched(a.batch(), [m, n, k], |i| g.view(i), |i| b.view(i).t()), lhs.shape())
        });
        let db = want[1].then(|| {
            tensor(batched(a.batch(), [k, m, n], |i| a.view(i).t(), |i| g.view(i)), rhs.shape())
        });
        [da, db]
    }

    /// `x · W + b`.
    fn affine(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
        let (mut values, shape) = product_values(x, weight);
        let row = bias.reshape(Shape::from(vec![1, bias.shape().num_elements()]));
        let bias = Operand::new(&row);
        let b = bias.view(0);
        let bias: Vec<f32> = (0..b.cols).map(|j| b.data[j * b.col_stride]).collect();
        values
            .par_chunks_mut(bias.len().max(1))
            .for_each(|row| row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b));
        tensor(values, shape)
    }

    /// Column sums of a `(rows, n)` gradient: the bias gradient.
    fn column_sums(grad: &FlexTensor) -> FlexTensor {
        let g = Operand::new(grad);
        let (rows, n) = (g.rows, g.cols);
        let v = g.view(0);
        // Fixed blocks of rows (not one per thread), their partials added in block order: the
        // same sums whatever the scheduling or the thread count.
        const CHUNK: usize = 256;
        let parts: Vec<Vec<f32>> = (0..rows.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0f32; n];
                for r in c * CHUNK..((c + 1) * CHUNK).min(rows) {
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a += v.data[r * v.row_stride + j * v.col_stride];
                    }
                }
                acc
            })
            .collect();
        let sums = sum_in_order(parts, n);
        tensor(sums, Shape::from(vec![n]))
    }

    impl GemmBackend for Flex {
        fn matmul_tiled(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
            product(&lhs, &rhs)
        }

        fn linear_tiled(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            affine(&x, &weight, &bias)
        }
    }

    #[derive(Debug)]
    struct MatmulBackward;

    impl Backward<Flex, 2> for MatmulBackward {
        type State = (FlexTensor, FlexTensor);

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_a, node_b] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (lhs, rhs) = ops.state;
            let [da, db] = product_grads(&lhs, &rhs, &grad, [node_a.is_some(), node_b.is_some()]);
            for (node, g) in [(node_a, da), (node_b, db)] {
                if let (Some(node), Some(g)) = (node, g) {
                    grads.register::<Flex>(node.id, g);
                }
            }
        }
    }

    #[derive(Debug)]
    struct LinearBackward;

    impl Backward<Flex, 3> for LinearBackward {
        type State = (FlexTensor, FlexTensor);

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_w, node_b] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x, weight) = ops.state;
            let [dx, dw] = product_grads(&x, &weight, &grad, [node_x.is_some(), node_w.is_some()]);
            for (node, g) in [(node_x, dx), (node_w, dw)] {
                if let (Some(node), Some(g)) = (node, g) {
                    grads.register::<Flex>(node.id, g);
                }
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, column_sums(&grad));
            }
        }
    }

    impl<C: CheckpointStrategy> GemmBackend for Autodiff<Flex, C> {
        fn matmul_tiled(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
            let (lhs, node_a) = lhs.into_parts();
            let (rhs, node_b) = rhs.into_parts();
            let y = product(&lhs, &rhs);
            match MatmulBackward.prepare::<C>([node_a, node_b]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((lhs, rhs), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }

        fn linear_tiled(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            let (x, node_x) = x.into_parts();
            let (weight, node_w) = weight.into_parts();
            let (bias, node_b) = bias.into_parts();
            let y = affine(&x, &weight, &bias);
            match LinearBackward.prepare::<C>([node_x, node_w, node_b]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, weight), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(a: Vec<f32>, b: Vec<f32>, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    fn weights<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
        let n = dims.iter().product::<usize>();
        Tensor::from_data(
            TensorData::new(
                (0..n).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect::<Vec<_>>(),
                dims,
            ),
            device,
        )
    }

    #[test]
    fn matmul_equals_burns_with_gradients_for_views_and_batches() {
        let device = Device::flex().autodiff();
        device.seed(11);
        // (lhs, rhs, transpose the rhs' last two dims before the product, as attention does); an
        // lhs of 300 rows is used transposed (a strided view of 8 × 300).
        let cases: [([usize; 3], [usize; 3], bool); 4] = [
            ([1, 37, 19], [1, 19, 23], false),
            ([3, 40, 70], [3, 70, 50], false),
            ([4, 75, 16], [4, 75, 16], true),
            ([1, 300, 8], [1, 300, 260], false),
        ];
        for (l, r, transposed) in cases {
            let a = Tensor::<3>::random(l, Distribution::Normal(0.0, 1.0), &device);
            let b = Tensor::<3>::random(r, Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let (a, b) = (a.clone().detach().require_grad(), b.clone().detach().require_grad());
                let rhs = if transposed { b.clone().swap_dims(1, 2) } else { b.clone() };
                let lhs = if l[1] == 300 { a.clone().swap_dims(1, 2) } else { a.clone() };
                let y = if ours { matmul(lhs, rhs) } else { lhs.matmul(rhs) };
                let grads = (y.clone() * weights(y.dims(), &device)).sum().backward();
                (
                    values(y.inner()),
                    values(a.grad(&grads).unwrap()),
                    values(b.grad(&grads).unwrap()),
                )
            };
            let (ours, burns) = (run(true), run(false));
            assert_close(ours.0, burns.0, &format!("{l:?}·{r:?} output"));
            assert_close(ours.1, burns.1, &format!("{l:?}·{r:?} lhs gradient"));
            assert_close(ours.2, burns.2, &format!("{l:?}·{r:?} rhs gradient"));
        }
        // Two-dimensional, with a transposed lhs (the Barlow Twins cross-correlation).
        let z1 =
            Tensor::<2>::random([33, 70], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let z2 =
            Tensor::<2>::random([33, 90], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let run = |ours: bool| {
            let y = if ours {
                matmul(z1.clone().transpose(), z2.clone())
            } else {
                z1.clone().transpose().matmul(z2.clone())
            };
            let grads = (y.clone() * weights(y.dims(), &device)).sum().backward();
            (values(y.inner()), values(z1.grad(&grads).unwrap()), values(z2.grad(&grads).unwrap()))
        };
        let (ours, burns) = (run(true), run(false));
        assert_close(ours.0, burns.0, "z1ᵀ·z2");
        assert_close(ours.1, burns.1, "z1ᵀ·z2 lhs gradient");
        assert_close(ours.2, burns.2, "z1ᵀ·z2 rhs gradient");
    }

    #[test]
    fn linear_equals_burns_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(12);
        for (bias, dims) in [(true, [5, 7, 48]), (false, [2, 3, 48]), (true, [300, 1, 48])] {
            let layer = LinearConfig::new(48, 130).with_bias(bias).init(&device);
            let x = Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let layer = layer.clone();
                let x = x.clone().detach().require_grad();
                let y = if ours { linear(&layer, x.clone()) } else { layer.forward(x.clone()) };
                let grads = (y.clone() * weights(y.dims(), &device)).sum().backward();
                let mut out = vec![
                    values(y.inner()),
                    values(x.grad(&grads).unwrap()),
                    values(layer.weight.val().grad(&grads).unwrap()),
                ];
                out.extend(layer.bias.as_ref().map(|b| values(b.val().grad(&grads).unwrap())));
                out
            };
            let (ours, burns) = (run(true), run(false));
            assert_eq!(ours.len(), burns.len());
            for (i, (a, b)) in ours.into_iter().zip(burns).enumerate() {
                assert_close(a, b, &format!("linear {dims:?} bias {bias}: output/dx/dW/db [{i}]"));
            }
        }
        // Without autodiff (evaluation) the op runs untracked.
        let plain = Device::flex();
        let layer = LinearConfig::new(4, 3).init(&plain);
        let x = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &plain);
        assert_close(
            values(linear(&layer, x.clone())),
            values(layer.forward(x)),
            "untracked linear",
        );
        let _ = layer.num_params();
    }
}
