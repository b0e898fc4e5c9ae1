#![doc = include_str!("../README.md")]

mod fcn;
mod generative;
mod probe;

pub use fcn::{Fcn, FcnBlock, FcnConfig};
pub use generative::{
    RunningAccuracy, ScoreError, cas_sample_counts, fid, frechet_distance, inception_score,
    mean_and_covariance, sqrt_psd,
};
pub use probe::{
    ProbeAccuracy, ProbeError, knn_accuracy, min_max_scale, probe_accuracy, svm_accuracy,
};
