//! Multi-head self-attention without a mask as one op, forward and backward, on the flex CPU
//! backend.
//!
//! Written from tensor ops the attention is a head split (a layout copy), the score product,
//! scale, softmax (several passes), the mixing product and a head merge (another copy), each a
//! fresh tensor, with a backward of as many steps. Here one op takes the projections `q, k, v`
//! `(B, S, h·d)` as they come out of the linear layers and, per sample in parallel, per head: the
//! scores `Q_h K_hᵀ / √d` (strided views of `q` and `k`, no split copy), a row softmax in place,
//! and `P_h V_h` written straight into the merged `(B, S, h·d)` output. The probabilities `P` are
//! kept for the backward: `dV_h = P_hᵀ dO_h`, `dP = dO_h V_hᵀ`, `dS = P ∘ (dP − rowsum(dP ∘ P))`,
//! `dQ_h = dS K_h / √d`, `dK_h = dSᵀ Q_h / √d`. The op reads `q, k, v` packed side by side in
//! one `(B, S, 3·h·d)` tensor ([`attention_packed`]: the output of one linear layer of three
//! times the width, so the three projections are one product forward and one each way backward)
//! and writes its gradient in that layout. Other backends use the tensor-op formula.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::flex_f32;

/// `concat_h softmax(Q_h K_hᵀ / √d) V_h` for `q, k, v (B, S, heads·d)`: attention over all
/// positions (no mask), the heads side by side in the last dimension of the result.
pub fn attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize) -> Tensor<3> {
    let [b, s, inner] = q.dims();
    assert!(
        heads > 0 && inner.is_multiple_of(heads),
        "attention: {inner} features do not split into {heads} heads"
    );
    assert_eq!(
        (k.dims(), v.dims()),
        ([b, s, inner], [b, s, inner]),
        "attention: q, k and v must have one shape"
    );
    if flex_f32(&q) {
        // One copy into the packed layout; the backward of `cat` splits the packed gradient.
        #[cfg(feature = "flex")]
        return flex::attention(Tensor::cat(vec![q, k, v], 2), heads);
    }
    formula(q, k, v, heads)
}

/// [`attention`] of the packed projections `qkv (B, S, 3·heads·d)` (`q`, `k` and `v` side by
/// side in the last dimension, as one linear layer of three times the width makes them), without
/// splitting them: on flex one op whose backward writes the packed gradient, so the three
/// projections run as one product each way.
pub fn attention_packed(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
    let [_, _, width] = qkv.dims();
    assert!(
        heads > 0 && width.is_multiple_of(3 * heads),
        "attention_packed: {width} features do not split into q, k, v of {heads} heads"
    );
    if flex_f32(&qkv) {
        #[cfg(feature = "flex")]
        return flex::attention(qkv, heads);
    }
    let inner = width / 3;
    formula(
        qkv.clone().narrow(2, 0, inner),
        qkv.clone().narrow(2, inner, inner),
        qkv.narrow(2, 2 * inner, inner),
        heads,
    )
}

/// The tensor-op formula (other backends).
fn formula(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize) -> Tensor<3> {
    let [b, s, inner] = q.dims();
    let d = inner / heads;
    let split = |t: Tensor<3>| t.reshape([b, s, heads, d]).swap_dims(1, 2);
    let scores = split(q).matmul(split(k).swap_dims(2, 3)).div_scalar((d as f64).sqrt());
    softmax(scores, 3).matmul(split(v)).swap_dims(1, 2).reshape([b, s, inner])
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
    use burn::tensor::Tensor;
    use rayon::prelude::*;
    use std::sync::Arc;

    use crate::buffers::{tensor, values};
    use crate::gemm::{View, matmul};
    use crate::simd::{exp, wide};

    /// The op as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait AttentionBackend: Backend {
        /// `qkv (B, S, 3·heads·d)` → `(B, S, heads·d)`.
        fn attention_fused(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;
    }

    pub(super) fn attention(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
        Tensor::from_dispatch(<Dispatch as AttentionBackend>::attention_fused(
            qkv.into_dispatch(),
            heads,
        ))
    }

    /// Shapes of one call. A sample block of the packed input is `S` rows of `3·inner` values:
    /// `q` in columns `0..inner`, `k` in `inner..2·inner`, `v` in `2·inner..3·inner`, head `h` of
    /// each in its columns `h·d..(h + 1)·d`.
    #[derive(Debug, Clone, Copy)]
    struct Dims {
        batch: usize,
        seq: usize,
        heads: usize,
        head_dim: usize,
    }

    /// Which of the three packed projections.
    #[derive(Debug, Clone, Copy)]
    enum Part {
        Q = 0,
        K = 1,
        V = 2,
    }

    impl Dims {
        fn of(qkv: &FlexTensor, heads: usize) -> Self {
            let shape = qkv.shape();
            Dims { batch: shape[0], seq: shape[1], heads, head_dim: shape[2] / (3 * heads) }
        }

        fn inner(&self) -> usize {
            self.heads * self.head_dim
        }

        /// Values per packed sample block.
        fn packed_block(&self) -> usize {
            self.seq * 3 * self.inner()
        }

        /// First column of head `h` of `part` in a packed row.
        fn column(&self, part: Part, h: usize) -> usize {
            part as usize * self.inner() + h * self.head_dim
        }

        /// Head `h` of `part` in the packed sample block `x` as an `S × d` view.
        fn head<'a>(&self, x: &'a [f32], part: Part, h: usize) -> View<'a> {
            View {
                data: &x[self.column(part, h)..],
                rows: self.seq,
                cols: self.head_dim,
                row_stride: 3 * self.inner(),
                col_stride: 1,
            }
        }

        fn scale(&self) -> f32 {
            1.0 / (self.head_dim as f32).sqrt()
        }
    }

    /// Copies an `S × d` head result into columns `column..column + d` of the rows of `block`
    /// (rows of `row_len` values).
    fn put_head(head: &[f32], d: usize, column: usize, row_len: usize, block: &mut [f32]) {
        for (row, values) in block.chunks_exact_mut(row_len).zip(head.chunks_exact(d)) {
            row[column..column + d].copy_from_slice(values);
        }
    }

    /// The output `(B, S, inner)` and the probabilities `(B, heads, S, S)`.
    fn forward(qkv: &FlexTensor, heads: usize) -> (FlexTensor, Vec<f32>) {
        let dims = Dims::of(qkv, heads);
        let (s, d, inner) = (dims.seq, dims.head_dim, dims.inner());
        let packed = values(qkv);
        let mut out = crate::buffers::zeroed(dims.batch * s * inner);
        let mut probs = crate::buffers::zeroed(dims.batch * heads * s * s);
        out.par_chunks_mut((s * inner).max(1))
            .zip(probs.par_chunks_mut((heads * s * s).max(1)))
            .enumerate()
            .for_each(|(b, (block, p))| {
                let x = &packed[b * dims.packed_block()..][..dims.packed_block()];
                let mut head = vec![0f32; s * d];
                for (h, p) in p.chunks_exact_mut(s * s).enumerate() {
                    matmul(p, dims.head(x, Part::Q, h), dims.head(x, Part::K, h).t());
                    let scale = dims.scale();
                    wide(|| {
                        for row in p.chunks_exact_mut(s) {
                            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * scale;
                            row.iter_mut().for_each(|x| *x = exp(*x * scale - max));
                            let sum: f32 = row.iter().sum();
                            row.iter_mut().for_each(|x| *x /= sum);
                        }
                    });
                    matmul(&mut head, View::row_major(p, s, s), dims.head(x, Part::V, h));
                    put_head(&head, d, h * d, inner, block);
                }
            });
        let shape = qkv.shape();
        (tensor(out, [shape[0], shape[1], inner]), probs)
    }

    /// The packed gradient `(B, S, 3·inner)` (`dq`, `dk`, `dv` side by side) from the output gradient.
    fn backward(qkv: &FlexTensor, probs: &[f32], grad: &FlexTensor, heads: usize) -> Vec<f32> {
        let dims = Dims::of(qkv, heads);
        let (s, d, inner) = (dims.seq, dims.head_dim, dims.inner());
        let (packed, gs) = (values(qkv), values(grad));
        let mut dqkv = crate::buffers::zeroed(dims.batch * dims.packed_block());
        dqkv.par_chunks_mut(dims.packed_block().max(1)).enumerate().for_each(|(b, db)| {
            let x = &packed[b * dims.packed_block()..][..dims.packed_block()];
            let gb = &gs[b * s * inner..][..s * inner];
            let g_head = |h: usize| View {
                data: &gb[h * d..],
                rows: s,
                cols: d,
                row_stride: inner,
                col_stride: 1,
            };
            let (mut dp, mut head) = (vec![0f32; s * s], vec![0f32; s * d]);
            for h in 0..heads {
                let p = &probs[(b * heads + h) * s * s..][..s * s];
                let pv = View::row_major(p, s, s);
                matmul(&mut head, pv.t(), g_head(h));
                put_head(&head, d, dims.column(Part::V, h), 3 * inner, db);
                matmul(&mut dp, g_head(h), dims.head(x, Part::V, h).t());
                // dS = P ∘ (dP − rowsum(dP ∘ P)), scaled by 1/√d for both products below.
                for (dp_row, p_row) in dp.chunks_exact_mut(s).zip(p.chunks_exact(s)) {
                    let dot: f32 = dp_row.iter().zip(p_row).map(|(a, b)| a * b).sum();
                    for (x, &p) in dp_row.iter_mut().zip(p_row) {
                        *x = p * (*x - dot) * dims.scale();
                    }
                }
                let ds = View::row_major(&dp, s, s);
                matmul(&mut head, ds, dims.head(x, Part::K, h));
                put_head(&head, d, dims.column(Part::Q, h), 3 * inner, db);
                matmul(&mut head, ds.t(), dims.head(x, Part::Q, h));
                put_head(&head, d, dims.column(Part::K, h), 3 * inner, db);
            }
        });
        dqkv
    }

    impl AttentionBackend for Flex {
        fn attention_fused(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
            forward(&qkv, heads).0
        }
    }

    #[derive(Debug)]
    struct AttentionBackward;

    /// The packed input, the probabilities and the head count.
    #[derive(Debug, Clone)]
    struct Saved {
        qkv: FlexTensor,
        probs: Arc<Vec<f32>>,
        heads: usize,
    }

    impl Backward<Flex, 1> for AttentionBackward {
        type State = Saved;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let grad = grads.consume::<Flex>(&ops.node);
            let Saved { qkv, probs, heads } = ops.state;
            let shape = qkv.shape();
            let dqkv = backward(&qkv, &probs, &grad, heads);
            if let [Some(node)] = ops.parents {
                grads.register::<Flex>(node.id, tensor(dqkv, shape));
            }
        }
    }

    impl<C: CheckpointStrategy> AttentionBackend for Autodiff<Flex, C> {
        fn attention_fused(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
            let (qkv, node) = qkv.into_parts();
            let (y, probs) = forward(&qkv, heads);
            match AttentionBackward.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    prep.finish(Saved { qkv, probs: Arc::new(probs), heads }, y)
                }
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn attention_equals_the_tensor_op_formula_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(31);
        for (b, s, heads, d) in [(3, 41, 2, 64), (2, 7, 3, 5), (1, 1, 1, 4)] {
            let dims = [b, s, heads * d];
            let make = || Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.5), &device);
            let (q, k, v) = (make(), make(), make());
            let w = Tensor::<3>::from_data(
                TensorData::new(
                    (0..b * s * heads * d)
                        .map(|i| ((i * 7919) % 17) as f32 / 17.0 - 0.5)
                        .collect::<Vec<_>>(),
                    dims,
                ),
                &device,
            );
            let run = |ours: bool| {
                let (q, k, v) = (
                    q.clone().detach().require_grad(),
                    k.clone().detach().require_grad(),
                    v.clone().detach().require_grad(),
                );
                let y = if ours {
                    attention(q.clone(), k.clone(), v.clone(), heads)
                } else {
                    let split = |t: Tensor<3>| t.reshape([b, s, heads, d]).swap_dims(1, 2);
                    let scores = split(q.clone())
                        .matmul(split(k.clone()).swap_dims(2, 3))
                        .div_scalar((d as f64).sqrt());
                    softmax(scores, 3).matmul(split(v.clone())).swap_dims(1, 2).reshape([
                        b,
                        s,
                        heads * d,
                    ])
                };
                let grads = (y.clone() * w.clone()).sum().backward();
                [
                    values(y.inner()),
                    values(q.grad(&grads).unwrap()),
                    values(k.grad(&grads).unwrap()),
                    values(v.grad(&grads).unwrap()),
                ]
            };
            // The packed op on one leaf `(B, S, 3·heads·d)`: its gradient split into dq, dk, dv.
            let packed = {
                let qkv =
                    Tensor::cat(vec![q.clone(), k.clone(), v.clone()], 2).detach().require_grad();
                let y = attention_packed(qkv.clone(), heads);
                let grads = (y.clone() * w.clone()).sum().backward();
                let g = qkv.grad(&grads).unwrap();
                let part = |i: usize| values(g.clone().narrow(2, i * heads * d, heads * d));
                [values(y.inner()), part(0), part(1), part(2)]
            };
            let reference = run(false);
            for (name, ours) in [("attention", run(true)), ("attention_packed", packed)] {
                for (what, (a, r)) in
                    ["output", "dq", "dk", "dv"].iter().zip(ours.iter().zip(&reference))
                {
                    let scale = r.iter().fold(1f32, |m, x| m.max(x.abs()));
                    for (i, (x, y)) in a.iter().zip(r).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-5 * scale,
                            "{name} {b}×{s}×{heads}×{d} {what}[{i}]: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}
