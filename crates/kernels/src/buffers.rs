//! Between flex tensors and the slices our kernels work on.

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};
use std::borrow::Cow;

/// The values of an `f32` tensor: borrowed from its buffer where its layout is contiguous (the
/// usual case), copied otherwise. Never copies a buffer only because it is shared.
pub(crate) fn values(x: &FlexTensor) -> Cow<'_, [f32]> {
    match x.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(x.clone().into_data().try_into_vec::<f32>().expect("flex kernels take f32 tensors")),
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
    use rayon::prelude::*;
    const PIECE: usize = 1 << 15;
    if len < 2 * PIECE {
        return vec![0f32; len];
    }
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len].par_chunks_mut(PIECE).for_each(|piece| {
        for v in piece {
            v.write(0.0);
        }
    });
    // SAFETY: the loop above initialised the first `len` values of the capacity.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_buffers_are_zero_at_every_size() {
        for len in [0, 1, 65_535, 65_536, 65_537, 1 << 20] {
            let v = super::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0), "{len}");
        }
    }
}
