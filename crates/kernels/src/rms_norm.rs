//! RMSNorm as the reference computes it (`x / max(‖x‖₂, ε) · √d · g` over the last axis) in one
//! parallel pass forward and one backward, on the flex CPU backend.
//!
//! Written with tensor ops (square, sum, sqrt, clamp, divide, scale, multiply) it is seven
//! allocating passes forward and about twice as many backward, most on one thread; the prior runs
//! it nine times per forward pass on `(B, N + 1, 256)` activations. Here, per row `x` of width
//! `d` with `r = ‖x‖` and `c = s / max(r, ε)` (`s = √d` in the prior):
//!
//! ```text
//! y = c·g⊙x
//! dx = c·(g⊙dy − x·⟨g⊙dy, x⟩ / r²)   (r > ε; where r ≤ ε the norm is the constant ε: dx = c·g⊙dy)
//! dg = Σ_rows c·dy⊙x
//! ```
//!
//! Other backends keep the tensor-op formula.

use burn::tensor::Tensor;

use crate::flex_f32;

/// `x / max(‖x‖₂, epsilon) · scale · gain` over the last axis of `x` (`gain` has that width).
pub fn rms_norm<const D: usize>(
    x: Tensor<D>,
    gain: Tensor<1>,
    scale: f64,
    epsilon: f64,
) -> Tensor<D> {
    if flex_f32(&x) {
        #[cfg(feature = "flex")]
        return flex::rms_norm(x, gain, scale, epsilon);
    }
    reference(x, gain, scale, epsilon)
}

/// The tensor-op formula.
fn reference<const D: usize>(x: Tensor<D>, gain: Tensor<1>, scale: f64, epsilon: f64) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt().clamp_min(epsilon);
    let mut shape = [1usize; D];
    shape[D - 1] = gain.dims()[0];
    x.div(norm).mul_scalar(scale).mul(gain.reshape(shape))
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

    use crate::buffers::{tensor, values};

    /// Rows per parallel task.
    const ROWS: usize = 64;

    /// The op as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait RmsNormBackend: Backend {
        /// RMSNorm over the last axis.
        fn rms_norm_fused(
            x: FloatTensor<Self>,
            gain: FloatTensor<Self>,
            scale: f64,
            epsilon: f64,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn rms_norm<const D: usize>(
        x: Tensor<D>,
        gain: Tensor<1>,
        scale: f64,
        epsilon: f64,
    ) -> Tensor<D> {
        Tensor::from_dispatch(<Dispatch as RmsNormBackend>::rms_norm_fused(
            x.into_dispatch(),
            gain.into_dispatch(),
            scale,
            epsilon,
        ))
    }

    /// The width of the last axis.
    fn width(x: &FlexTensor) -> usize {
        let shape = x.shape();
        if shape.num_dims() == 0 { 1 } else { shape[shape.num_dims() - 1] }
    }

    /// Output and the per-row factors `c = scale / max(‖x‖, ε)` and `1/r²` (0 where the norm is
    /// clamped).
    fn forward(
        x: &FlexTensor,
        gain: &FlexTensor,
        scale: f64,
        epsilon: f64,
    ) -> (FlexTensor, Vec<f32>, Vec<f32>) {
        let d = width(x);
        let (xs, g) = (values(x), values(gain));
        let rows = xs.len() / d.max(1);
        let mut y = crate::buffers::zeroed(xs.len());
        let mut c = vec![0f32; rows];
        let mut inv_r2 = vec![0f32; rows];
        y.par_chunks_mut(ROWS * d)
            .zip(xs.par_chunks(ROWS * d))
            .zip(c.par_chunks_mut(ROWS).zip(inv_r2.par_chunks_mut(ROWS)))
            .for_each(|((y, x), (c, inv_r2))| {
                for (((y, x), c), inv_r2) in y.chunks_mut(d).zip(x.chunks(d)).zip(c).zip(inv_r2) {
                    let r = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                    let clamped = r <= epsilon;
                    *c = (scale / r.max(epsilon)) as f32;
                    *inv_r2 = if clamped { 0.0 } else { (1.0 / (r * r)) as f32 };
                    for ((y, &x), &g) in y.iter_mut().zip(x).zip(g.iter()) {
                        *y = *c * g * x;
                    }
                }
            });
        (tensor(y, x.shape()), c, inv_r2)
    }

    /// `(dx, dg)` from the output gradient.
    fn backward(
        dy: &[f32],
        x: &[f32],
        g: &[f32],
        c: &[f32],
        inv_r2: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let d = g.len();
        let mut dx = crate::buffers::zeroed(x.len());
        let partial: Vec<Vec<f64>> = dx
            .par_chunks_mut(ROWS * d)
            .zip(dy.par_chunks(ROWS * d).zip(x.par_chunks(ROWS * d)))
            .zip(c.par_chunks(ROWS).zip(inv_r2.par_chunks(ROWS)))
            .map(|((dx, (dy, x)), (c, inv_r2))| {
                let mut dg = vec![0f64; d];
                for ((((dx, dy), x), &c), &inv_r2) in
                    dx.chunks_mut(d).zip(dy.chunks(d)).zip(x.chunks(d)).zip(c).zip(inv_r2)
                {
                    let dot: f64 = dy
                        .iter()
                        .zip(g)
                        .zip(x)
                        .map(|((&dy, &g), &x)| (dy * g) as f64 * x as f64)
                        .sum();
                    let k = (dot * inv_r2 as f64) as f32;
                    for ((((dx, &dy), &x), &g), dg) in
                        dx.iter_mut().zip(dy).zip(x).zip(g).zip(dg.iter_mut())
                    {
                        *dx = c * (g * dy - x * k);
                        *dg += (c * dy * x) as f64;
                    }
                }
                dg
            })
            .collect();
        let mut dg = vec![0f64; d];
        for p in &partial {
            dg.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        (dx, dg.into_iter().map(|v| v as f32).collect())
    }

    impl RmsNormBackend for Flex {
        fn rms_norm_fused(x: FlexTensor, gain: FlexTensor, scale: f64, epsilon: f64) -> FlexTensor {
            forward(&x, &gain, scale, epsilon).0
        }
    }

    #[derive(Debug)]
    struct RmsNormBackward;

    /// What the backward needs: the input, the gain and the per-row factors.
    #[derive(Debug, Clone)]
    struct Saved {
        x: FlexTensor,
        gain: Vec<f32>,
        c: Vec<f32>,
        inv_r2: Vec<f32>,
    }

    impl Backward<Flex, 2> for RmsNormBackward {
        type State = Saved;

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_gain] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let s = ops.state;
            let (dx, dg) = backward(&values(&grad), &values(&s.x), &s.gain, &s.c, &s.inv_r2);
            if let Some(node) = node_x {
                grads.register::<Flex>(node.id, tensor(dx, s.x.shape()));
            }
            if let Some(node) = node_gain {
                let d = dg.len();
                grads.register::<Flex>(node.id, tensor(dg, [d]));
            }
        }
    }

    impl<C: CheckpointStrategy> RmsNormBackend for Autodiff<Flex, C> {
        fn rms_norm_fused(
            x: FloatTensor<Self>,
            gain: FloatTensor<Self>,
            scale: f64,
            epsilon: f64,
        ) -> FloatTensor<Self> {
            let (x, node_x) = x.into_parts();
            let (gain, node_gain) = gain.into_parts();
            let (y, c, inv_r2) = forward(&x, &gain, scale, epsilon);
            match RmsNormBackward.prepare::<C>([node_x, node_gain]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    prep.finish(Saved { gain: values(&gain).into_owned(), x, c, inv_r2 }, y)
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

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tolerance * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
        }
    }

    /// Values and the gradients of input and gain equal the tensor-op formula's, on an odd shape
    /// with one all-zero row (the clamped case) and a gain that is not all ones.
    #[test]
    fn equals_the_tensor_op_formula_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        let (b, s, d) = (3, 37, 61);
        let mut x = host(Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 2.0), &device));
        x[5 * d..6 * d].fill(0.0);
        let gain: Vec<f32> = (0..d).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let upstream =
            Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &device).detach();
        let run = |ours: bool| {
            let xt = Tensor::<3>::from_data(TensorData::new(x.clone(), [b, s, d]), &device)
                .require_grad();
            let gt =
                Tensor::<1>::from_data(TensorData::new(gain.clone(), [d]), &device).require_grad();
            let y = if ours {
                rms_norm(xt.clone(), gt.clone(), (d as f64).sqrt(), 1e-12)
            } else {
                reference(xt.clone(), gt.clone(), (d as f64).sqrt(), 1e-12)
            };
            let grads = y.clone().mul(upstream.clone()).sum().backward();
            let dx = xt.grad(&grads).unwrap();
            let dg = gt.grad(&grads).unwrap();
            (host(y), host(dx), host(dg))
        };
        let (y, dx, dg) = run(true);
        let (y_ref, dx_ref, dg_ref) = run(false);
        assert_close(&y, &y_ref, 1e-5, "y");
        assert!(y[5 * d..6 * d].iter().all(|&v| v == 0.0), "a zero row stays zero");
        // The formula's gradient through sqrt at 0 is not finite; compare the other rows there.
        let (keep, keep_ref): (Vec<f32>, Vec<f32>) = dx
            .iter()
            .zip(&dx_ref)
            .enumerate()
            .filter(|(i, _)| !(5 * d..6 * d).contains(i))
            .map(|(_, (a, b))| (*a, *b))
            .unzip();
        assert_close(&keep, &keep_ref, 1e-4, "dx");
        assert!(
            dx[5 * d..6 * d].iter().all(|v| v.is_finite()),
            "the clamped row has a finite gradient"
        );
        assert_close(&dg, &dg_ref, 1e-4, "dgain");
    }

    /// Off the autodiff device (inference) the op gives the same values.
    #[test]
    fn inference_values_equal_the_formula() {
        let device = Device::flex();
        let x = Tensor::<2>::random([10, 256], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<1>::random([256], Distribution::Normal(1.0, 0.1), &device);
        assert_close(
            &host(rms_norm(x.clone(), g.clone(), 16.0, 1e-12)),
            &host(reference(x, g, 16.0, 1e-12)),
            1e-5,
            "y",
        );
    }
}
