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
//! `dQ_h = dS K_h / √d`, `dK_h = dSᵀ Q_h / √d`. Other backends use the tensor-op formula.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::flex_f32;

/// `concat_h softmax(Q_h K_hᵀ / √d) V_h` for `q, k, v (B, S, heads·d)`: attention over all
/// positions (no mask), the heads side by side in the last dimension of the result.
pub fn attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize) -> Tensor<3> {
    let [b, s, inner] = q.dims();
    assert!(heads > 0 && inner.is_multiple_of(heads), "attention: {inner} features do not split into {heads} heads");
    assert_eq!((k.dims(), v.dims()), ([b, s, inner], [b, s, inner]), "attention: q, k and v must have one shape");
    if flex_f32(&q) {
        #[cfg(feature = "flex")]
        return flex::attention(q, k, v, heads);
    }
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

    use crate::gemm::{View, matmul};
    use crate::buffers::{tensor, values};
    use crate::simd::{exp, wide};

    /// The op as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait AttentionBackend: Backend {
        /// `q, k, v (B, S, heads·d)` → `(B, S, heads·d)`.
        fn attention_fused(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;
    }

    pub(super) fn attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize) -> Tensor<3> {
        Tensor::from_dispatch(<Dispatch as AttentionBackend>::attention_fused(q.into_dispatch(), k.into_dispatch(), v.into_dispatch(), heads))
    }

    /// Shapes of one call.
    #[derive(Debug, Clone, Copy)]
    struct Dims {
        batch: usize,
        seq: usize,
        heads: usize,
        head_dim: usize,
    }

    impl Dims {
        fn of(q: &FlexTensor, heads: usize) -> Self {
            let shape = q.shape();
            Dims { batch: shape[0], seq: shape[1], heads, head_dim: shape[2] / heads }
        }

        fn inner(&self) -> usize {
            self.heads * self.head_dim
        }

        /// Head `h` of sample block `x` (`S × inner`) as an `S × d` view.
        fn head<'a>(&self, x: &'a [f32], h: usize) -> View<'a> {
            View { data: &x[h * self.head_dim..], rows: self.seq, cols: self.head_dim, row_stride: self.inner(), col_stride: 1 }
        }

        fn scale(&self) -> f32 {
            1.0 / (self.head_dim as f32).sqrt()
        }
    }

    /// Copies an `S × d` head result into its columns of the sample block `(S, inner)`.
    fn put_head(dims: &Dims, head: &[f32], h: usize, block: &mut [f32]) {
        let (d, inner) = (dims.head_dim, dims.inner());
        for (row, values) in block.chunks_exact_mut(inner).zip(head.chunks_exact(d)) {
            row[h * d..(h + 1) * d].copy_from_slice(values);
        }
    }

    /// The output `(B, S, inner)` and the probabilities `(B, heads, S, S)`.
    fn forward(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, heads: usize) -> (FlexTensor, Vec<f32>) {
        let dims = Dims::of(q, heads);
        let (s, d, inner) = (dims.seq, dims.head_dim, dims.inner());
        let (qs, ks, vs) = (values(q), values(k), values(v));
        let mut out = crate::buffers::zeroed(dims.batch * s * inner);
        let mut probs = crate::buffers::zeroed(dims.batch * heads * s * s);
        out.par_chunks_mut(s * inner.max(1)).zip(probs.par_chunks_mut((heads * s * s).max(1))).enumerate().for_each(|(b, (block, p))| {
            let range = b * s * inner..(b + 1) * s * inner;
            let (qb, kb, vb) = (&qs[range.clone()], &ks[range.clone()], &vs[range]);
            let mut head = vec![0f32; s * d];
            for (h, p) in p.chunks_exact_mut(s * s).enumerate() {
                matmul(p, dims.head(qb, h), dims.head(kb, h).t());
                let scale = dims.scale();
                wide(|| {
                    for row in p.chunks_exact_mut(s) {
                        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * scale;
                        row.iter_mut().for_each(|x| *x = exp(*x * scale - max));
                        let sum: f32 = row.iter().sum();
                        row.iter_mut().for_each(|x| *x /= sum);
                    }
                });
                matmul(&mut head, View::row_major(p, s, s), dims.head(vb, h));
                put_head(&dims, &head, h, block);
            }
        });
        (tensor(out, q.shape()), probs)
    }

    /// `(dq, dk, dv)` from the output gradient.
    fn backward(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, probs: &[f32], grad: &FlexTensor, heads: usize) -> [Vec<f32>; 3] {
        let dims = Dims::of(q, heads);
        let (s, d, inner) = (dims.seq, dims.head_dim, dims.inner());
        let (qs, ks, vs, gs) = (values(q), values(k), values(v), values(grad));
        let n = dims.batch * s * inner;
        let (mut dq, mut dk, mut dv) = (crate::buffers::zeroed(n), crate::buffers::zeroed(n), crate::buffers::zeroed(n));
        let block = (s * inner).max(1);
        dq.par_chunks_mut(block).zip(dk.par_chunks_mut(block)).zip(dv.par_chunks_mut(block)).enumerate().for_each(|(b, ((dqb, dkb), dvb))| {
            let range = b * s * inner..(b + 1) * s * inner;
            let (qb, kb, vb, gb) = (&qs[range.clone()], &ks[range.clone()], &vs[range.clone()], &gs[range]);
            let (mut dp, mut head) = (vec![0f32; s * s], vec![0f32; s * d]);
            for h in 0..heads {
                let p = &probs[(b * heads + h) * s * s..][..s * s];
                let pv = View::row_major(p, s, s);
                matmul(&mut head, pv.t(), dims.head(gb, h));
                put_head(&dims, &head, h, dvb);
                matmul(&mut dp, dims.head(gb, h), dims.head(vb, h).t());
                // dS = P ∘ (dP − rowsum(dP ∘ P)), scaled by 1/√d for both products below.
                for (dp_row, p_row) in dp.chunks_exact_mut(s).zip(p.chunks_exact(s)) {
                    let dot: f32 = dp_row.iter().zip(p_row).map(|(a, b)| a * b).sum();
                    for (x, &p) in dp_row.iter_mut().zip(p_row) {
                        *x = p * (*x - dot) * dims.scale();
                    }
                }
                let ds = View::row_major(&dp, s, s);
                matmul(&mut head, ds, dims.head(kb, h));
                put_head(&dims, &head, h, dqb);
                matmul(&mut head, ds.t(), dims.head(qb, h));
                put_head(&dims, &head, h, dkb);
            }
        });
        [dq, dk, dv]
    }

    impl AttentionBackend for Flex {
        fn attention_fused(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
            forward(&q, &k, &v, heads).0
        }
    }

    #[derive(Debug)]
    struct AttentionBackward;

    /// The inputs, the probabilities and the head count.
    #[derive(Debug, Clone)]
    struct Saved {
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        probs: Arc<Vec<f32>>,
        heads: usize,
    }

    impl Backward<Flex, 3> for AttentionBackward {
        type State = Saved;

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let grad = grads.consume::<Flex>(&ops.node);
            let Saved { q, k, v, probs, heads } = ops.state;
            let shape = q.shape();
            let [dq, dk, dv] = backward(&q, &k, &v, &probs, &grad, heads);
            for (node, g) in ops.parents.into_iter().zip([dq, dk, dv]) {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, tensor(g, shape.clone()));
                }
            }
        }
    }

    impl<C: CheckpointStrategy> AttentionBackend for Autodiff<Flex, C> {
        fn attention_fused(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
            let (q, node_q) = q.into_parts();
            let (k, node_k) = k.into_parts();
            let (v, node_v) = v.into_parts();
            let (y, probs) = forward(&q, &k, &v, heads);
            match AttentionBackward.prepare::<C>([node_q, node_k, node_v]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(Saved { q, k, v, probs: Arc::new(probs), heads }, y),
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
            let w = Tensor::<3>::from_data(TensorData::new((0..b * s * heads * d).map(|i| ((i * 7919) % 17) as f32 / 17.0 - 0.5).collect::<Vec<_>>(), dims), &device);
            let run = |ours: bool| {
                let (q, k, v) = (q.clone().detach().require_grad(), k.clone().detach().require_grad(), v.clone().detach().require_grad());
                let y = if ours {
                    attention(q.clone(), k.clone(), v.clone(), heads)
                } else {
                    let split = |t: Tensor<3>| t.reshape([b, s, heads, d]).swap_dims(1, 2);
                    let scores = split(q.clone()).matmul(split(k.clone()).swap_dims(2, 3)).div_scalar((d as f64).sqrt());
                    softmax(scores, 3).matmul(split(v.clone())).swap_dims(1, 2).reshape([b, s, heads * d])
                };
                let grads = (y.clone() * w.clone()).sum().backward();
                [values(y.inner()), values(q.grad(&grads).unwrap()), values(k.grad(&grads).unwrap()), values(v.grad(&grads).unwrap())]
            };
            let (ours, reference) = (run(true), run(false));
            for (what, (a, r)) in ["output", "dq", "dk", "dv"].iter().zip(ours.iter().zip(&reference)) {
                let scale = r.iter().fold(1f32, |m, x| m.max(x.abs()));
                for (i, (x, y)) in a.iter().zip(r).enumerate() {
                    assert!((x - y).abs() <= 1e-5 * scale, "{b}×{s}×{heads}×{d} {what}[{i}]: {x} vs {y}");
                }
            }
        }
    }
}
