//! [`RunError`]: what every command of the job API (train, sample, evaluate, report) can stop
//! with.

use train::run_dir::RunDirError;

/// What can stop the commands that train, sample, evaluate or report: the training library's
/// errors, a run folder that does not hold what the command needs, a plot that cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training, evaluation or the run folder failed ([`train::Error`]).
    #[error(transparent)]
    Train(#[from] train::Error),
    /// A setting of the job API is invalid, or its folder is in use (bad input).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The run folder does not hold what the command needs (e.g. no finished stage 1; bad input).
    #[error("{0}")]
    NotReady(String),
    /// An input file does not fit the run it is given to (e.g. series of another length; bad input).
    #[error("{0}")]
    Input(String),
    /// A plot of the report cannot be drawn or written.
    #[error(transparent)]
    Plot(#[from] crate::PlotError),
}

/// The errors that reach [`RunError`] through the training library's error.
macro_rules! through_train {
    ($($t:ty),+) => {
        $(impl From<$t> for RunError {
            fn from(e: $t) -> Self {
                RunError::Train(e.into())
            }
        })+
    };
}
through_train!(
    train::InvalidSetting,
    ucr_data::Error,
    RunDirError,
    maskgit::Error,
    metrics::ScoreError,
    metrics::ProbeError
);

impl RunError {
    /// An invalid setting (bad input).
    pub fn config(message: impl Into<String>) -> Self {
        RunError::Invalid(message.into())
    }

    /// Whether the user's input is at fault (exit code 2) rather than the program (exit code 1).
    pub fn is_input_error(&self) -> bool {
        match self {
            RunError::Train(e) => e.is_input_error(),
            RunError::Invalid(_) | RunError::NotReady(_) | RunError::Input(_) => true,
            RunError::Plot(_) => false,
        }
    }
}
