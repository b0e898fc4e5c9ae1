#![doc = include_str!("../README.md")]

mod batch;
mod dataset;
mod error;
mod files;
mod normalize;
mod npy;
mod source;
mod tsv;

pub use batch::{UcrBatch, UcrBatcher, UcrItem, epoch_batches};
pub use dataset::{Split, SplitStats, UcrDataset, read_split};
pub use error::{Error, Result};
pub use files::{Labels, is_series_file, load_files, read_series_file};
pub use normalize::Normalizer;
pub use npy::{npy_f32, npy_i64, read_npy_series};
pub use source::{DATA_ENV, DataRoot, DatasetSource, Resolver, SplitSource, bundled_names};
pub use tsv::{RawSplit, decode, parse, parse_unlabelled};
