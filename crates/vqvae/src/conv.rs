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
//! A transposed convolution is the adjoint of a convolution, so it is `col2im(Wᵀ · x)`: one GEMM
//! over the input itself and the im2col op's adjoint, a parallel scatter-add straight into the
//! output grid (no copy of the input per tap, no zero taps); its backward is an im2col of the
//! output gradient and two GEMMs whose inner dimension is `O·kh·kw`.
//!
//! Other settings (groups, dilation, `Same` padding) and the other backends (WGPU,
//! CUDA, whose own convolution kernels are parallel) use Burn's op. The modules stay Burn's
//! (`Conv2d`, `ConvTranspose2d`): parameters, initialisation and records are unchanged; only the
//! forward pass is ours. Tests compare values and all gradients with Burn's ops on odd shapes.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::tensor::Tensor;

use crate::im2col::{Geometry, col2im, fast_path, im2col};

/// `conv.forward(x)` computed as one GEMM over the im2col matrix (see the module docs).
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

/// `conv.forward(x)` for a transposed convolution: the adjoint of a convolution is
/// `col2im(Wᵀ · x)`, so it is one GEMM over the input (no im2col copy of it, no zero taps) and one
/// parallel scatter-add straight into the output grid (see the module docs). Falls back to Burn's
/// op for groups, dilation, an output padding of at least the stride, or another backend.
pub(crate) fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    if conv.groups != 1 || conv.dilation != [1, 1] || !fast_path(&x) {
        return conv.forward(x);
    }
    let [b, c, h, w] = x.dims();
    let [_, o, kh, kw] = conv.weight.dims();
    let ([sh, sw], [ph, pw], [qh, qw]) = (conv.stride, conv.padding, conv.padding_out);
    let out = |n: usize, k: usize, s: usize, p: usize, q: usize| ((n - 1) * s + k + q).checked_sub(2 * p).filter(|&m| m + 2 * p >= k);
    let (Some(ho), Some(wo)) = (out(h, kh, sh, ph, qh), out(w, kw, sw, pw, qw)) else {
        return conv.forward(x);
    };
    // The convolution that maps the output grid back onto the input grid.
    let geometry = Geometry { kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw, ph, pw] };
    if geometry.output(ho, wo) != [h, w] {
        return conv.forward(x);
    }
    // (O·kh·kw, C) · (C, B·H·W): row (o, i, j) of the product holds what x contributes through
    // kernel tap (i, j) to output channel o.
    let kernels = conv.weight.val().reshape([c, o * kh * kw]).transpose();
    let cols = kernels.matmul(x.swap_dims(0, 1).reshape([c, b * h * w]));
    let y = col2im(cols, [b, o, ho, wo], geometry);
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
    use burn::tensor::{Device, Distribution, Gradients, TensorData};

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
    fn conv_transpose2d_equals_burns_with_gradients_on_odd_shapes() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let params = |c: &ConvTranspose2d, grads: &Gradients| weight_and_bias_grads(c.weight.val(), c.bias.as_ref().map(|b| b.val()), grads);
        // (channels in, out, kernel, stride, padding, output padding, input h × w): the decoder's
        // block, and strides, paddings and output paddings it does not use.
        let cases = [
            (3, 5, [3, 4], [1, 2], [1, 1], [0, 0], [5, 7]),
            (5, 2, [3, 4], [1, 2], [1, 1], [0, 0], [4, 1]),
            (2, 3, [4, 4], [2, 2], [1, 1], [0, 0], [3, 5]),
            (2, 2, [3, 3], [1, 1], [1, 1], [0, 0], [5, 6]),
            (2, 3, [3, 3], [2, 2], [0, 0], [0, 0], [4, 5]),
            (3, 2, [3, 2], [2, 3], [1, 0], [1, 2], [3, 4]),
        ];
        for (ci, co, k, stride, padding, padding_out, [h, w]) in cases {
            let conv = ConvTranspose2dConfig::new([ci, co], k).with_stride(stride).with_padding(padding).with_padding_out(padding_out).init(&device);
            assert_same(conv, [2, ci, h, w], |m, x| conv_transpose2d(m, x), |m, x| m.forward(x), params);
        }
    }
}
