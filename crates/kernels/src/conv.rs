//! Convolutions as GEMMs, forward and backward, on the flex CPU backend.
//!
//! Burn's `Conv2d` / `ConvTranspose2d` on `flex` compute the gradient with respect to a
//! convolution's input through `conv_transpose`, a direct loop on one core, and build their im2col
//! matrix through extra layout copies (docs/benchmarks.md has the profiles). Our layers are small
//! in every spatial direction (5 frequency rows, 8–250 columns), so here a convolution of `x`
//! `(B, C, H, W)` with `W (O, C, kh, kw)` is, for each chunk of `n` samples `x_s`,
//!
//! ```text
//! xt_s   = channels_last(x_s)       (n, H, W, C)              a transpose
//! cols_s = im2col(xt_s)             (n·Ho·Wo, kh·kw·C)        a gather, order (i, j, c)
//! t_s    = cols_s · W'ᵀ             (n·Ho·Wo, O)              one GEMM, W' = W in (i, j, c) order
//! y_s    = channels_first(t_s) + b  (n, O, Ho, Wo)            a transpose
//! ```
//!
//! with its backward `dW' = Σ_s dy_sᵀ · cols_s` (cols recomputed, never stored) and
//! `dx_s = col2im(dy_s · W')` (a GEMM and a scatter-add), in one pass that lays `dy_s` out once
//! for both. The chunks hold just enough samples for an efficient GEMM (≥ 256 rows) and run in
//! parallel, one single-threaded GEMM each, into per-thread scratch: the whole op is one parallel
//! region, allocates only its output, and keeps no im2col matrix alive between forward and
//! backward. The op is a Burn backend extension with its own backward ([`flex`]), so Burn's
//! autodiff sees one node per convolution. Why channels-last: [`crate::im2col`].
//!
//! Channels-last convolutions whose rows are padded (the 3-row kernels on the model's 5
//! frequency rows) run per row band ([`crate::im2col::Band`]): one gather and one GEMM per band of
//! output rows, over only the taps that read real input rows, the band's result copied into its
//! rows. The padding's zero taps (2 of 15 kernel rows there) are then never multiplied, and a
//! replicate padding's repeated edge row is read once against the summed weights.
//!
//! Channels-last convolutions 3 columns wide at stride 1 or 4 wide at stride 2 (the residual, the
//! encoder's strided and the decoder's transposed convolutions) run as Winograd's minimal
//! filtering along the columns instead, per row band ([`crate::winograd`]): 1/2 and 2/3 of the
//! multiply-adds, through transforms of the input, output and weight and one GEMM per point.
//!
//! A transposed convolution is the adjoint of a convolution: its forward is the convolution's
//! input gradient `col2im(x · W')` (no im2col copy of its input, no zero taps), its input gradient
//! is the convolution's forward, and its weight gradient the convolution's weight gradient with the
//! roles of input and output gradient swapped.
//!
//! Other settings (groups, dilation, `Same` padding) and the other backends (WGPU,
//! CUDA, whose own convolution kernels are parallel) use Burn's op. The modules stay Burn's
//! (`Conv2d`, `ConvTranspose2d`): parameters, initialisation and records are unchanged; only the
//! forward pass is ours. Tests compare values and all gradients with Burn's ops on odd shapes.

use burn::nn::conv::{Conv1d, Conv2d, ConvTranspose2d};
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

use crate::flex_f32 as fast_path;
use crate::im2col::Geometry;

/// `conv.forward(x)` computed as GEMMs over im2col chunks (see the module docs).
/// Falls back to Burn's op for groups, dilation, `Same` padding or another backend.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    match conv_geometry(conv, &x, [h, w], [0; 4]) {
        #[cfg(feature = "flex")]
        Some(geometry) => {
            flex::conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), geometry, false)
        }
        _ => conv.forward(x),
    }
}

/// The convolution of a **channels-last** activation `x (B, H, W, C)`, replicate-padded by
/// `replicate` `(top, left, bottom, right)` first: `(B, Ho, Wo, O)`, the values of
/// `conv.forward(pad_edge(x in channels-first order))` in channels-last order. The replicate
/// padding is read inside the gather (no padded copy); it cannot be combined with a module
/// padding of its own (then, like groups, dilation or another backend, Burn's ops run between
/// two permutes).
pub fn conv2d_channels_last(conv: &Conv2d, x: Tensor<4>, replicate: [usize; 4]) -> Tensor<4> {
    let [_, h, w, _] = x.dims();
    match conv_geometry(conv, &x, [h, w], replicate) {
        #[cfg(feature = "flex")]
        Some(geometry) => {
            flex::conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), geometry, true)
        }
        _ => {
            let x = x.permute([0, 3, 1, 2]);
            let [top, left, bottom, right] = replicate;
            let x = if replicate == [0; 4] {
                x
            } else {
                x.pad([(0, 0), (0, 0), (top, bottom), (left, right)], PadMode::Edge)
            };
            conv.forward(x).permute([0, 2, 3, 1])
        }
    }
}

/// A 1-D convolution of a **channels-last** series `x (B, L, C)`, zero-padded by `zeros`
/// `[left, right]` first (on top of the module's own padding): `(B, Lo, O)`, the values of
/// `conv.forward(pad(x in channels-first order))` in channels-last order. On flex it is the 2-D
/// GEMM convolution of a one-row image (the FCN's convolutions: Burn's `Conv1d` computes its
/// input gradient through a direct-loop transposed convolution); groups, dilation, `Same`
/// padding and the other backends run Burn's ops between two permutes.
pub fn conv1d_channels_last(conv: &Conv1d, x: Tensor<3>, zeros: [usize; 2]) -> Tensor<3> {
    match conv1d_geometry(conv, &x, zeros) {
        #[cfg(feature = "flex")]
        Some(geometry) => {
            let [b, l, c] = x.dims();
            let [o, _, k] = conv.weight.dims();
            let [_, lo] = geometry.output(1, l);
            let weight = conv.weight.val().reshape([o, c, 1, k]);
            flex::conv2d(
                x.reshape([b, 1, l, c]),
                weight,
                conv.bias.as_ref().map(|b| b.val()),
                geometry,
                true,
            )
            .reshape([b, lo, o])
        }
        _ => {
            let [left, right] = zeros;
            let x = x.permute([0, 2, 1]);
            let x = if left + right == 0 {
                x
            } else {
                x.pad([(0, 0), (0, 0), (left, right)], PadMode::Constant(0.0))
            };
            conv.forward(x).permute([0, 2, 1])
        }
    }
}

/// The one-row geometry of the 1-D `conv` on the channels-last `x (B, L, C)`, zero-padded by
/// `zeros` on top of the module's own padding, where the GEMM convolution applies to them.
fn conv1d_geometry(conv: &Conv1d, x: &Tensor<3>, [left, right]: [usize; 2]) -> Option<Geometry> {
    let [a, z] = match conv.padding {
        PaddingConfig1d::Valid => [0, 0],
        PaddingConfig1d::Explicit(a, z) => [a, z],
        PaddingConfig1d::Same => return None,
    };
    if conv.groups != 1 || conv.dilation != 1 || !fast_path(x) {
        return None;
    }
    let (l, k) = (x.dims()[1], conv.weight.dims()[2]);
    (l + left + right + a + z >= k).then_some(Geometry {
        kernel: [1, k],
        stride: [1, conv.stride],
        padding: [0, left + a, 0, right + z],
        edge: false,
    })
}

/// The geometry of `conv` on `x` (spatial size `[h, w]`, replicate-padded by `replicate` first)
/// where the GEMM convolution applies to them.
fn conv_geometry(
    conv: &Conv2d,
    x: &Tensor<4>,
    [h, w]: [usize; 2],
    replicate: [usize; 4],
) -> Option<Geometry> {
    let zeros = match conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Same => return None,
    };
    let edge = replicate != [0; 4];
    if conv.groups != 1 || conv.dilation != [1, 1] || !fast_path(x) || (edge && zeros != [0; 4]) {
        return None;
    }
    let padding = if edge { replicate } else { zeros };
    let [_, _, kh, kw] = conv.weight.dims();
    let [hp, wp] = [h + padding[0] + padding[2], w + padding[1] + padding[3]];
    (hp >= kh && wp >= kw).then_some(Geometry {
        kernel: [kh, kw],
        stride: conv.stride,
        padding,
        edge,
    })
}

/// `conv.forward(x)` for a transposed convolution: the adjoint of a convolution, so one GEMM
/// over the input per chunk of samples and a scatter-add straight into the output grid (see the
/// module docs). Falls back to Burn's op for groups, dilation, an output padding of at least the
/// stride, or another backend.
pub fn conv_transpose2d(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    match transposed_geometry(conv, &x, [h, w]) {
        #[cfg(feature = "flex")]
        Some((geometry, output)) => flex::conv_transpose2d(
            x,
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            geometry,
            output,
            false,
        ),
        _ => conv.forward(x),
    }
}

/// [`conv_transpose2d`] on a **channels-last** activation `x (B, H, W, C)`: `(B, Ho, Wo, O)`.
pub fn conv_transpose2d_channels_last(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [_, h, w, _] = x.dims();
    match transposed_geometry(conv, &x, [h, w]) {
        #[cfg(feature = "flex")]
        Some((geometry, output)) => flex::conv_transpose2d(
            x,
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            geometry,
            output,
            true,
        ),
        _ => conv.forward(x.permute([0, 3, 1, 2])).permute([0, 2, 3, 1]),
    }
}

/// Where the GEMM path applies to `conv` on `x` (spatial size `[h, w]`): the convolution that
/// maps the output grid back onto the input grid, and the output size.
fn transposed_geometry(
    conv: &ConvTranspose2d,
    x: &Tensor<4>,
    [h, w]: [usize; 2],
) -> Option<(Geometry, [usize; 2])> {
    if conv.groups != 1 || conv.dilation != [1, 1] || !fast_path(x) {
        return None;
    }
    let [_, _, kh, kw] = conv.weight.dims();
    let ([sh, sw], [ph, pw], [qh, qw]) = (conv.stride, conv.padding, conv.padding_out);
    let out = |n: usize, k: usize, s: usize, p: usize, q: usize| {
        ((n - 1) * s + k + q).checked_sub(2 * p).filter(|&m| m + 2 * p >= k)
    };
    let (ho, wo) = (out(h, kh, sh, ph, qh)?, out(w, kw, sw, pw, qw)?);
    let geometry =
        Geometry { kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw, ph, pw], edge: false };
    (geometry.output(ho, wo) == [h, w]).then_some((geometry, [ho, wo]))
}

#[cfg(feature = "flex")]
mod flex {
    //! The flex-backend extension: the convolution and the transposed convolution with their
    //! backward, as parallel loops over chunks of samples that each run a gather or scatter and
    //! a single-threaded GEMM (the `gemm` crate, the one flex uses) into their own buffers.

    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
    use burn::tensor::{Shape, Tensor};
    use rayon::prelude::*;
    use std::cell::RefCell;
    use std::ops::Range;

    use crate::buffers::{sum_in_order, tensor, values};
    use crate::gemm::{View, matmul, matmul_uninit};
    use crate::im2col::Band;
    use crate::im2col::Geometry;
    use crate::im2col::flex::{
        gather_band_into, gather_into, scatter_band_into, scatter_into, transpose_samples,
    };
    use crate::winograd::{self, Scheme};
    use std::mem::MaybeUninit;

    /// The ops as a Burn backend extension (flex and its autodiff decorator only).
    #[backend_extension(Flex, Autodiff)]
    pub(crate) trait ConvBackend: Backend {
        /// `x (B, C, H, W)`, `weight (O, C, kh, kw)`, `bias (O)` → `(B, O, Ho, Wo)`; with
        /// `channels_last`, `x (B, H, W, C)` → `(B, Ho, Wo, O)`.
        fn conv2d_gemm(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
            channels_last: bool,
        ) -> FloatTensor<Self>;
        /// `x (B, C, H, W)`, `weight (C, O, kh, kw)`, `bias (O)` → `(B, O, Ho, Wo)`: the adjoint
        /// of the convolution `geometry` that maps `(O, Ho, Wo)` onto `(C, H, W)`, plus the bias
        /// (channels-last activations with `channels_last`).
        fn conv_transpose2d_gemm(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
            output: [usize; 2],
            channels_last: bool,
        ) -> FloatTensor<Self>;
    }

    fn zero_bias(channels: usize, like: &Tensor<4>) -> Tensor<1> {
        Tensor::zeros([channels], &like.device())
    }

    pub(super) fn conv2d(
        x: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        geometry: Geometry,
        channels_last: bool,
    ) -> Tensor<4> {
        let bias = bias.unwrap_or_else(|| zero_bias(weight.dims()[0], &x));
        Tensor::from_dispatch(<Dispatch as ConvBackend>::conv2d_gemm(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            geometry,
            channels_last,
        ))
    }

    pub(super) fn conv_transpose2d(
        x: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        geometry: Geometry,
        output: [usize; 2],
        channels_last: bool,
    ) -> Tensor<4> {
        let bias = bias.unwrap_or_else(|| zero_bias(weight.dims()[1], &x));
        Tensor::from_dispatch(<Dispatch as ConvBackend>::conv_transpose2d_gemm(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            geometry,
            output,
            channels_last,
        ))
    }

    /// Fewest GEMM rows (output positions) per chunk: below this the GEMM's packing of `W` and its edge tiles
    /// cost more than the parallel split gains.
    const MIN_ROWS: usize = 256;

    /// Fewest rows of the smallest per-point GEMM of a Winograd chunk (its middle band's have 3×
    /// as many). Chunks sized like the im2col ones (≥ 256) left the transformed inputs of a chunk
    /// out of L2; on 2 threads at the residual blocks' shapes ≥ 64 rows beat ≥ 16, 32 and 256
    /// (`conv_throughput`: 0.60–0.64× of im2col against 0.70–0.75× at 256).
    const WINOGRAD_MIN_ROWS: usize = 64;

    /// A Winograd scheme with the row bands it runs on, each with its weight transform.
    type Winograd = (&'static Scheme, Vec<(Band, Vec<f32>)>);

    /// A convolution of `batch` inputs `(C, H, W)` with `O` output channels: the shapes every
    /// kernel below works on. A transposed convolution is planned as the convolution it is the
    /// adjoint of.
    #[derive(Debug, Clone, Copy)]
    struct Plan {
        batch: usize,
        channels: usize,
        height: usize,
        width: usize,
        out_channels: usize,
        geometry: Geometry,
        /// Activations (input, output and their gradients) in `(B, H, W, C)` order: no layout
        /// change around the gather and the GEMMs.
        channels_last: bool,
    }

    thread_local! {
        /// Per-thread scratch of the chunk kernels (a channels-last input, an im2col matrix, a
        /// GEMM operand or result), kept between calls: a chunk's buffers are neither allocated
        /// nor cleared each time (every kernel writes all of what is read back, or clears it).
        static SCRATCH: RefCell<[Vec<f32>; 3]> = RefCell::default();
    }

    /// Runs `f` with three scratch slices of `sizes` values (contents unspecified).
    fn with_scratch<R>(
        sizes: [usize; 3],
        f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R,
    ) -> R {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                for (buffer, &n) in scratch.iter_mut().zip(&sizes) {
                    if buffer.len() < n {
                        buffer.resize(n, 0.0);
                    }
                }
                let [a, b, c] = &mut *scratch;
                f(&mut a[..sizes[0]], &mut b[..sizes[1]], &mut c[..sizes[2]])
            }
            // Only if a kernel ever ran inside another on the same thread.
            Err(_) => {
                f(&mut vec![0f32; sizes[0]], &mut vec![0f32; sizes[1]], &mut vec![0f32; sizes[2]])
            }
        })
    }

    /// `W (O, C, kh, kw)` as `(O, kh·kw·C)` in the im2col matrix's `(i, j, c)` order, or back
    /// (`inverse`). Per output channel a `C × kh·kw` transpose; for a 1 × 1 kernel the two orders
    /// are the same and the weight is copied.
    fn permute_weight(w: &[f32], [o, c, kh, kw]: [usize; 4], inverse: bool) -> Vec<f32> {
        let taps = kh * kw;
        assert_eq!(w.len(), o * c * taps, "permute_weight: size");
        if taps == 1 || w.is_empty() {
            return w.to_vec();
        }
        let mut out = vec![0f32; w.len()];
        // In parallel over output channels (on one thread the other core sat idle through it).
        let per = o.div_ceil(2 * rayon::current_num_threads().max(1)).max(1);
        out.par_chunks_mut(per * c * taps).zip(w.par_chunks(per * c * taps)).for_each(
            |(dst, src)| {
                for (src, dst) in src.chunks_exact(c * taps).zip(dst.chunks_exact_mut(c * taps)) {
                    // Channels-first (c, tap) → im2col (tap, c): written in order, read with stride
                    // `taps` (one output channel's weights are a few KiB, in L1); the inverse the
                    // other way.
                    if inverse {
                        for (ci, row) in dst.chunks_exact_mut(taps).enumerate() {
                            row.iter_mut().enumerate().for_each(|(t, v)| *v = src[t * c + ci]);
                        }
                    } else {
                        for (t, row) in dst.chunks_exact_mut(c).enumerate() {
                            row.iter_mut().enumerate().for_each(|(ci, v)| *v = src[ci * taps + t]);
                        }
                    }
                }
            },
        );
        out
    }

    /// `dst` as `points` consecutive products `lhs(ξ) · rhs(ξ)`: a Winograd pass's GEMM per point.
    fn point_products<'a>(
        dst: &mut [f32],
        points: usize,
        lhs: impl Fn(usize) -> View<'a>,
        rhs: impl Fn(usize) -> View<'a>,
    ) {
        let size = dst.len() / points.max(1);
        for (xi, dst) in dst.chunks_exact_mut(size.max(1)).enumerate().take(points) {
            matmul(dst, lhs(xi), rhs(xi));
        }
    }

    /// A Winograd band's weight gradient added into `dw`: `P_ξ = E_ξᵀ · V_ξ` per point (`E = A g`
    /// and `V = Bᵀ x`, `points` matrices `(m, O)` and `(m, kb)`) into the scratch `pm`, folded back
    /// onto the kernel's taps.
    #[allow(clippy::too_many_arguments)]
    fn add_winograd_weight_grad(
        scheme: &Scheme,
        band: &Band,
        e: &[f32],
        v: &[f32],
        [m, o, kb]: [usize; 3],
        [kh, c]: [usize; 2],
        pm: &mut [f32],
        dw: &mut [f32],
    ) {
        let np = scheme.points();
        let pm = &mut pm[..np * o * kb];
        point_products(
            pm,
            np,
            |xi| View::row_major(&e[xi * m * o..][..m * o], m, o).t(),
            |xi| View::row_major(&v[xi * m * kb..][..m * kb], m, kb),
        );
        winograd::add_weight_grad(scheme, dw, pm, [o, kh, c], band);
    }

    /// `data` cut into consecutive pieces of `ranges[i].len() · per` values.
    fn split_mut<'a, T>(
        mut data: &'a mut [T],
        ranges: &[Range<usize>],
        per: usize,
    ) -> Vec<&'a mut [T]> {
        let mut pieces = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (head, tail) = data.split_at_mut(range.len() * per);
            pieces.push(head);
            data = tail;
        }
        pieces
    }

    /// `[B, C, H, W]` of a 4-D shape in channels-first or channels-last order.
    fn nchw(x: &Shape, channels_last: bool) -> [usize; 4] {
        if channels_last { [x[0], x[3], x[1], x[2]] } else { [x[0], x[1], x[2], x[3]] }
    }

    impl Plan {
        fn conv(x: &Shape, weight: &Shape, geometry: Geometry, channels_last: bool) -> Self {
            assert_eq!((x.num_dims(), weight.num_dims()), (4, 4), "conv2d: 4-D input and weight");
            let [b, c, h, w] = nchw(x, channels_last);
            assert_eq!(c, weight[1], "conv2d: input channels");
            assert_eq!([weight[2], weight[3]], geometry.kernel, "conv2d: kernel");
            Plan {
                batch: b,
                channels: c,
                height: h,
                width: w,
                out_channels: weight[0],
                geometry,
                channels_last,
            }
        }

        /// The convolution a transposed convolution of `x (B, C, H, W)` with `weight (C, O, kh,
        /// kw)` onto `output` is the adjoint of: from `(O, Ho, Wo)` to `(C, H, W)`.
        fn transposed(
            x: &Shape,
            weight: &Shape,
            geometry: Geometry,
            [ho, wo]: [usize; 2],
            channels_last: bool,
        ) -> Self {
            assert_eq!(
                (x.num_dims(), weight.num_dims()),
                (4, 4),
                "conv_transpose2d: 4-D input and weight"
            );
            let [b, c, h, w] = nchw(x, channels_last);
            assert_eq!(c, weight[0], "conv_transpose2d: input channels");
            assert_eq!([weight[2], weight[3]], geometry.kernel, "conv_transpose2d: kernel");
            assert_eq!(geometry.output(ho, wo), [h, w], "conv_transpose2d: output size");
            Plan {
                batch: b,
                channels: weight[1],
                height: ho,
                width: wo,
                out_channels: c,
                geometry,
                channels_last,
            }
        }

        /// Rows of the im2col matrix per sample column: `C·kh·kw`.
        fn k(&self) -> usize {
            self.channels * self.geometry.kernel[0] * self.geometry.kernel[1]
        }

        /// Output positions per sample: `Ho·Wo`.
        fn p(&self) -> usize {
            let [ho, wo] = self.geometry.output(self.height, self.width);
            ho * wo
        }

        /// Input positions per sample: `H·W`.
        fn q(&self) -> usize {
            self.height * self.width
        }

        fn input_dims(&self, n: usize) -> [usize; 4] {
            [n, self.channels, self.height, self.width]
        }

        /// `[B, channels, h, w]` as a shape in this plan's layout.
        fn shape(&self, channels: usize, [h, w]: [usize; 2]) -> Shape {
            Shape::from(if self.channels_last {
                vec![self.batch, h, w, channels]
            } else {
                vec![self.batch, channels, h, w]
            })
        }

        fn input_shape(&self) -> Shape {
            self.shape(self.channels, [self.height, self.width])
        }

        fn output_shape(&self) -> Shape {
            self.shape(self.out_channels, self.geometry.output(self.height, self.width))
        }

        /// Sample ranges, one per work item: each large enough for an efficient GEMM (`rows`
        /// GEMM rows per sample in its smallest product, at least `min_rows` of them), and a
        /// multiple of the thread count of them so both cores get equal work.
        fn chunks(&self, [rows, min_rows]: [usize; 2]) -> Vec<Range<usize>> {
            let b = self.batch;
            if b == 0 {
                return Vec::new();
            }
            let threads = rayon::current_num_threads().max(1);
            let per = min_rows.div_ceil(rows.max(1)).max(1);
            let items = (b.div_ceil(per).div_ceil(threads) * threads).min(b);
            (0..items).map(|i| i * b / items..(i + 1) * b / items).collect()
        }

        /// GEMM rows per sample of a chunk's smallest product (the smallest band's where the
        /// passes run per row band, otherwise the whole matrix's `Ho·Wo`), and the fewest rows it
        /// should have ([`MIN_ROWS`]). Sized by the whole
        /// matrix, the edge bands' GEMMs had 62 rows and the bands saved 3–6 % of the op instead
        /// of 5–11 % (`conv_throughput`; chunks of ≥ 1,024 rows per band were slower than no
        /// bands).
        fn gemm_rows(&self, bands: Option<&[(Band, Vec<f32>)]>) -> [usize; 2] {
            [
                bands
                    .and_then(|bands| {
                        bands.iter().map(|(band, _)| band.rows.len() * self.wo()).min()
                    })
                    .unwrap_or_else(|| self.p()),
                MIN_ROWS,
            ]
        }

        /// Whether the im2col matrix of a channels-last chunk is the chunk itself: a 1 × 1 kernel
        /// with stride 1 and no padding. Then the gather, the scatter-add and the zeroing before
        /// it are skipped: the GEMMs read the input and write the input gradient directly.
        fn pointwise(&self) -> bool {
            let g = self.geometry;
            self.channels_last && g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0; 4]
        }

        /// Where the rows are padded (channels-last, not pointwise): the output rows in
        /// [`Band`]s, each with its weight `(O, groups·kw·C)` (a group's kernel rows summed).
        /// The GEMMs of a band then skip the taps that read the zero padding (and read an edge
        /// row once where a replicate padding repeats it): on the 5 frequency rows with a 3-row
        /// kernel, 2 of the 15 kernel rows' work.
        fn banded(&self, wp: &[f32]) -> Option<Vec<(Band, Vec<f32>)>> {
            if !crate::tuning::conv_row_bands() || !self.channels_last || self.pointwise() {
                return None;
            }
            let bands = self.geometry.bands(self.height, self.width);
            if Band::whole(&bands, self.geometry.kernel[0]) {
                return None;
            }
            let (o, k, seg) =
                (self.out_channels, self.k(), self.geometry.kernel[1] * self.channels);
            Some(
                bands
                    .into_iter()
                    .map(|band| {
                        let kb = band.taps.len() * seg;
                        let mut wb = vec![0f32; o * kb];
                        for oi in 0..o {
                            for (e, group) in band.taps.iter().enumerate() {
                                let dst = &mut wb[oi * kb + e * seg..][..seg];
                                for &i in group {
                                    dst.iter_mut()
                                        .zip(&wp[oi * k + i * seg..][..seg])
                                        .for_each(|(d, v)| *d += v);
                                }
                            }
                        }
                        (band, wb)
                    })
                    .collect(),
            )
        }

        /// Where a Winograd scheme applies ([`crate::winograd`]: channels-last, 3 kernel columns
        /// at column stride 1 or 4 at stride 2): the scheme and the row bands (or, with the
        /// bands off, the whole matrix as one band), each with its weight transform `U` (`Uᵀ`
        /// where `transposed`; empty unless `want_u`).
        fn winograd(&self, wp: &[f32], want_u: bool, transposed: bool) -> Option<Winograd> {
            if !crate::tuning::conv_winograd() || !self.channels_last || self.pointwise() {
                return None;
            }
            let scheme = winograd::scheme(&self.geometry)?;
            let [kh, _] = self.geometry.kernel;
            let bands = if crate::tuning::conv_row_bands() {
                self.geometry.bands(self.height, self.width)
            } else {
                vec![Band {
                    rows: 0..self.geometry.output(self.height, self.width)[0],
                    taps: (0..kh).map(|i| vec![i]).collect(),
                }]
            };
            let bands = bands
                .into_iter()
                .map(|band| {
                    let u = if want_u {
                        winograd::weights(
                            scheme,
                            wp,
                            [self.out_channels, kh, self.channels],
                            &band,
                            transposed,
                        )
                    } else {
                        Vec::new()
                    };
                    (band, u)
                })
                .collect();
            Some((scheme, bands))
        }

        /// GEMM rows per sample of the Winograd passes' smallest product (one per band row and
        /// tile), and the fewest rows it should have.
        fn winograd_rows(&self, (scheme, bands): &Winograd) -> [usize; 2] {
            [
                bands.iter().map(|(band, _)| scheme.rows(1, band, self.wo())).min().unwrap_or(1),
                WINOGRAD_MIN_ROWS,
            ]
        }

        /// The largest GEMM rows, inner dimension and their product of the Winograd bands over
        /// `n` samples: the scratch the passes need.
        fn winograd_sizes(&self, (scheme, bands): &Winograd, n: usize) -> (usize, usize, usize) {
            let c = self.channels;
            let max = |f: &dyn Fn(usize, usize) -> usize| {
                bands
                    .iter()
                    .map(|(band, _)| f(scheme.rows(n, band, self.wo()), scheme.width(band, c)))
                    .max()
                    .unwrap_or(0)
            };
            (max(&|m, _| m), max(&|_, kb| kb), max(&|m, kb| m * kb))
        }

        /// Output rows per sample: `Wo`.
        fn wo(&self) -> usize {
            self.geometry.output(self.height, self.width)[1]
        }

        fn weight_dims(&self) -> [usize; 4] {
            let [kh, kw] = self.geometry.kernel;
            [self.out_channels, self.channels, kh, kw]
        }

        /// Runs `chunk(range, output piece, dW partial)` over the chunks in parallel (output
        /// pieces empty where `out_per_sample` is 0) and sums the weight-gradient partials,
        /// un-permuted. The output pieces arrive uninitialised: `chunk` must write every value
        /// of its piece ([`zeroed_piece`] first where it only adds into it).
        fn chunk_pass(
            &self,
            out_per_sample: usize,
            rows: [usize; 2],
            want_dw: bool,
            chunk: impl Fn(Range<usize>, &mut [MaybeUninit<f32>], &mut [f32]) + Sync,
        ) -> (Vec<f32>, Option<Vec<f32>>) {
            let (k, o) = (self.k(), self.out_channels);
            let total = self.batch * out_per_sample;
            let mut out: Vec<f32> = Vec::with_capacity(total);
            let chunks = self.chunks(rows);
            let pieces = split_mut(&mut out.spare_capacity_mut()[..total], &chunks, out_per_sample);
            let mut work: Vec<(Range<usize>, &mut [std::mem::MaybeUninit<f32>])> =
                chunks.iter().cloned().zip(pieces).collect();
            // One task per thread, each over a fixed run of consecutive chunks, its dW partial
            // summed in chunk order; the partials then added in task order. The same sums every
            // run (for this thread count), with one partial per thread alive, not one per chunk.
            // (Four tasks per thread, each a job of its own so that a thread finishing early
            // takes another, were tried: no consistent gain over these in whole steps;
            // docs/benchmarks-history.md.)
            let per_task = work.len().div_ceil(rayon::current_num_threads().max(1)).max(1);
            let n_dw = if want_dw { o * k } else { 0 };
            let dwp = work
                .par_chunks_mut(per_task)
                .map(|task| {
                    let mut acc = vec![0f32; n_dw];
                    let mut dw = Vec::new();
                    for (i, (range, piece)) in task.iter_mut().enumerate() {
                        if i == 0 {
                            chunk(range.clone(), piece, &mut acc);
                        } else {
                            dw.resize(n_dw, 0.0);
                            chunk(range.clone(), piece, &mut dw);
                            acc.iter_mut().zip(&dw).for_each(|(a, d)| *a += d);
                        }
                    }
                    acc
                })
                .collect::<Vec<_>>();
            // SAFETY: the chunks partition the samples, so the pieces cover all `total` values,
            // and every `chunk` writes all of its piece.
            unsafe { out.set_len(total) };
            let dw = want_dw
                .then(|| permute_weight(&sum_in_order(dwp, o * k), self.weight_dims(), true));
            (out, dw)
        }

        /// The passes that start from the im2col matrix of `x (B, C, H, W)`: the convolution
        /// `y = im2col(x) · Wᵀ (+ bias)`, `(B, O, Ho, Wo)`, and `dW = Σ gᵀ · im2col(x)` for a
        /// gradient `g (B, O, Ho, Wo)`, each where asked for, sharing one im2col per chunk. The
        /// convolution's forward, and a transposed convolution's backward (`x` its output
        /// gradient, `g` its input).
        fn im2col_pass(
            &self,
            x: &[f32],
            g: &[f32],
            w: &[f32],
            bias: Option<&[f32]>,
            want_y: bool,
            want_dw: bool,
        ) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
            let (k, p, q, c, o) = (self.k(), self.p(), self.q(), self.channels, self.out_channels);
            let wp = permute_weight(w, self.weight_dims(), false);
            let wino = self.winograd(&wp, want_y, true);
            let bands = if wino.is_some() { None } else { self.banded(&wp) };
            let rows = wino
                .as_ref()
                .map_or_else(|| self.gemm_rows(bands.as_deref()), |wino| self.winograd_rows(wino));
            // A 1 × 1 convolution's forward multiplies by `W'ᵀ` laid out `(C, O)` row-major: with
            // `k = C = 64` the GEMM ran at about half the rate on the transposed view of `W'`
            // (40–50 against 75–98 GFLOP/s per thread in the stage-1 steps).
            let wpt = if self.pointwise() && want_y {
                let mut t = vec![0f32; wp.len()];
                transpose_samples(&wp, [1, o, k], None, &mut t);
                t
            } else {
                Vec::new()
            };
            let (y, dw) =
                self.chunk_pass(if want_y { o * p } else { 0 }, rows, want_dw, |range, y, dw| {
                    let n = range.len();
                    if let Some(wino) = &wino {
                        let (scheme, (wo, kh), np) =
                            (wino.0, (self.wo(), self.geometry.kernel[0]), wino.0.points());
                        let (max_m, max_kb, max_mkb) = self.winograd_sizes(wino, n);
                        let xs = &x[range.start * q * c..range.end * q * c];
                        let products = (if want_y { max_m * o } else { 0 }).max(if want_dw {
                            o * max_kb
                        } else {
                            0
                        });
                        return with_scratch(
                            [if want_dw { np * max_m * o } else { 0 }, np * max_mkb, np * products],
                            |e, v, mm| {
                                if want_dw {
                                    dw.fill(0.0);
                                }
                                for (band, ut) in &wino.1 {
                                    let (m, kb) = (scheme.rows(n, band, wo), scheme.width(band, c));
                                    let v = &mut v[..np * m * kb];
                                    winograd::input(
                                        scheme,
                                        xs,
                                        self.input_dims(n),
                                        self.geometry,
                                        band,
                                        v,
                                    );
                                    if want_y {
                                        // M_ξ = V_ξ · U_ξᵀ, then y = Aᵀ M (+ bias) into the band's rows.
                                        let mm = &mut mm[..np * m * o];
                                        point_products(
                                            mm,
                                            np,
                                            |xi| {
                                                View::row_major(&v[xi * m * kb..][..m * kb], m, kb)
                                            },
                                            |xi| {
                                                View::row_major(&ut[xi * kb * o..][..kb * o], kb, o)
                                            },
                                        );
                                        winograd::output(scheme, mm, n, band, wo, o, bias, y);
                                    }
                                    if want_dw {
                                        // P_ξ = E_ξᵀ · V_ξ with E = A g, folded back onto the taps.
                                        let e = &mut e[..np * m * o];
                                        winograd::output_adjoint(
                                            scheme,
                                            &g[range.start * p * o..range.end * p * o],
                                            n,
                                            band,
                                            wo,
                                            o,
                                            e,
                                        );
                                        add_winograd_weight_grad(
                                            scheme,
                                            band,
                                            e,
                                            v,
                                            [m, o, kb],
                                            [kh, c],
                                            mm,
                                            dw,
                                        );
                                    }
                                }
                            },
                        );
                    }
                    if self.pointwise() {
                        // x (n, H, W, C) is its own im2col matrix (k = C, p = q).
                        let cols = &x[range.start * q * c..range.end * q * c];
                        if want_y {
                            matmul_uninit(
                                y,
                                View::row_major(cols, n * p, k),
                                View::row_major(&wpt, k, o),
                            );
                            // SAFETY: initialised by the GEMM just above.
                            add_rows(unsafe { assume_init(y) }, bias);
                        }
                        if want_dw {
                            matmul(
                                dw,
                                View::row_major(
                                    &g[range.start * p * o..range.end * p * o],
                                    n * p,
                                    o,
                                )
                                .t(),
                                View::row_major(cols, n * p, k),
                            );
                        }
                        return;
                    }
                    if let Some(bands) = &bands {
                        let (wo, seg) = (self.wo(), self.geometry.kernel[1] * c);
                        let xs = &x[range.start * q * c..range.end * q * c];
                        return with_scratch(
                            [
                                if want_dw { n * p * o } else { 0 },
                                n * p * k,
                                if want_y { n * p * o } else { 0 },
                            ],
                            |gb, cols, t| {
                                if want_dw {
                                    dw.fill(0.0);
                                }
                                for (band, wb) in bands {
                                    let (m, kb) = (n * band.rows.len() * wo, band.taps.len() * seg);
                                    let cols = &mut cols[..m * kb];
                                    gather_band_into(
                                        xs,
                                        self.input_dims(n),
                                        self.geometry,
                                        band,
                                        cols,
                                    );
                                    if want_y {
                                        let t = &mut t[..m * o];
                                        matmul(
                                            t,
                                            View::row_major(cols, m, kb),
                                            View::row_major(wb, o, kb).t(),
                                        );
                                        band_to_rows(t, n, &band.rows, wo * o, bias, y);
                                    }
                                    if want_dw {
                                        let gb = &mut gb[..m * o];
                                        rows_to_band(
                                            &g[range.start * p * o..range.end * p * o],
                                            n,
                                            &band.rows,
                                            wo * o,
                                            gb,
                                        );
                                        add_band_weight_grad(dw, gb, cols, band, [m, o, k], seg);
                                    }
                                }
                            },
                        );
                    }
                    if self.channels_last {
                        // x (n, H, W, C) is the gather's input and t (n, Ho, Wo, O) the output as they are.
                        return with_scratch([0, n * p * k, 0], |_, cols, _| {
                            gather_into(
                                &x[range.start * q * c..range.end * q * c],
                                self.input_dims(n),
                                self.geometry,
                                cols,
                            );
                            if want_y {
                                // The GEMM writes every value of the piece.
                                matmul_uninit(
                                    y,
                                    View::row_major(cols, n * p, k),
                                    View::row_major(&wp, o, k).t(),
                                );
                                // SAFETY: initialised by the GEMM just above.
                                add_rows(unsafe { assume_init(y) }, bias);
                            }
                            if want_dw {
                                matmul(
                                    dw,
                                    View::row_major(
                                        &g[range.start * p * o..range.end * p * o],
                                        n * p,
                                        o,
                                    )
                                    .t(),
                                    View::row_major(cols, n * p, k),
                                );
                            }
                        });
                    }
                    with_scratch([n * q * c, n * p * k, n * p * o], |planes, cols, t| {
                        transpose_samples(
                            &x[range.start * c * q..range.end * c * q],
                            [n, c, q],
                            None,
                            planes,
                        );
                        gather_into(planes, self.input_dims(n), self.geometry, cols);
                        if want_y {
                            matmul(
                                t,
                                View::row_major(cols, n * p, k),
                                View::row_major(&wp, o, k).t(),
                            );
                            transpose_samples(t, [n, p, o], bias, zeroed_piece(y));
                        }
                        if want_dw {
                            transpose_samples(
                                &g[range.start * o * p..range.end * o * p],
                                [n, o, p],
                                None,
                                t,
                            );
                            matmul(
                                dw,
                                View::row_major(t, n * p, o).t(),
                                View::row_major(cols, n * p, k),
                            );
                        }
                    });
                });
            (want_y.then_some(y), dw)
        }

        /// The passes that start from a gradient `g (B, O, Ho, Wo)` laid out once per chunk: the
        /// adjoint `dx = col2im(g · W) (+ bias per input channel)`, `(B, C, H, W)`, and
        /// `dW = Σ gᵀ · im2col(x)`, each where asked for (im2col recomputed, never stored). The
        /// convolution's backward, and a transposed convolution's forward (`g` its input).
        fn scatter_pass(
            &self,
            g: &[f32],
            x: &[f32],
            w: &[f32],
            bias: Option<&[f32]>,
            want_dx: bool,
            want_dw: bool,
        ) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
            let (k, p, q, c, o) = (self.k(), self.p(), self.q(), self.channels, self.out_channels);
            let wp = permute_weight(w, self.weight_dims(), false);
            let wino = self.winograd(&wp, want_dx, false);
            let bands = if wino.is_some() { None } else { self.banded(&wp) };
            let rows = wino
                .as_ref()
                .map_or_else(|| self.gemm_rows(bands.as_deref()), |wino| self.winograd_rows(wino));
            let (dx, dw) =
                self.chunk_pass(if want_dx { c * q } else { 0 }, rows, want_dw, |range, dx, dw| {
                    let n = range.len();
                    if let Some(wino) = &wino {
                        let (scheme, (wo, kh), np) =
                            (wino.0, (self.wo(), self.geometry.kernel[0]), wino.0.points());
                        let (max_m, max_kb, max_mkb) = self.winograd_sizes(wino, n);
                        let g = &g[range.start * p * o..range.end * p * o];
                        return with_scratch(
                            [
                                np * max_m * o,
                                np * max_mkb,
                                if want_dw { np * o * max_kb } else { 0 },
                            ],
                            |e, cols, pm| {
                                // The adjoint adds into dx: zeroed by this worker.
                                let mut dx = want_dx.then(|| zeroed_piece(dx));
                                if want_dw {
                                    dw.fill(0.0);
                                }
                                for (band, u) in &wino.1 {
                                    let (m, kb) = (scheme.rows(n, band, wo), scheme.width(band, c));
                                    let e = &mut e[..np * m * o];
                                    winograd::output_adjoint(scheme, g, n, band, wo, o, e);
                                    let cols = &mut cols[..np * m * kb];
                                    if let Some(dx) = dx.as_deref_mut() {
                                        // R_ξ = E_ξ · U_ξ, added onto the input columns as Bᵀ R.
                                        point_products(
                                            cols,
                                            np,
                                            |xi| View::row_major(&e[xi * m * o..][..m * o], m, o),
                                            |xi| {
                                                View::row_major(&u[xi * o * kb..][..o * kb], o, kb)
                                            },
                                        );
                                        winograd::input_adjoint(
                                            scheme,
                                            cols,
                                            self.input_dims(n),
                                            self.geometry,
                                            band,
                                            dx,
                                        );
                                    }
                                    if want_dw {
                                        winograd::input(
                                            scheme,
                                            &x[range.start * q * c..range.end * q * c],
                                            self.input_dims(n),
                                            self.geometry,
                                            band,
                                            cols,
                                        );
                                        add_winograd_weight_grad(
                                            scheme,
                                            band,
                                            e,
                                            cols,
                                            [m, o, kb],
                                            [kh, c],
                                            pm,
                                            dw,
                                        );
                                    }
                                }
                                if let Some(dx) = dx {
                                    add_rows(dx, bias);
                                }
                            },
                        );
                    }
                    if self.pointwise() {
                        // dx = g · W' is the input gradient itself (no scatter-add, nothing to zero),
                        // and x its own im2col matrix.
                        let g =
                            View::row_major(&g[range.start * p * o..range.end * p * o], n * p, o);
                        if want_dx {
                            matmul_uninit(dx, g, View::row_major(&wp, o, k));
                            // SAFETY: initialised by the GEMM just above.
                            add_rows(unsafe { assume_init(dx) }, bias);
                        }
                        if want_dw {
                            matmul(
                                dw,
                                g.t(),
                                View::row_major(
                                    &x[range.start * q * c..range.end * q * c],
                                    n * p,
                                    k,
                                ),
                            );
                        }
                        return;
                    }
                    if let Some(bands) = &bands {
                        let (wo, seg) = (self.wo(), self.geometry.kernel[1] * c);
                        let g = &g[range.start * p * o..range.end * p * o];
                        return with_scratch([n * p * o, n * p * k, 0], |gb, cols, _| {
                            // The scatter adds into dx: zeroed by this worker (see below).
                            let mut dx = want_dx.then(|| zeroed_piece(dx));
                            if want_dw {
                                dw.fill(0.0);
                            }
                            for (band, wb) in bands {
                                let (m, kb) = (n * band.rows.len() * wo, band.taps.len() * seg);
                                let gb = &mut gb[..m * o];
                                rows_to_band(g, n, &band.rows, wo * o, gb);
                                let cols = &mut cols[..m * kb];
                                if let Some(dx) = dx.as_deref_mut() {
                                    matmul(
                                        cols,
                                        View::row_major(gb, m, o),
                                        View::row_major(wb, o, kb),
                                    );
                                    scatter_band_into(
                                        cols,
                                        self.input_dims(n),
                                        self.geometry,
                                        band,
                                        dx,
                                    );
                                }
                                if want_dw {
                                    gather_band_into(
                                        &x[range.start * q * c..range.end * q * c],
                                        self.input_dims(n),
                                        self.geometry,
                                        band,
                                        cols,
                                    );
                                    add_band_weight_grad(dw, gb, cols, band, [m, o, k], seg);
                                }
                            }
                            if let Some(dx) = dx {
                                add_rows(dx, bias);
                            }
                        });
                    }
                    if self.channels_last {
                        let g = &g[range.start * p * o..range.end * p * o];
                        return with_scratch([0, n * p * k, 0], |_, cols, _| {
                            if want_dx {
                                // The scatter adds into dx: each worker zeroes its own piece (in
                                // cache, just before it is written) instead of one thread zeroing
                                // the whole output.
                                let dx = zeroed_piece(dx);
                                matmul(
                                    cols,
                                    View::row_major(g, n * p, o),
                                    View::row_major(&wp, o, k),
                                );
                                scatter_into(cols, self.input_dims(n), self.geometry, dx);
                                add_rows(dx, bias);
                            }
                            if want_dw {
                                gather_into(
                                    &x[range.start * q * c..range.end * q * c],
                                    self.input_dims(n),
                                    self.geometry,
                                    cols,
                                );
                                matmul(
                                    dw,
                                    View::row_major(g, n * p, o).t(),
                                    View::row_major(cols, n * p, k),
                                );
                            }
                        });
                    }
                    with_scratch([n * p * o, n * p * k, n * q * c], |gt, cols, planes| {
                        transpose_samples(
                            &g[range.start * o * p..range.end * o * p],
                            [n, o, p],
                            None,
                            gt,
                        );
                        if want_dx {
                            matmul(cols, View::row_major(gt, n * p, o), View::row_major(&wp, o, k));
                            planes.fill(0.0);
                            scatter_into(cols, self.input_dims(n), self.geometry, planes);
                            transpose_samples(planes, [n, q, c], bias, zeroed_piece(dx));
                        }
                        if want_dw {
                            transpose_samples(
                                &x[range.start * c * q..range.end * c * q],
                                [n, c, q],
                                None,
                                planes,
                            );
                            gather_into(planes, self.input_dims(n), self.geometry, cols);
                            matmul(
                                dw,
                                View::row_major(gt, n * p, o).t(),
                                View::row_major(cols, n * p, k),
                            );
                        }
                    });
                });
            (want_dx.then_some(dx), dw)
        }
    }

    /// An output piece zeroed, for kernels that add into it or write it through `&mut [f32]`.
    fn zeroed_piece(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
        for v in piece.iter_mut() {
            v.write(0.0);
        }
        // SAFETY: every value was initialised just above.
        unsafe { assume_init(piece) }
    }

    /// # Safety
    /// Every value of `piece` must be initialised.
    unsafe fn assume_init(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
        // SAFETY: `f32` and `MaybeUninit<f32>` have the same layout; the caller guarantees the
        // values are initialised.
        unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }

    /// `bias` added to every row of the channels-last `rows` (`(…, C)`), where given.
    fn add_rows(rows: &mut [f32], bias: Option<&[f32]>) {
        if let Some(bias) = bias {
            for row in rows.chunks_exact_mut(bias.len()) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
    }

    /// The rows `band` (of `row` values each) of every one of the `n` samples of the
    /// channels-last `src` into `dst`, sample after sample: a band's GEMM operand.
    fn rows_to_band(src: &[f32], n: usize, band: &Range<usize>, row: usize, dst: &mut [f32]) {
        let (per, sample) = (band.len() * row, src.len() / n);
        assert_eq!(dst.len(), n * per, "band rows: sizes");
        for b in 0..n {
            dst[b * per..][..per].copy_from_slice(&src[b * sample + band.start * row..][..per]);
        }
    }

    /// The adjoint of [`rows_to_band`] for an output: a band's GEMM result `src` written into the
    /// rows `band` of every one of the `n` samples of `dst`, plus the bias per channel where given.
    fn band_to_rows(
        src: &[f32],
        n: usize,
        band: &Range<usize>,
        row: usize,
        bias: Option<&[f32]>,
        dst: &mut [MaybeUninit<f32>],
    ) {
        let (per, sample) = (band.len() * row, dst.len() / n);
        assert_eq!(src.len(), n * per, "band rows: sizes");
        for b in 0..n {
            let (s, d) = (&src[b * per..][..per], &mut dst[b * sample + band.start * row..][..per]);
            match bias {
                Some(bias) if !bias.is_empty() => {
                    for (d, s) in d.chunks_exact_mut(bias.len()).zip(s.chunks_exact(bias.len())) {
                        d.iter_mut().zip(s).zip(bias).for_each(|((d, &v), &b)| {
                            d.write(v + b);
                        });
                    }
                }
                _ => d.iter_mut().zip(s).for_each(|(d, &v)| {
                    d.write(v);
                }),
            }
        }
    }

    /// A band's weight gradient `gbᵀ · cols` (`gb (m, O)` its output gradient, `cols (m,
    /// groups·seg)` its gather) added into the convolution's `dw (O, k)`, each group's segment
    /// onto every kernel row of the group.
    fn add_band_weight_grad(
        dw: &mut [f32],
        gb: &[f32],
        cols: &[f32],
        band: &Band,
        [m, o, k]: [usize; 3],
        seg: usize,
    ) {
        let kb = band.taps.len() * seg;
        if kb == 0 {
            return;
        }
        let mut dwb = vec![0f32; o * kb];
        matmul(&mut dwb, View::row_major(gb, m, o).t(), View::row_major(cols, m, kb));
        for (d, s) in dw.chunks_exact_mut(k).zip(dwb.chunks_exact(kb)) {
            for (e, group) in band.taps.iter().enumerate() {
                let s = &s[e * seg..][..seg];
                for &i in group {
                    d[i * seg..][..seg].iter_mut().zip(s).for_each(|(d, v)| *d += v);
                }
            }
        }
    }

    /// Per-channel sums of `(B, C, Q)` values, or of `(B, Q, C)` ones with `channels_last`: the
    /// bias gradient.
    fn channel_sums(dy: &[f32], c: usize, q: usize, channels_last: bool) -> Vec<f32> {
        // Blocks of whole samples (at least 16 Ki values), their partials added in block order:
        // the same sums whatever the scheduling.
        if c * q == 0 {
            return vec![0f32; c];
        }
        let per = (16384 / (c * q)).max(1) * c * q;
        let parts: Vec<Vec<f32>> = dy
            .par_chunks(per)
            .map(|block| {
                let mut acc = vec![0f32; c];
                for sample in block.chunks_exact(c * q) {
                    if channels_last {
                        for row in sample.chunks_exact(c) {
                            acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                        }
                    } else {
                        for (a, plane) in acc.iter_mut().zip(sample.chunks_exact(q)) {
                            *a += plane.iter().sum::<f32>();
                        }
                    }
                }
                acc
            })
            .collect();
        sum_in_order(parts, c)
    }

    fn conv_forward(plan: &Plan, x: &FlexTensor, w: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
        let (y, _) =
            plan.im2col_pass(&values(x), &[], &values(w), Some(&values(bias)), true, false);
        tensor(y.expect("asked for"), plan.output_shape())
    }

    fn transposed_forward(
        plan: &Plan,
        x: &FlexTensor,
        w: &FlexTensor,
        bias: &FlexTensor,
    ) -> FlexTensor {
        let (y, _) =
            plan.scatter_pass(&values(x), &[], &values(w), Some(&values(bias)), true, false);
        tensor(y.expect("asked for"), plan.input_shape())
    }

    impl ConvBackend for Flex {
        fn conv2d_gemm(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
            channels_last: bool,
        ) -> FloatTensor<Self> {
            conv_forward(
                &Plan::conv(&x.shape(), &weight.shape(), geometry, channels_last),
                &x,
                &weight,
                &bias,
            )
        }

        fn conv_transpose2d_gemm(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
            output: [usize; 2],
            channels_last: bool,
        ) -> FloatTensor<Self> {
            transposed_forward(
                &Plan::transposed(&x.shape(), &weight.shape(), geometry, output, channels_last),
                &x,
                &weight,
                &bias,
            )
        }
    }

    #[derive(Debug)]
    struct ConvBackward;

    /// What the backward needs: the plan, the op's input and weight, and which way round it ran.
    #[derive(Debug, Clone)]
    struct Saved {
        plan: Plan,
        transposed: bool,
        x: FlexTensor,
        weight: FlexTensor,
    }

    impl Backward<Flex, 3> for ConvBackward {
        type State = Saved;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_w, node_b] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let Saved { plan, transposed, x, weight } = ops.state;
            let (dy, xs, w) = (values(&grad), values(&x), values(&weight));
            let (want_dx, want_dw) = (node_x.is_some(), node_w.is_some());
            let (dx, dw, db) = if transposed {
                // y = col2im(x · W): y plays the convolution's input, x its output gradient.
                let (dx, dw) = plan.im2col_pass(&dy, &xs, &w, None, want_dx, want_dw);
                (
                    dx,
                    dw,
                    node_b
                        .as_ref()
                        .map(|_| channel_sums(&dy, plan.channels, plan.q(), plan.channels_last)),
                )
            } else {
                let (dx, dw) = plan.scatter_pass(&dy, &xs, &w, None, want_dx, want_dw);
                (
                    dx,
                    dw,
                    node_b.as_ref().map(|_| {
                        channel_sums(&dy, plan.out_channels, plan.p(), plan.channels_last)
                    }),
                )
            };
            for (node, grad, shape) in [(node_x, dx, x.shape()), (node_w, dw, weight.shape())] {
                if let (Some(node), Some(grad)) = (node, grad) {
                    grads.register::<Flex>(node.id, tensor(grad, shape));
                }
            }
            if let (Some(node), Some(db)) = (node_b, db) {
                let n = db.len();
                grads.register::<Flex>(node.id, tensor(db, Shape::from(vec![n])));
            }
        }
    }

    fn tracked<C: CheckpointStrategy>(
        x: FloatTensor<Autodiff<Flex, C>>,
        weight: FloatTensor<Autodiff<Flex, C>>,
        bias: FloatTensor<Autodiff<Flex, C>>,
        transposed: bool,
        plan: impl Fn(&Shape, &Shape) -> Plan,
    ) -> FloatTensor<Autodiff<Flex, C>> {
        let (x, node_x) = x.into_parts();
        let (weight, node_w) = weight.into_parts();
        let (bias, node_b) = bias.into_parts();
        let plan = plan(&x.shape(), &weight.shape());
        let y = if transposed {
            transposed_forward(&plan, &x, &weight, &bias)
        } else {
            conv_forward(&plan, &x, &weight, &bias)
        };
        match ConvBackward.prepare::<C>([node_x, node_w, node_b]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(Saved { plan, transposed, x, weight }, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
        fn conv2d_gemm(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
            channels_last: bool,
        ) -> FloatTensor<Self> {
            tracked::<C>(x, weight, bias, false, |x, w| Plan::conv(x, w, geometry, channels_last))
        }

        fn conv_transpose2d_gemm(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
            output: [usize; 2],
            channels_last: bool,
        ) -> FloatTensor<Self> {
            tracked::<C>(x, weight, bias, true, |x, w| {
                Plan::transposed(x, w, geometry, output, channels_last)
            })
        }
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
                TensorData::new(
                    (0..y.shape().num_elements())
                        .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
                        .collect::<Vec<_>>(),
                    y.dims(),
                ),
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

    fn weight_and_bias_grads(
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        grads: &Gradients,
    ) -> Vec<Tensor<1>> {
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
            let conv = Conv2dConfig::new([ci, co], k)
                .with_stride(stride)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init(&device);
            assert_same(conv, [3, ci, h, w], conv2d, |m, x| m.forward(x), conv_params);
        }
        // Enough samples that the kernels run several to a chunk (and chunks of unequal size).
        let conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        assert_same(conv, [11, 3, 5, 6], conv2d, |m, x| m.forward(x), conv_params);
        let no_bias = Conv2dConfig::new([3, 2], [3, 3]).with_bias(false).init(&device);
        assert_same(no_bias, [2, 3, 5, 6], conv2d, |m, x| m.forward(x), conv_params);
    }

    /// `x (B, C, H, W)` through a channels-last op `f` and back.
    fn via_channels_last(x: Tensor<4>, f: impl Fn(Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        f(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }

    #[test]
    fn channels_last_convolutions_equal_burns_with_gradients_and_replicate_padding() {
        let device = Device::flex().autodiff();
        device.seed(5);
        // (channels in, out, kernel, stride, zero padding, replicate padding, input h × w): the
        // encoder's strided block (replicate (1, 1)), its residual block, and odd ones.
        let cases = [
            (2, 5, [3, 4], [1, 2], [0; 4], [1, 1, 1, 1], [5, 13]),
            (4, 6, [3, 3], [1, 1], [1, 1, 1, 1], [0; 4], [5, 9]),
            (3, 3, [1, 1], [1, 1], [0; 4], [0; 4], [5, 7]),
            (3, 4, [2, 3], [2, 3], [0; 4], [1, 0, 2, 1], [6, 11]),
            (2, 3, [3, 3], [1, 1], [0; 4], [2, 3, 1, 0], [5, 7]),
            // Output rows that read only the zero padding (a band without taps: the bias).
            (2, 3, [1, 3], [1, 1], [1, 1, 1, 1], [0; 4], [1, 6]),
        ];
        for (ci, co, k, stride, [t, l, b, r], replicate, [h, w]) in cases {
            let conv = Conv2dConfig::new([ci, co], k)
                .with_stride(stride)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init(&device);
            let [rt, rl, rb, rr] = replicate;
            for batch in [3, 11] {
                assert_same(
                    conv.clone(),
                    [batch, ci, h, w],
                    |m, x| via_channels_last(x, |x| conv2d_channels_last(m, x, replicate)),
                    |m, x| m.forward(x.pad([(0, 0), (0, 0), (rt, rb), (rl, rr)], PadMode::Edge)),
                    conv_params,
                );
            }
        }
        let no_bias = Conv2dConfig::new([3, 2], [3, 3]).with_bias(false).init(&device);
        assert_same(
            no_bias,
            [2, 3, 5, 6],
            |m, x| via_channels_last(x, |x| conv2d_channels_last(m, x, [0; 4])),
            |m, x| m.forward(x),
            conv_params,
        );
        // Zero and replicate padding together: Burn's ops (between permutes), same values.
        let both = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        assert_same(
            both,
            [2, 2, 5, 6],
            |m, x| via_channels_last(x, |x| conv2d_channels_last(m, x, [1, 0, 0, 1])),
            |m, x| m.forward(x.pad([(0, 0), (0, 0), (1, 0), (0, 1)], PadMode::Edge)),
            conv_params,
        );

        let params = |c: &ConvTranspose2d, grads: &Gradients| {
            weight_and_bias_grads(c.weight.val(), c.bias.as_ref().map(|b| b.val()), grads)
        };
        let transposed = [
            (3, 5, [3, 4], [1, 2], [1, 1], [0, 0], [5, 7], 2),
            (64, 2, [3, 4], [1, 2], [1, 1], [0, 0], [5, 8], 11),
            (2, 3, [4, 4], [2, 2], [1, 1], [0, 0], [3, 5], 3),
            (3, 2, [3, 2], [2, 3], [1, 0], [1, 2], [3, 4], 2),
            // 1 × 1 (the pointwise path: no scatter), over enough samples for several chunks.
            (4, 3, [1, 1], [1, 1], [0, 0], [0, 0], [5, 6], 13),
        ];
        for (ci, co, k, stride, padding, padding_out, [h, w], batch) in transposed {
            let conv = ConvTranspose2dConfig::new([ci, co], k)
                .with_stride(stride)
                .with_padding(padding)
                .with_padding_out(padding_out)
                .init(&device);
            assert_same(
                conv,
                [batch, ci, h, w],
                |m, x| via_channels_last(x, |x| conv_transpose2d_channels_last(m, x)),
                |m, x| m.forward(x),
                params,
            );
        }
    }

    #[test]
    fn channels_last_conv1d_equals_burns_with_gradients() {
        use burn::nn::conv::Conv1dConfig;
        let device = Device::flex().autodiff();
        device.seed(8);
        let params = |c: &Conv1d, grads: &Gradients| {
            vec![
                c.weight.val().grad(grads).expect("weight gradient").flatten::<1>(0, 2),
                c.bias.as_ref().unwrap().val().grad(grads).expect("bias gradient"),
            ]
        };
        // (channels in, out, kernel, stride, module padding, extra zero padding, length, batch):
        // the FCN's three blocks ("same" with the extra zero on the right for the even kernel),
        // a strided one and one with the module's own padding.
        let cases = [
            (1, 6, 8, 1, PaddingConfig1d::Valid, [3, 4], 37, 5),
            (6, 7, 5, 1, PaddingConfig1d::Valid, [2, 2], 37, 11),
            (7, 4, 3, 1, PaddingConfig1d::Valid, [1, 1], 20, 3),
            (3, 2, 4, 3, PaddingConfig1d::Explicit(1, 2), [0, 1], 17, 2),
        ];
        for (ci, co, k, stride, padding, [left, right], l, batch) in cases {
            let conv = Conv1dConfig::new(ci, co, k)
                .with_stride(stride)
                .with_padding(padding)
                .init(&device);
            let x = Tensor::<3>::random([batch, ci, l], Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let x = x.clone().detach().require_grad();
                let y = if ours {
                    conv1d_channels_last(&conv, x.clone().permute([0, 2, 1]), [left, right])
                        .permute([0, 2, 1])
                } else {
                    conv.forward(
                        x.clone().pad([(0, 0), (0, 0), (left, right)], PadMode::Constant(0.0)),
                    )
                };
                let n = y.shape().num_elements();
                let weights = Tensor::<3>::from_data(
                    TensorData::new(
                        (0..n).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect::<Vec<_>>(),
                        y.dims(),
                    ),
                    &device,
                );
                let grads = (y.clone() * weights).sum().backward();
                let mut g = vec![
                    y.inner().flatten::<1>(0, 2),
                    x.grad(&grads).expect("input gradient").flatten::<1>(0, 2),
                ];
                g.extend(params(&conv, &grads).into_iter().map(|t| t.inner()));
                g
            };
            for (i, (a, b)) in run(true).into_iter().zip(run(false)).enumerate() {
                assert_eq!(a.dims(), b.dims(), "case {ci}→{co} k{k}: tensor {i}");
                let (d, scale) = max_diff(a, b);
                assert!(
                    d <= 1e-5 * scale.max(1.0),
                    "case {ci}→{co} k{k}: output/dx/dW/db [{i}] differs by {d} (scale {scale})"
                );
            }
        }
    }

    #[test]
    fn conv_transpose2d_equals_burns_with_gradients_on_odd_shapes() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let params = |c: &ConvTranspose2d, grads: &Gradients| {
            weight_and_bias_grads(c.weight.val(), c.bias.as_ref().map(|b| b.val()), grads)
        };
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
            let conv = ConvTranspose2dConfig::new([ci, co], k)
                .with_stride(stride)
                .with_padding(padding)
                .with_padding_out(padding_out)
                .init(&device);
            assert_same(conv, [2, ci, h, w], conv_transpose2d, |m, x| m.forward(x), params);
        }
        let conv = ConvTranspose2dConfig::new([3, 4], [3, 4])
            .with_stride([1, 2])
            .with_padding([1, 1])
            .init(&device);
        assert_same(conv, [11, 3, 5, 4], conv_transpose2d, |m, x| m.forward(x), params);
        let no_bias = ConvTranspose2dConfig::new([2, 3], [3, 3]).with_bias(false).init(&device);
        assert_same(no_bias, [3, 2, 4, 5], conv_transpose2d, |m, x| m.forward(x), params);
    }

    /// Forward and backward of the encoder's and decoder's convolutions at NC-VQVAE 128 × 500's
    /// shapes (channels-last, 64 channels, 5 rows) and the residual blocks' also at the baseline
    /// 128 × 140's (8 columns): Winograd against im2col (both with the row bands), alternating,
    /// median of 9 each: `cargo test --release -p kernels conv_throughput -- --ignored
    /// --nocapture` (`CONV_THROUGHPUT=bands`: the row bands against the whole im2col matrix). In
    /// one process, so a noisy machine slows both alike.
    #[test]
    #[ignore]
    fn conv_throughput() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let time_one = |f: &dyn Fn()| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        };
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let x_of = |dims: [usize; 4]| {
            Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let strided = Conv2dConfig::new([64, 64], [3, 4]).with_stride([1, 2]).init(&device);
        let res = Conv2dConfig::new([64, 64], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let up = ConvTranspose2dConfig::new([64, 64], [3, 4])
            .with_stride([1, 2])
            .with_padding([1, 1])
            .init(&device);
        type Op<'a> = Box<dyn Fn(Tensor<4>) -> Tensor<4> + 'a>;
        let cases: Vec<(&str, [usize; 4], Op)> = vec![
            (
                "encoder 3x4 /2, replicate, 125 -> 62 columns",
                [128, 5, 125, 64],
                Box::new(|x| conv2d_channels_last(&strided, x, [1, 1, 1, 1])),
            ),
            (
                "encoder 3x4 /2, replicate, 31 -> 15 columns",
                [128, 5, 31, 64],
                Box::new(|x| conv2d_channels_last(&strided, x, [1, 1, 1, 1])),
            ),
            (
                "residual 3x3, zeros, 15 columns",
                [128, 5, 15, 64],
                Box::new(|x| conv2d_channels_last(&res, x, [0; 4])),
            ),
            (
                "residual 3x3, zeros, 62 columns",
                [128, 5, 62, 64],
                Box::new(|x| conv2d_channels_last(&res, x, [0; 4])),
            ),
            (
                "residual 3x3, zeros, 8 columns",
                [128, 5, 8, 64],
                Box::new(|x| conv2d_channels_last(&res, x, [0; 4])),
            ),
            (
                "decoder 3x4 x2 transposed, 15 -> 30 columns",
                [128, 5, 15, 64],
                Box::new(|x| conv_transpose2d_channels_last(&up, x)),
            ),
            (
                "decoder 3x4 x2 transposed, 62 -> 124 columns",
                [128, 5, 62, 64],
                Box::new(|x| conv_transpose2d_channels_last(&up, x)),
            ),
        ];
        for (what, dims, op) in &cases {
            let x = x_of(*dims);
            let step = || {
                let y = op(x.clone());
                std::hint::black_box(y.sum().backward());
            };
            step();
            // Winograd against im2col, both with the row bands (`CONV_THROUGHPUT=bands`: the
            // bands against the whole matrix, both as im2col).
            let bands = std::env::var("CONV_THROUGHPUT").as_deref() == Ok("bands");
            crate::tuning::set_conv_winograd(!bands);
            let switch = |on: bool| {
                if bands {
                    crate::tuning::set_conv_row_bands(on)
                } else {
                    crate::tuning::set_conv_winograd(on)
                }
            };
            let (mut banded, mut whole) = (Vec::new(), Vec::new());
            for _ in 0..9 {
                switch(true);
                banded.push(time_one(&step));
                switch(false);
                whole.push(time_one(&step));
            }
            switch(true);
            crate::tuning::set_conv_winograd(true);
            let (b, w) = (median(banded), median(whole));
            let (on, off) = if bands { ("bands", "whole matrix") } else { ("winograd", "im2col") };
            println!("{what}: {on} {b:.2} ms, {off} {w:.2} ms ({:.2}x)", b / w);
        }
    }
}
