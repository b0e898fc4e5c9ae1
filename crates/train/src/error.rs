//! What a training run can raise: the loop, its run folder and the files in it.

use std::path::{Path, PathBuf};

use crate::run_dir::RunDirError;

/// Errors of training and evaluation: the fit loop, the run folder and its files, the models' own
/// checks, the probes and scores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the run folder failed.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// Saving or loading weights or optimiser state failed.
    #[error("{path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A setting is outside the values it allows (bad input).
    #[error("invalid configuration: {0}")]
    Setting(#[from] InvalidSetting),
    /// A run's stored config file cannot be read or written (bad input).
    #[error("{path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run folder holds another run, or no run to resume (bad input).
    #[error("{0}")]
    RunExists(String),
    /// A loss term became NaN or infinite; the last checkpoint is kept.
    #[error(
        "training diverged: {term} = {value} at epoch {epoch}, step {step}; the last good checkpoint is kept (lower the learning rate `lr` or check the data)"
    )]
    NonFinite {
        /// The loss term.
        term: &'static str,
        /// Its value.
        value: f32,
        /// Epoch (1-based).
        epoch: usize,
        /// Optimiser step.
        step: usize,
    },
    /// The batches cannot be formed (e.g. an empty training split).
    #[error(transparent)]
    Data(#[from] ucr_data::Error),
    /// Reading a result back from the device failed.
    #[error("reading results from the device failed: {0}")]
    Device(String),
    /// The model cannot be built for this data (bad input, e.g. a series too short).
    #[error("{dataset}: {source}")]
    Model {
        /// Dataset name.
        dataset: String,
        /// Cause.
        #[source]
        source: vqvae::Error,
    },
    /// A probe failed.
    #[error(transparent)]
    Probe(#[from] metrics::ProbeError),
    /// The prior rejected its settings or input (bad input).
    #[error(transparent)]
    Prior(#[from] maskgit::Error),
    /// A generative score could not be computed.
    #[error(transparent)]
    Score(#[from] metrics::ScoreError),
}

impl Error {
    /// Whether the user's input is at fault (exit code 2) rather than the program (exit code 1).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::Setting(_)
                | Error::ConfigFile { .. }
                | Error::RunExists(_)
                | Error::Data(_)
                | Error::Model { .. }
                | Error::Prior(_)
                | Error::RunDir(RunDirError::Unwritable { .. })
        )
    }
}

/// A setting outside the values it allows, named as in a run's `config.toml` (as linfa's
/// parameter checks report theirs): `batch_size must be at least 2 (BatchNorm needs two samples),
/// got 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {allowed}, got {value}")]
pub struct InvalidSetting {
    /// The setting, e.g. `batch_size` (with its table where one is named: `fcn.lr`).
    pub field: String,
    /// The values it allows, e.g. `at least 2 (BatchNorm needs two samples)`.
    pub allowed: String,
    /// The value given.
    pub value: String,
}

impl InvalidSetting {
    /// `field` must be `allowed`, got `value`.
    pub fn new(field: &str, allowed: &str, value: impl std::fmt::Display) -> Self {
        Self { field: field.into(), allowed: allowed.into(), value: value.to_string() }
    }

    /// The same setting named inside the table `section` (`lr` → `fcn.lr`).
    pub fn in_section(mut self, section: &str) -> Self {
        self.field = format!("{section}.{}", self.field);
        self
    }
}

/// Checks that `value` is at least `min`.
pub(crate) fn at_least(field: &str, value: usize, min: usize) -> Result<(), InvalidSetting> {
    if value >= min {
        return Ok(());
    }
    Err(InvalidSetting::new(field, &format!("at least {min}"), value))
}

/// Checks a batch size for a model with BatchNorm, which needs two samples to train.
pub(crate) fn batch_norm_batch(batch_size: usize) -> Result<(), InvalidSetting> {
    if batch_size >= 2 {
        return Ok(());
    }
    Err(InvalidSetting::new("batch_size", "at least 2 (BatchNorm needs two samples)", batch_size))
}

/// Maps a record error on `path` to [`Error::Record`].
pub(crate) fn record_err(path: &Path) -> impl FnOnce(burn::store::RecordError) -> Error + '_ {
    move |e| Error::Record { path: path.to_path_buf(), message: e.to_string() }
}
