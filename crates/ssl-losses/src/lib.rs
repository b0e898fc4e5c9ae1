#![doc = include_str!("../README.md")]

mod barlow_twins;
mod head;
mod iter_norm;
mod projector;
mod vibcreg;

pub use barlow_twins::barlow_twins_loss;
pub use head::{ConfigError, SslHead, SslHeadConfig, SslMethod};
pub use iter_norm::{IterNorm, IterNormConfig};
pub use projector::{Projector, ProjectorConfig};
pub use vibcreg::vibcreg_loss;

/// Helpers shared by the unit tests.
#[cfg(test)]
mod test_util {
    use burn::tensor::{Device, Tensor, TensorData};

    /// A `(rows, columns)` tensor on the flex device from row slices.
    pub(crate) fn matrix(rows: &[&[f32]]) -> Tensor<2> {
        let d = rows[0].len();
        let v: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(v, [rows.len(), d]), &Device::flex())
    }
}
