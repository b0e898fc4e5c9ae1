//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading or validating a UCR dataset.
///
/// Every variant names the file (its `origin`: a path, or `<bundled>/…` for data compiled into the
/// crate) and, where it applies, the 1-based line, so that the `Display` text is a complete one-line
/// message for a user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No root holds the dataset.
    #[error(
        "dataset '{name}' not found (looked in: {searched}); pass --data-dir DIR, set NC_VQVAE_DATA, or give a path to a *_TRAIN.tsv[.gz] file"
    )]
    NotFound {
        /// The name that was asked for.
        name: String,
        /// The places searched, comma separated.
        searched: String,
    },
    /// A path was given but it is not a `*_TRAIN.tsv[.gz]` / `*_TEST.tsv[.gz]` file.
    #[error(
        "{path}: not a UCR split file (expected a name ending in _TRAIN.tsv, _TRAIN.tsv.gz, _TEST.tsv or _TEST.tsv.gz)"
    )]
    NotASplitFile {
        /// The offending path.
        path: PathBuf,
    },
    /// The `_TRAIN` file was found but not its `_TEST` sibling (or the other way round).
    #[error("{path}: missing file (sibling of {sibling})")]
    MissingSibling {
        /// The file that should exist.
        path: PathBuf,
        /// The file that was given.
        sibling: PathBuf,
    },
    /// Reading the file failed at the operating-system level.
    #[error("{origin}: cannot read: {source}")]
    Io {
        /// The file.
        origin: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is gzip-compressed but cannot be decompressed (truncated or corrupt).
    #[error("{origin}: corrupt or truncated gzip data: {source}")]
    Gzip {
        /// The file.
        origin: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file (or its decompressed content) holds no series.
    #[error("{origin}: empty file (no series)")]
    Empty {
        /// The file.
        origin: String,
    },
    /// The content is not text (invalid UTF-8 or control bytes).
    #[error("{origin}:{line}: not a text TSV file (binary content)")]
    Binary {
        /// The file.
        origin: String,
        /// First line with binary content.
        line: usize,
    },
    /// A line has no label in its first column.
    #[error("{origin}:{line}: missing class label in column 1")]
    MissingLabel {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
    },
    /// A label that is not an integer.
    #[error("{origin}:{line}: class label '{value}' is not an integer")]
    NonIntegerLabel {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The cell as written.
        value: String,
    },
    /// A value cell that is not a number.
    #[error("{origin}:{line}: column {column}: '{value}' is not a number")]
    NonNumeric {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The 1-based column (the label is column 1).
        column: usize,
        /// The cell as written (shortened if long).
        value: String,
    },
    /// An infinite value, or one beyond float32's range (NaN is legal, infinity is not).
    #[error(
        "{origin}:{line}: column {column}: infinite value '{value}' (or beyond float32's ±3.4e38; only NaN is allowed for missing values)"
    )]
    Infinite {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// The cell as written.
        value: String,
    },
    /// A line has a label but no values.
    #[error("{origin}:{line}: line has a label but no values")]
    NoValues {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
    },
    /// A line has a different number of values than the first line.
    #[error(
        "{origin}:{line}: {found} values, but line {first_line} has {expected} (variable-length series must be NaN-padded to equal length)"
    )]
    Ragged {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// Values on this line.
        found: usize,
        /// Values on the first line.
        expected: usize,
        /// The line the expectation comes from.
        first_line: usize,
    },
    /// A `.npy` file that cannot be read as the array it should be.
    #[error("{origin}: {message}")]
    Npy {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Labels asked for in a way the file of series cannot give.
    #[error("{origin}: {message}")]
    LabelSource {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Too few series to hold out every fifth as a test split.
    #[error(
        "{origin}: {n} series are too few to hold out every fifth as the test split; give a test file"
    )]
    TooFewToSplit {
        /// The file.
        origin: String,
        /// Series in it.
        n: usize,
    },
    /// Series given in memory with a different number of labels.
    #[error("{origin}: {series} series but {labels} labels")]
    LabelCount {
        /// What the data is called.
        origin: String,
        /// Labels given.
        labels: usize,
        /// Series given.
        series: usize,
    },
    /// Train and test rows have different lengths.
    #[error("{origin}: series have {found} values but the train split has {expected}")]
    LengthMismatch {
        /// The test file.
        origin: String,
        /// Test row length.
        found: usize,
        /// Train row length.
        expected: usize,
    },
    /// A test label that never occurs in the train split (the label encoder is fitted on train).
    #[error("{origin}:{line}: class label {label} does not occur in the train split")]
    UnknownTestLabel {
        /// The test file.
        origin: String,
        /// The line.
        line: usize,
        /// The label.
        label: i64,
    },
    /// An item index past the end of a split.
    #[error("index {index} is out of range for a split of {len} series")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of series.
        len: usize,
    },
    /// A batch size of zero or another invalid loader setting.
    #[error("invalid batch size {0}: must be at least 1")]
    BatchSize(usize),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
