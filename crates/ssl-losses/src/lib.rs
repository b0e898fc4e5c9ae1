#![doc = include_str!("../README.md")]

mod barlow_twins;
mod head;
mod iter_norm;
mod projector;
mod vibcreg;

pub use barlow_twins::barlow_twins_loss;
pub use head::{SslHead, SslHeadConfig, SslMethod};
pub use iter_norm::{IterNorm, IterNormConfig};
pub use projector::{Projector, ProjectorConfig};
pub use vibcreg::vibcreg_loss;
