#![doc = include_str!("../README.md")]

mod stft;

pub use stft::{Error, Stft, StftConfig};
