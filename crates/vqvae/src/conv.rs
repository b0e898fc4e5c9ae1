//! Convolutions as one GEMM each, forward and backward, on the flex CPU backend.
//!
//! Burn's `Conv2d` / `ConvTranspose2d` on `flex` compute the gradient with respect to a
//! convolution's input through `conv_transpose`, a direct loop on one core, and build their im2col
//! matrix through extra layout copies (docs/benchmarks.md has the profiles). Our layers are small
//! in every spatial direction (5 frequency rows, 8–250 columns), so here every convolution is
//!
//! ```text
//! cols = im2col(x)                        (C·kh·kw, B·Ho·Wo)   one parallel gather
//! y    = W (O, C·kh·kw) · cols            (O, B·Ho·Wo)         one GEMM, the batch in its long side
//! ```
//!
//! and Burn's autodiff derives the rest: `dW = dy · colsᵀ` and `dcols = Wᵀ · dy` (two GEMMs) and
//! the im2col op's own backward, a parallel scatter-add ([`crate::im2col`]).
//!
//! A transposed convolution whose output is exactly `stride ×` its input (ours: kernel (3, 4),
//! stride (1, 2), padding (1, 1)) splits into `sh·sw` output phases, each an ordinary convolution
//! over the same shifted copies of the input. The phases' kernels are gathered from the transposed
//! kernel by one constant 0/1 matrix, so all phases are again a single GEMM, followed by one
//! permutation that interleaves them.
//!
//! Other settings (groups, dilation, output padding, `Same` padding) and the other backends (WGPU,
//! CUDA, whose own convolution kernels are parallel) use Burn's op. The modules stay Burn's
//! (`Conv2d`, `ConvTranspose2d`): parameters, initialisation and records are unchanged; only the
//! forward pass is ours. Tests compare values and all gradients with Burn's ops on odd shapes.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::tensor::{Tensor, TensorData};

use crate::im2col::{Geometry, fast_path, im2col};

/// `conv.forward(x)` computed as one batched GEMM over shifted slices (see the module docs).
/// Falls back to Burn's op for groups, dilation or `Same` padding.
pub(crate) fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    if conv.groups != 1 || conv.dilation != [1, 1] || !fast_path(&x) {
        return conv.forward(x);
    }
    let [b, c, h, w] = x.dims();
    let [o, _, kh, kw] = conv.weight.dims();
    let geometry = Geometry { kernel: [kh, kw], stride: conv.stride, padding };
    let [ho, wo] = geometry.output(h, w);
    let y = conv.weight.val().reshape([o, c * kh * kw]).matmul(im2col(x, geometry));
    let y = y.reshape([o, b, ho, wo]).swap_dims(0, 1);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, o, 1, 1]),
        None => y,
    }
}

/// For one axis of a transposed convolution (kernel `k`, stride `s`, padding `p`) whose output is
/// `s ×` its input: output position `s·m + r` sums `x[m + d]·w[t]` over the taps `t` with
/// `t ≡ r + p (mod s)`, where `d = (r + p − t) / s`. Returns, per phase `r`, its `(t, d)` pairs.
fn phase_taps(k: usize, s: usize, p: usize) -> Vec<Vec<(usize, isize)>> {
    (0..s)
        .map(|r| (0..k).filter(|&t| (r + p + s * k - t) % s == 0).map(|t| (t, (r as isize + p as isize - t as isize) / s as isize)).collect())
        .collect()
}

/// `conv.forward(x)` for a transposed convolution, computed as one GEMM over shifted slices of the
/// input followed by a phase interleave (see the module docs). Falls back to Burn's op unless
/// the output is exactly `stride ×` the input on both axes, with no groups or dilation.
pub(crate) fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let [_, o, kh, kw] = conv.weight.dims();
    let [sh, sw] = conv.stride;
    let [ph, pw] = conv.padding;
    let out = |n: usize, k: usize, s: usize, p: usize, q: usize| ((n - 1) * s + k + q).checked_sub(2 * p);
    let exact = out(h, kh, sh, ph, conv.padding_out[0]) == Some(sh * h) && out(w, kw, sw, pw, conv.padding_out[1]) == Some(sw * w);
    if conv.groups != 1 || conv.dilation != [1, 1] || !exact || !fast_path(&x) {
        return conv.forward(x);
    }
    let (rows, columns) = (phase_taps(kh, sh, ph), phase_taps(kw, sw, pw));
    let offsets = |phases: &[Vec<(usize, isize)>]| {
        let d = phases.iter().flatten().map(|&(_, d)| d);
        (d.clone().min().unwrap_or(0).min(0), d.max().unwrap_or(0).max(0))
    };
    let ((dh0, dh1), (dw0, dw1)) = (offsets(&rows), offsets(&columns));
    let (nh, nw) = ((dh1 - dh0 + 1) as usize, (dw1 - dw0 + 1) as usize);
    // The shifted copies x[m + d] for every offset pair, as an im2col matrix (C·nh·nw, B·H·W).
    let device = x.device();
    let geometry = Geometry { kernel: [nh, nw], stride: [1, 1], padding: [(-dh0) as usize, (-dw0) as usize, dh1 as usize, dw1 as usize] };
    let cols = im2col(x, geometry);
    // Selection (kh·kw, P·nh·nw): kernel tap (t, u) feeds phase (r, q) at offset (d, e).
    let phases = sh * sw;
    let mut select = vec![0f32; kh * kw * phases * nh * nw];
    for (r, row_taps) in rows.iter().enumerate() {
        for (q, col_taps) in columns.iter().enumerate() {
            for &(t, d) in row_taps {
                for &(u, e) in col_taps {
                    let offset = (d - dh0) as usize * nw + (e - dw0) as usize;
                    select[(t * kw + u) * phases * nh * nw + (r * sw + q) * nh * nw + offset] = 1.0;
                }
            }
        }
    }
    let select = Tensor::<2>::from_data(TensorData::new(select, [kh * kw, phases * nh * nw]), &device);
    // Phase kernels (P·O, C·nh·nw) from the transposed kernel (C, O, kh, kw).
    let kernels = conv.weight.val().reshape([c * o, kh * kw]).matmul(select).reshape([c, o, phases, nh * nw]);
    let kernels = kernels.permute([2, 1, 0, 3]).reshape([phases * o, c * nh * nw]);
    // (sh, sw, O, B, H, W) → (B, O, H, sh, W, sw): output row m·sh + r, column n·sw + q.
    let y = kernels.matmul(cols).reshape([sh, sw, o, b, h, w]);
    let y = y.permute([3, 2, 4, 0, 5, 1]).reshape([b, o, sh * h, sw * w]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, o, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::{Device, Distribution, Gradients};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> (f32, f32) {
        let scale = b.clone().abs().max().into_scalar::<f32>();
        ((a - b).abs().max().into_scalar::<f32>(), scale)
    }

    /// Values, the input gradient and the parameter gradients of `ours` against `burns`, for a
    /// random input and a random upstream gradient (a weighted sum of the outputs).
    fn assert_same<M: Module>(
        module: M,
        x_dims: [usize; 4],
        ours: impl Fn(&M, Tensor<4>) -> Tensor<4>,
        burns: impl Fn(&M, Tensor<4>) -> Tensor<4>,
        param_grads: impl Fn(&M, &Gradients) -> Vec<Tensor<1>>,
    ) {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random(x_dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |f: &dyn Fn(&M, Tensor<4>) -> Tensor<4>| {
            let x = x.clone().detach().require_grad();
            let y = f(&module, x.clone());
            let weights = Tensor::<4>::from_data(
                TensorData::new((0..y.shape().num_elements()).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect::<Vec<_>>(), y.dims()),
                &device,
            );
            let grads = (y.clone() * weights).sum().backward();
            let mut g = vec![x.grad(&grads).expect("input gradient").flatten::<1>(0, 3)];
            g.extend(param_grads(&module, &grads));
            (y.inner(), g)
        };
        let (y1, g1) = run(&ours);
        let (y2, g2) = run(&burns);
        assert_eq!(y1.dims(), y2.dims());
        let (d, scale) = max_diff(y1, y2);
        assert!(d <= 1e-5 * scale.max(1.0), "output differs by {d} (scale {scale})");
        for (i, (a, b)) in g1.into_iter().zip(g2).enumerate() {
            assert_eq!(a.dims(), b.dims(), "gradient {i}");
            let (d, scale) = max_diff(a, b);
            assert!(d <= 1e-5 * scale.max(1.0), "gradient {i} differs by {d} (scale {scale})");
        }
    }

    fn weight_and_bias_grads(weight: Tensor<4>, bias: Option<Tensor<1>>, grads: &Gradients) -> Vec<Tensor<1>> {
        let mut g = vec![weight.grad(grads).expect("weight gradient").flatten::<1>(0, 3)];
        g.extend(bias.map(|b| b.grad(grads).expect("bias gradient")));
        g
    }

    fn conv_params(c: &Conv2d, grads: &Gradients) -> Vec<Tensor<1>> {
        weight_and_bias_grads(c.weight.val(), c.bias.as_ref().map(|b| b.val()), grads)
    }

    #[test]
    fn conv2d_equals_burns_with_gradients_on_odd_shapes() {
        let device = Device::flex().autodiff();
        device.seed(3);
        // (channels in, out, kernel, stride, padding (t, l, b, r), input h × w)
        let cases = [
            (3, 5, [3, 4], [1, 2], (0, 0, 0, 0), [7, 13]),
            (2, 4, [3, 4], [1, 2], (0, 0, 0, 0), [7, 12]),
            (4, 6, [3, 3], [1, 1], (1, 1, 1, 1), [5, 9]),
            (3, 3, [1, 1], [1, 1], (0, 0, 0, 0), [5, 7]),
            (2, 3, [2, 3], [2, 3], (1, 0, 2, 1), [6, 11]),
        ];
        for (ci, co, k, stride, (t, l, b, r), [h, w]) in cases {
            let conv = Conv2dConfig::new([ci, co], k).with_stride(stride).with_padding(PaddingConfig2d::Explicit(t, l, b, r)).init(&device);
            assert_same(conv, [3, ci, h, w], |m, x| conv2d(m, x), |m, x| m.forward(x), conv_params);
        }
        let no_bias = Conv2dConfig::new([3, 2], [3, 3]).with_bias(false).init(&device);
        assert_same(no_bias, [2, 3, 5, 6], |m, x| conv2d(m, x), |m, x| m.forward(x), conv_params);
    }

    #[test]
    fn phases_of_the_decoder_kernel_are_the_hand_derived_ones() {
        // Width: kernel 4, stride 2, padding 1. Even outputs 2m use w[1]·x[m] + w[3]·x[m−1];
        // odd outputs 2m+1 use w[0]·x[m+1] + w[2]·x[m].
        assert_eq!(phase_taps(4, 2, 1), vec![vec![(1, 0), (3, -1)], vec![(0, 1), (2, 0)]]);
        // Height: kernel 3, stride 1, padding 1: a correlation with the flipped kernel.
        assert_eq!(phase_taps(3, 1, 1), vec![vec![(0, 1), (1, 0), (2, -1)]]);
    }

    #[test]
    fn conv_transpose2d_equals_burns_with_gradients_on_odd_shapes() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let params = |c: &ConvTranspose2d, grads: &Gradients| weight_and_bias_grads(c.weight.val(), c.bias.as_ref().map(|b| b.val()), grads);
        // (channels in, out, kernel, stride, padding, input h × w): the decoder's block and others
        // whose output is stride × input.
        let cases = [(3, 5, [3, 4], [1, 2], [1, 1], [5, 7]), (5, 2, [3, 4], [1, 2], [1, 1], [4, 1]), (2, 3, [4, 4], [2, 2], [1, 1], [3, 5]), (2, 2, [3, 3], [1, 1], [1, 1], [5, 6])];
        for (ci, co, k, stride, padding, [h, w]) in cases {
            let conv = ConvTranspose2dConfig::new([ci, co], k).with_stride(stride).with_padding(padding).init(&device);
            assert_same(conv, [2, ci, h, w], |m, x| conv_transpose2d(m, x), |m, x| m.forward(x), params);
        }
        // Not stride × input: Burn's op is used, and the result is still Burn's.
        let other = ConvTranspose2dConfig::new([2, 3], [3, 3]).with_stride([2, 2]).init(&device);
        assert_same(other, [2, 2, 4, 5], |m, x| conv_transpose2d(m, x), |m, x| m.forward(x), params);
    }
}
