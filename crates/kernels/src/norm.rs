//! Training-mode BatchNorm as one parallel pass forward and two backward, on the flex CPU backend.
//!
//! Burn's `batch_norm_train` (and its backward) on `flex` are built from generic tensor ops: the
//! statistics go through `swap_dims(0, 1)` and a reshape, which copies the whole activation to a
//! channel-major layout (`copy_2d_tiled` in the profiles), then about ten element-wise passes, most
//! of them on one thread. Here, per channel and in parallel over channels, the forward computes
//! mean and (biased) variance in one sweep over the activation and normalises in a second; the
//! backward computes `Σ dy` and `Σ dy·x̂` in one sweep and the input gradient in a second:
//!
//! ```text
//! x̂ = (x − μ) / √(σ² + ε),   y = γ·x̂ + β
//! dγ = Σ dy·x̂,   dβ = Σ dy,   dx = γ/√(σ² + ε) · (dy − Σdy/N − x̂·Σ(dy·x̂)/N)
//! ```
//!
//! which is Burn's formula. The running statistics are updated exactly as Burn's `BatchNorm`
//! does (momentum on the biased batch variance), so models, records and evaluation are unchanged.
//! Evaluation mode, non-autodiff devices and the other backends use Burn's op.

use burn::nn::BatchNorm;
use burn::tensor::Tensor;

/// `norm.forward(x)` for a `(B, C)` or `(B, C, H, W)` activation (any other rank: Burn's op), with
/// the flex kernels in training mode.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if (D == 2 || D == 4)
        && x.device().is_autodiff()
        && norm.training.is_enabled()
        && crate::flex_f32(&x)
    {
        let dims = x.dims();
        let [b, c, h, w] =
            if D == 2 { [dims[0], dims[1], 1, 1] } else { [dims[0], dims[1], dims[2], dims[3]] };
        let (output, mean, variance) = flex::batch_norm_train(
            x.reshape([b, c, h, w]),
            norm.gamma.val(),
            norm.beta.val(),
            norm.epsilon,
        );
        let device = output.device();
        let momentum = norm.momentum;
        let update = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
            let running = state.value_sync().to_device(&device);
            state.update(
                running
                    .mul_scalar(1.0 - momentum)
                    .add(batch.detach().mul_scalar(momentum))
                    .detach(),
            );
        };
        update(&norm.running_mean, mean);
        update(&norm.running_var, variance);
        return output.reshape(dims);
    }
    norm.forward(x)
}

/// BatchNorm2d (or 1d) of a **channels-last** activation `(…, C)`: [`batch_norm`] over its rows
/// `(N, C)`, whose per-channel statistics over all other axes are BatchNorm's over batch and
/// spatial axes.
pub fn batch_norm_channels_last<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let c = dims[D - 1];
    batch_norm(norm, x.reshape([dims.iter().product::<usize>() / c.max(1), c])).reshape(dims)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
    use burn::tensor::Tensor;
    use rayon::prelude::*;

    use crate::buffers::sum_in_order;
    use crate::simd::wide;

    /// The op as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait BatchNormBackend: Backend {
        /// `(output, batch mean, biased batch variance)` of `x` `(B, C, …)`.
        fn batch_norm_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    }

    pub(super) fn batch_norm_train(
        x: Tensor<4>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        epsilon: f64,
    ) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
        let (y, m, v) = <Dispatch as BatchNormBackend>::batch_norm_train(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            epsilon,
        );
        (Tensor::from_dispatch(y), Tensor::from_dispatch(m), Tensor::from_dispatch(v))
    }

    use crate::buffers::{tensor, values};

    /// `(B, C, S)`: batch, channels, and the elements per channel and sample.
    fn layout(x: &FlexTensor) -> (usize, usize, usize) {
        let shape = x.shape();
        let (b, c) = (shape[0], shape[1]);
        (b, c, shape.num_elements() / (b * c).max(1))
    }

    /// Rows of `(N, C)` per task of the row kernels: at least 16 Ki values.
    fn rows_per_task(c: usize) -> usize {
        (16384 / c.max(1)).max(1)
    }

    /// Rows added up in `f32` before their sums are carried into the `f64` totals.
    const F32_ROWS: usize = 64;

    /// `K` per-channel sums over the rows of the row-major `(N, C)` values `a` (and `b`, paired
    /// row by row), in one sweep, in parallel over blocks of rows. `add_row(acc, a, b)` adds one
    /// row's `K` terms into `acc` (`k * c + channel`) — written as loops over the row's slices, so
    /// that they compile to SIMD code ([`wide`]: 8 lanes with AVX2). Each run of [`F32_ROWS`] rows
    /// is summed in `f32`, then added into the block's `f64` sums (a sum of at most 64 terms in
    /// `f32`: ~1e-6 relative, where a per-value `f64` sum did not vectorise: 4.5 % of an NC-VQVAE
    /// step's samples were these sums); the blocks' sums are added in block order, so the result
    /// does not depend on scheduling.
    fn column_sums<const K: usize>(
        a: &[f32],
        b: &[f32],
        c: usize,
        add_row: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
    ) -> [Vec<f64>; K] {
        let rows = rows_per_task(c) * c;
        let parts: Vec<Vec<f64>> = a
            .par_chunks(rows)
            .zip(b.par_chunks(rows))
            .map(|(a, b)| {
                wide(|| {
                    let mut acc = vec![0f64; K * c];
                    let mut run = vec![0f32; K * c];
                    for (a, b) in a.chunks(F32_ROWS * c).zip(b.chunks(F32_ROWS * c)) {
                        for (ra, rb) in a.chunks_exact(c).zip(b.chunks_exact(c)) {
                            add_row(&mut run, ra, rb);
                        }
                        for (t, r) in acc.iter_mut().zip(run.iter_mut()) {
                            *t += *r as f64;
                            *r = 0.0;
                        }
                    }
                    acc
                })
            })
            .collect();
        let total = sum_in_order(parts, K * c);
        std::array::from_fn(|k| total[k * c..(k + 1) * c].to_vec())
    }

    /// Per channel: mean and biased variance (two sweeps in f64, one channel per task; for a
    /// row-major `(N, C)` activation, i.e. `s = 1` — a channels-last one or a linear layer's —
    /// blocks of rows per task instead, each channel summed in the same row order, in runs of
    /// `f32` sums carried into `f64`: [`column_sums`]).
    fn statistics(x: &[f32], (b, c, s): (usize, usize, usize)) -> (Vec<f32>, Vec<f32>) {
        let n = (b * s) as f64;
        if s == 1 {
            let [sum] = column_sums(x, x, c, |acc, row, _| {
                acc.iter_mut().zip(row).for_each(|(t, &v)| *t += v)
            });
            let mean: Vec<f32> = sum.into_iter().map(|t| (t / n) as f32).collect();
            let [var] = column_sums(x, x, c, |acc, row, _| {
                acc.iter_mut()
                    .zip(row)
                    .zip(&mean)
                    .for_each(|((t, &v), &m)| *t += (v - m) * (v - m));
            });
            return (mean, var.iter().map(|&v| (v / n) as f32).collect());
        }
        (0..c)
            .into_par_iter()
            .map(|ci| {
                let planes = || (0..b).map(move |bi| &x[(bi * c + ci) * s..][..s]);
                let mean =
                    planes().map(|p| p.iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() / n;
                let var = planes()
                    .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                    .sum::<f64>()
                    / n;
                (mean as f32, var as f32)
            })
            .unzip()
    }

    fn inv_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
        variance.iter().map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32).collect()
    }

    fn normalize(
        x: &[f32],
        (_, c, s): (usize, usize, usize),
        mean: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
        beta: &[f32],
    ) -> Vec<f32> {
        if s == 1 {
            let scale: Vec<f32> = (0..c).map(|ci| gamma[ci] * inv_std[ci]).collect();
            let shift: Vec<f32> =
                (0..c).map(|ci| beta[ci] - mean[ci] * inv_std[ci] * gamma[ci]).collect();
            let rows = rows_per_task(c) * c;
            // SAFETY: every value of each piece (whole rows) is written.
            return unsafe {
                crate::buffers::filled(x.len(), rows, |at, y| {
                    let x = &x[at..at + y.len()];
                    wide(|| {
                        for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                            for (((y, &x), &a), &b) in y.iter_mut().zip(x).zip(&scale).zip(&shift) {
                                y.write(x * a + b);
                            }
                        }
                    })
                })
            };
        }
        // SAFETY: every value of each piece (one plane) is written.
        unsafe {
            crate::buffers::filled(x.len(), s, |at, y| {
                let ci = (at / s) % c;
                let (scale, shift) =
                    (gamma[ci] * inv_std[ci], beta[ci] - mean[ci] * inv_std[ci] * gamma[ci]);
                for (y, &x) in y.iter_mut().zip(&x[at..at + s]) {
                    y.write(x * scale + shift);
                }
            })
        }
    }

    /// `(dx, dγ, dβ)` from the output gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        dy: &[f32],
        x: &[f32],
        (b, c, s): (usize, usize, usize),
        mean: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let n = (b * s) as f64;
        if s == 1 {
            let [sum_dy, sum_dy_xhat] = column_sums(dy, x, c, |acc, dy, x| {
                let (sum_dy, sum_dy_xhat) = acc.split_at_mut(c);
                for ((((a, b), &g), &v), (&m, &i)) in
                    sum_dy.iter_mut().zip(sum_dy_xhat).zip(dy).zip(x).zip(mean.iter().zip(inv_std))
                {
                    *a += g;
                    *b += g * ((v - m) * i);
                }
            });
            // dx = γ/σ · (dy − Σdy/N − x̂·Σ(dy·x̂)/N) = a·dy + b·x + d per channel.
            let (mut a, mut bx, mut d) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
            for ci in 0..c {
                let (mean_dy, mean_dy_xhat) =
                    ((sum_dy[ci] / n) as f32, (sum_dy_xhat[ci] / n) as f32);
                let scale = gamma[ci] * inv_std[ci];
                a[ci] = scale;
                bx[ci] = -scale * inv_std[ci] * mean_dy_xhat;
                d[ci] = -scale * mean_dy + scale * inv_std[ci] * mean_dy_xhat * mean[ci];
            }
            let rows = rows_per_task(c) * c;
            // SAFETY: every value of each piece (whole rows) is written.
            let dx = unsafe {
                crate::buffers::filled(x.len(), rows, |at, dx| {
                    let (dy, x) = (&dy[at..at + dx.len()], &x[at..at + dx.len()]);
                    wide(|| {
                        for ((dx, dy), x) in
                            dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(x.chunks_exact(c))
                        {
                            for (((((dx, &g), &v), &a), &b), &d) in
                                dx.iter_mut().zip(dy).zip(x).zip(&a).zip(&bx).zip(&d)
                            {
                                dx.write(a * g + b * v + d);
                            }
                        }
                    })
                })
            };
            return (
                dx,
                sum_dy_xhat.iter().map(|&v| v as f32).collect(),
                sum_dy.iter().map(|&v| v as f32).collect(),
            );
        }
        let (sum_dy, sum_dy_xhat): (Vec<f64>, Vec<f64>) = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (mut a, mut bsum) = (0f64, 0f64);
                for bi in 0..b {
                    let at = (bi * c + ci) * s;
                    for (&g, &v) in dy[at..at + s].iter().zip(&x[at..at + s]) {
                        a += g as f64;
                        bsum += g as f64 * ((v - mean[ci]) * inv_std[ci]) as f64;
                    }
                }
                (a, bsum)
            })
            .unzip();
        // SAFETY: every value of each piece (one plane) is written.
        let dx = unsafe {
            crate::buffers::filled(x.len(), s, |at, dx| {
                let ci = (at / s) % c;
                let (mean_dy, mean_dy_xhat) =
                    ((sum_dy[ci] / n) as f32, (sum_dy_xhat[ci] / n) as f32);
                let scale = gamma[ci] * inv_std[ci];
                for ((dx, &g), &v) in dx.iter_mut().zip(&dy[at..at + s]).zip(&x[at..at + s]) {
                    let xhat = (v - mean[ci]) * inv_std[ci];
                    dx.write(scale * (g - mean_dy - xhat * mean_dy_xhat));
                }
            })
        };
        (
            dx,
            sum_dy_xhat.iter().map(|&v| v as f32).collect(),
            sum_dy.iter().map(|&v| v as f32).collect(),
        )
    }

    /// Forward on flex tensors: output, mean, variance, and the inverse deviations for backward.
    fn forward(
        x: &FlexTensor,
        gamma: &FlexTensor,
        beta: &FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, Vec<f32>, Vec<f32>, Vec<f32>) {
        let dims = layout(x);
        let xs = values(x);
        let (mean, variance) = statistics(&xs, dims);
        let inv = inv_std(&variance, epsilon);
        let y = normalize(&xs, dims, &mean, &inv, &values(gamma), &values(beta));
        (tensor(y, x.shape()), mean, variance, inv)
    }

    impl BatchNormBackend for Flex {
        fn batch_norm_train(
            x: FlexTensor,
            gamma: FlexTensor,
            beta: FlexTensor,
            epsilon: f64,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let (y, mean, variance, _) = forward(&x, &gamma, &beta, epsilon);
            let c = mean.len();
            (y, tensor(mean, [c]), tensor(variance, [c]))
        }
    }

    #[derive(Debug)]
    struct BatchNormBackward;

    /// What the backward needs: the input, γ, the batch mean and the inverse deviations.
    #[derive(Debug, Clone)]
    struct Saved {
        x: FlexTensor,
        gamma: Vec<f32>,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
    }

    impl Backward<Flex, 3> for BatchNormBackward {
        type State = Saved;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let saved = ops.state;
            let dims @ (_, c, _) = layout(&saved.x);
            let (dx, dgamma, dbeta) = backward(
                &values(&grad),
                &values(&saved.x),
                dims,
                &saved.mean,
                &saved.inv_std,
                &saved.gamma,
            );
            if let Some(node) = node_x {
                grads.register::<Flex>(node.id, tensor(dx, saved.x.shape()));
            }
            if let Some(node) = node_gamma {
                grads.register::<Flex>(node.id, tensor(dgamma, [c]));
            }
            if let Some(node) = node_beta {
                grads.register::<Flex>(node.id, tensor(dbeta, [c]));
            }
        }
    }

    impl<C: CheckpointStrategy> BatchNormBackend for Autodiff<Flex, C> {
        fn batch_norm_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let (x, node_x) = x.into_parts();
            let (gamma, node_gamma) = gamma.into_parts();
            let (beta, node_beta) = beta.into_parts();
            let (y, mean, variance, inv) = forward(&x, &gamma, &beta, epsilon);
            let c = mean.len();
            let stats = |v: &[f32]| FloatTensor::<Self>::new(tensor(v.to_vec(), [c]));
            let (mean_out, variance_out) = (stats(&mean), stats(&variance));
            let output = match BatchNormBackward
                .prepare::<C>([node_x, node_gamma, node_beta])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep
                    .finish(Saved { gamma: values(&gamma).into_owned(), x, mean, inv_std: inv }, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            (output, mean_out, variance_out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tolerance * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    #[test]
    fn training_batch_norm_equals_burns_values_gradients_and_running_statistics() {
        let device = Device::flex().autodiff();
        device.seed(5);
        for dims in [[3, 4, 5, 7], [2, 3, 5, 1], [1, 2, 1, 9], [6, 5, 1, 1]] {
            let c = dims[1];
            // γ and β away from their initial 1 and 0, so their gradients and effect are visible;
            // a fresh module per run (clones would share their running state).
            let gamma = Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), &device);
            let beta = Tensor::<1>::random([c], Distribution::Uniform(-0.5, 0.5), &device);
            let fresh = || BatchNorm {
                gamma: burn::module::Param::from_tensor(gamma.clone().detach()),
                beta: burn::module::Param::from_tensor(beta.clone().detach()),
                ..BatchNormConfig::new(c).init(&device)
            };
            let x = Tensor::<4>::random(dims, Distribution::Normal(1.5, 2.0), &device);
            let weights: Vec<f32> = (0..dims.iter().product::<usize>())
                .map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.4)
                .collect();
            let weights = Tensor::<4>::from_data(TensorData::new(weights, dims), &device);
            let run = |ours: bool| {
                let norm = fresh();
                let x = x.clone().detach().require_grad();
                let y = if ours { batch_norm(&norm, x.clone()) } else { norm.forward(x.clone()) };
                let grads = (y.clone() * weights.clone()).sum().backward();
                compared(&norm, y, x, &grads)
            };
            let (ours, burns) = (run(true), run(false));
            for (i, what) in ["output", "dx", "dgamma", "dbeta", "running mean", "running var"]
                .iter()
                .enumerate()
            {
                assert_close(&ours[i], &burns[i], 1e-5, &format!("{what} at {dims:?}"));
            }
        }
    }

    /// What the tests compare: output, `dx`, `dγ`, `dβ`, running mean and running variance.
    fn compared<const D: usize>(
        norm: &BatchNorm,
        y: Tensor<D>,
        x: Tensor<D>,
        grads: &burn::tensor::Gradients,
    ) -> Vec<Vec<f32>> {
        vec![
            values(y.inner()),
            values(x.grad(grads).unwrap()),
            values(norm.gamma.val().grad(grads).unwrap()),
            values(norm.beta.val().grad(grads).unwrap()),
            values(norm.running_mean.value_sync()),
            values(norm.running_var.value_sync()),
        ]
    }

    #[test]
    fn two_dimensional_input_equals_burns() {
        // (N, C) inputs: one block of rows, and several blocks of unequal size (the row kernels
        // split at 16 Ki values: 256 rows of 64, 1260 rows of 13).
        let device = Device::flex().autodiff();
        device.seed(6);
        for [n, c] in [[7, 9], [1100, 64], [3000, 13]] {
            let x = Tensor::<2>::random([n, c], Distribution::Normal(0.5, 2.0), &device);
            let weights = Tensor::<2>::random([n, c], Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let norm = BatchNormConfig::new(c).init(&device);
                let x = x.clone().detach().require_grad();
                let y = if ours { batch_norm(&norm, x.clone()) } else { norm.forward(x.clone()) };
                let grads = (y.clone() * weights.clone()).sum().backward();
                compared(&norm, y, x, &grads)
            };
            let (ours, burns) = (run(true), run(false));
            for (i, (a, b)) in ours.iter().zip(&burns).enumerate() {
                assert_close(
                    a,
                    b,
                    1e-5,
                    &format!("{n}×{c}: output/dx/dgamma/dbeta/running mean/running var [{i}]"),
                );
            }
        }
    }

    #[test]
    fn evaluation_mode_is_burns() {
        let device = Device::flex().autodiff();
        let norm = BatchNormConfig::new(3).init(&device).valid();
        let x = Tensor::<4>::random([2, 3, 5, 4], Distribution::Normal(0.0, 1.0), &Device::flex());
        assert_eq!(values(batch_norm(&norm, x.clone())), values(norm.forward(x)));
    }
}
