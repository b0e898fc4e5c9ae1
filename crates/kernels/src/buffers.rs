//! Between flex tensors and the slices our kernels work on.

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};
use std::borrow::Cow;
use std::mem::MaybeUninit;

/// The values of an `f32` tensor: borrowed from its buffer where its layout is contiguous (the
/// usual case), copied otherwise. Never copies a buffer only because it is shared.
pub(crate) fn values(x: &FlexTensor) -> Cow<'_, [f32]> {
    match x.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            x.clone().into_data().try_into_vec::<f32>().expect("flex kernels take f32 tensors"),
        ),
    }
}

/// A flex tensor owning `values` (no copy: `TensorData::new` keeps the vector's buffer).
pub(crate) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// `len` zeros, written by all threads for a large buffer. A fresh `vec![0.0; len]` is zeroed by
/// the calling thread alone (a `memset`, or the kernel clearing fresh pages on first touch) before
/// the parallel kernel that fills it starts: in the stage-1 profile that was 2.8 % of all samples,
/// on the main thread while the workers waited.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    const PIECE: usize = 1 << 15;
    if len < 2 * PIECE {
        return vec![0f32; len];
    }
    // SAFETY: every value of each piece is written.
    unsafe {
        filled(len, PIECE, |_, piece| {
            for v in piece {
                v.write(0.0);
            }
        })
    }
}

/// `len` values written in parallel by `fill(start, piece)`, over pieces of `piece` values
/// (the last one shorter), `start` the index of the piece's first value: the output is never
/// cleared first. A kernel that writes every value of its output (an element-wise map, a
/// normalisation) saves the pass [`zeroed`] makes over it (its share of a training step's
/// profile: docs/benchmarks-history.md).
///
/// # Safety
/// `fill` must write every value of the piece it is given.
pub(crate) unsafe fn filled(
    len: usize,
    piece: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(piece.max(1))
        .enumerate()
        .for_each(|(i, p)| fill(i * piece.max(1), p));
    // SAFETY: the pieces cover the first `len` values of the capacity, and the caller's `fill`
    // wrote every value of each.
    unsafe { out.set_len(len) };
    out
}

/// The element-wise sum of equal-length partial results, added in their index order (`n` values
/// when there are none). Rayon's `reduce`/`fold` combine partials in a tree whose shape follows
/// work stealing, so a floating-point sum made that way changes in its last bits from run to run;
/// collecting the partials (an indexed collect keeps their order) and adding them here gives the
/// same bits for the same partials, which keeps training with a seed reproducible.
pub(crate) fn sum_in_order<T: Copy + Default + std::ops::AddAssign + Send + Sync>(
    parts: Vec<Vec<T>>,
    n: usize,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![T::default(); n]);
    let rest: Vec<Vec<T>> = parts.collect();
    if rest.is_empty() {
        return total;
    }
    // Each value still adds the partials in their order, so splitting the values across threads
    // leaves the bits as they are.
    const PIECE: usize = 1 << 14;
    total.par_chunks_mut(PIECE).enumerate().for_each(|(i, piece)| {
        for part in &rest {
            piece.iter_mut().zip(&part[i * PIECE..]).for_each(|(a, &b)| *a += b);
        }
    });
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_buffers_are_zero_at_every_size() {
        for len in [0, 1, 65_535, 65_536, 65_537, 1 << 20] {
            let v = zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0), "{len}");
        }
    }

    #[test]
    fn sum_in_order_adds_left_to_right() {
        // 1e8 + 1 − 1e8 in f32: left to right the 1 is lost to rounding, so the order shows.
        let parts = vec![vec![1e8f32, 0.0], vec![1.0, 2.0], vec![-1e8, 3.0]];
        assert_eq!(sum_in_order(parts, 2), vec![0.0, 5.0]);
        assert_eq!(sum_in_order(vec![vec![-1e8f32], vec![1e8], vec![1.0]], 1), vec![1.0]);
        assert_eq!(sum_in_order::<f64>(Vec::new(), 3), vec![0.0; 3]);
    }
}
