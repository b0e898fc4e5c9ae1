//! LeakyReLU and exact GELU as one parallel pass forward and one backward on the flex CPU backend.
//!
//! Our LeakyReLU was `relu(x)·(1 − s) + s·x` (four element-wise ops forward, more backward) and
//! Burn's exact GELU is `x·½·(1 + erf(x/√2))` with a scalar `erf` per element, each op a fresh
//! pass and allocation, most of them on one thread. Here each is one op with its own backward,
//! both a single parallel pass: `dx = dy · (x > 0 ? 1 : s)` (the gradient at 0 is `s`, as before),
//! and `dx = dy · (Φ(x) + x·φ(x))` with `Φ` from an `erf` whose absolute error is below 1.5e-7
//! (Abramowitz–Stegun 7.1.26, the `exp` shared with `φ`). That `exp` is `simd::exp`, branch-free,
//! so both passes vectorise (8 values a lane with AVX2): with libm's scalar `expf` GELU was 8 % of
//! the sampling profile. Other backends keep the tensor-op formulas.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::flex_f32;

/// LeakyReLU with negative slope `slope`: `x` where `x > 0`, `slope·x` elsewhere; its gradient at
/// 0 is `slope`.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    if flex_f32(&x) {
        #[cfg(feature = "flex")]
        return flex::leaky_relu(x, slope);
    }
    relu(x.clone()).mul_scalar(1.0 - slope).add(x.mul_scalar(slope))
}

/// Exact (erf) GELU, `x·Φ(x)`, as PyTorch's `nn.GELU()` default.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if flex_f32(&x) {
        #[cfg(feature = "flex")]
        return flex::gelu(x);
    }
    burn::tensor::activation::gelu(x)
}

/// `(Φ(x), φ(x))`, the standard normal CDF and density, from one `exp`.
#[cfg(feature = "flex")]
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let e = crate::simd::exp(-0.5 * x * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erf = 1.0 - poly * e;
    let erf = if x < 0.0 { -erf } else { erf };
    (0.5 * (1.0 + erf), FRAC_1_SQRT_2PI * e)
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

    use super::normal_cdf_pdf;
    use crate::buffers::{tensor, values};
    use crate::simd::wide;

    /// Values per parallel task.
    const CHUNK: usize = 1 << 14;

    /// The ops as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait ActivationBackend: Backend {
        /// LeakyReLU.
        fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self>;
        /// Exact GELU.
        fn gelu_fused(x: FloatTensor<Self>) -> FloatTensor<Self>;
    }

    pub(super) fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
        Tensor::from_dispatch(<Dispatch as ActivationBackend>::leaky_relu_fused(
            x.into_dispatch(),
            slope,
        ))
    }

    pub(super) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        Tensor::from_dispatch(<Dispatch as ActivationBackend>::gelu_fused(x.into_dispatch()))
    }

    /// `f` applied to every value of `x`, in parallel.
    fn map(x: &FlexTensor, f: impl Fn(f32) -> f32 + Sync) -> FlexTensor {
        let xs = values(x);
        // SAFETY: every value of each piece is written.
        let out = unsafe {
            crate::buffers::filled(xs.len(), CHUNK, |at, o| {
                let x = &xs[at..at + o.len()];
                wide(|| {
                    o.iter_mut().zip(x).for_each(|(o, &x)| {
                        o.write(f(x));
                    })
                })
            })
        };
        tensor(out, x.shape())
    }

    /// `dy · f'(x)` for every value, in parallel.
    fn map_grad(
        x: &FlexTensor,
        dy: &FlexTensor,
        derivative: impl Fn(f32) -> f32 + Sync,
    ) -> FlexTensor {
        let (xs, dys) = (values(x), values(dy));
        // SAFETY: every value of each piece is written.
        let out = unsafe {
            crate::buffers::filled(xs.len(), CHUNK, |at, o| {
                let (x, dy) = (&xs[at..at + o.len()], &dys[at..at + o.len()]);
                wide(|| {
                    for ((o, &x), &dy) in o.iter_mut().zip(x).zip(dy) {
                        o.write(dy * derivative(x));
                    }
                })
            })
        };
        tensor(out, x.shape())
    }

    fn leaky(slope: f32) -> impl Fn(f32) -> f32 + Sync {
        move |x| if x > 0.0 { x } else { slope * x }
    }

    fn leaky_derivative(slope: f32) -> impl Fn(f32) -> f32 + Sync {
        move |x| if x > 0.0 { 1.0 } else { slope }
    }

    #[inline(always)]
    fn gelu_value(x: f32) -> f32 {
        x * normal_cdf_pdf(x).0
    }

    #[inline(always)]
    fn gelu_derivative(x: f32) -> f32 {
        let (cdf, pdf) = normal_cdf_pdf(x);
        cdf + x * pdf
    }

    impl ActivationBackend for Flex {
        fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
            map(&x, leaky(slope as f32))
        }

        fn gelu_fused(x: FloatTensor<Self>) -> FloatTensor<Self> {
            map(&x, gelu_value)
        }
    }

    /// Which activation a saved input belongs to.
    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Leaky(f32),
        Gelu,
    }

    #[derive(Debug)]
    struct ActivationBackward;

    impl Backward<Flex, 1> for ActivationBackward {
        type State = (FlexTensor, Kind);

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x, kind) = ops.state;
            if let Some(node) = node {
                let dx = match kind {
                    Kind::Leaky(slope) => map_grad(&x, &grad, leaky_derivative(slope)),
                    Kind::Gelu => map_grad(&x, &grad, gelu_derivative),
                };
                grads.register::<Flex>(node.id, dx);
            }
        }
    }

    fn tracked<C: CheckpointStrategy>(
        x: FloatTensor<Autodiff<Flex, C>>,
        kind: Kind,
    ) -> FloatTensor<Autodiff<Flex, C>> {
        let (x, node) = x.into_parts();
        let y = match kind {
            Kind::Leaky(slope) => map(&x, leaky(slope)),
            Kind::Gelu => map(&x, gelu_value),
        };
        match ActivationBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, kind), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    impl<C: CheckpointStrategy> ActivationBackend for Autodiff<Flex, C> {
        fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
            tracked::<C>(x, Kind::Leaky(slope as f32))
        }

        fn gelu_fused(x: FloatTensor<Self>) -> FloatTensor<Self> {
            tracked::<C>(x, Kind::Gelu)
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

    /// Values and input gradient of `ours` and of the tensor-op formula `reference`, for inputs
    /// spread over the interesting range (0 included) and a varied upstream gradient.
    fn compare(
        ours: impl Fn(Tensor<3>) -> Tensor<3>,
        reference: impl Fn(Tensor<3>) -> Tensor<3>,
        tolerance: f32,
        what: &str,
    ) {
        let device = Device::flex().autodiff();
        device.seed(21);
        let dims = [3, 70, 211];
        let mut x = values(Tensor::<3>::random(dims, Distribution::Normal(0.0, 3.0), &device));
        x[..9].copy_from_slice(&[0.0, -0.0, 1e-30, -1e-30, 12.0, -12.0, 40.0, -40.0, 0.5]);
        let x = Tensor::<3>::from_data(TensorData::new(x, dims), &device);
        let w = Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
            let x = x.clone().detach().require_grad();
            let y = f(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            (values(y.inner()), values(x.grad(&grads).unwrap()))
        };
        let ((y1, g1), (y2, g2)) = (run(&ours), run(&reference));
        for (i, (a, b)) in y1.iter().zip(&y2).chain(g1.iter().zip(&g2)).enumerate() {
            assert!((a - b).abs() <= tolerance * b.abs().max(1.0), "{what} [{i}]: {a} vs {b}");
        }
    }

    #[test]
    fn leaky_relu_equals_the_tensor_op_formula_with_gradient() {
        compare(
            |x| leaky_relu(x, 0.01),
            |x| relu(x.clone()).mul_scalar(0.99).add(x.mul_scalar(0.01)),
            1e-6,
            "leaky relu",
        );
    }

    #[test]
    fn gelu_equals_burns_exact_gelu_with_gradient() {
        // The gradient against the autodiff of Burn's formula; the erf approximation is within
        // 1.5e-7 of the exact one.
        compare(gelu, burn::tensor::activation::gelu, 1e-6, "gelu");
    }
}
