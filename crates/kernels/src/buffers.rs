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
