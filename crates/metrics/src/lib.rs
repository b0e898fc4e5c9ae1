#![doc = include_str!("../README.md")]

mod probe;

pub use probe::{ProbeAccuracy, ProbeError, knn_accuracy, min_max_scale, probe_accuracy, svm_accuracy};
