//! `nc-vqvae encode`: a finished stage-1 run's tokenizer applied to a file of series: per series
//! the token grid and the pooled feature vector the probes use, written as NumPy `.npy` arrays and
//! as CSV.
//!
//! Input (by extension): `.npy`, a 2-D float array with one series per row; anything else is text
//! (UCR TSV, CSV or space-separated, gzip allowed) with or without a label column: rows of `L + 1`
//! cells (`L` = the run's series length) start with a label, rows of `L` cells are all values. The
//! series are scaled with the run's training scaling (`Normalizer`) before encoding.
//!
//! Output, for `--out PREFIX`: `PREFIX.tokens.npy` (`int64`, `(n, 5, W')`, frequency-major),
//! `PREFIX.features.npy` (`float32`, `(n, 64)`), and the same as `PREFIX.tokens.csv` (one row of
//! `5·W'` ids per series, header `f0_t0,…`) and `PREFIX.features.csv` (header `z0,…`). All written
//! atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;
use ucr_data::{RawSplit, Split};

use crate::RunError;
use crate::fcn::with_suffix;
use crate::stage1::load_finished;
use train::run_dir::write_atomic;

/// What `encode` wrote (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodeSummary {
    /// Series encoded.
    pub n: usize,
    /// Their length.
    pub length: usize,
    /// `[n, 5, W']`.
    pub tokens_shape: [usize; 3],
    /// `[n, 64]`.
    pub features_shape: [usize; 2],
    /// Whether the input had a label column (labels are not part of the output).
    pub labelled_input: bool,
    /// The four files.
    pub files: Vec<PathBuf>,
}

/// Reads the series of `input` for a tokenizer of series length `length` (see the module docs).
fn read_input(input: &Path, length: usize) -> Result<(RawSplit, bool), RunError> {
    let origin = input.display().to_string();
    let bytes = std::fs::read(input)
        .map_err(|source| ucr_data::Error::Io { origin: origin.clone(), source })?;
    if input.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        return Ok((ucr_data::read_npy_series(&bytes, &origin, None)?, false));
    }
    let text = ucr_data::decode(&bytes, &origin)?;
    let unlabelled = ucr_data::parse_unlabelled(&text, &origin)?;
    if unlabelled.length == length + 1 {
        return Ok((ucr_data::parse(&text, &origin)?, true));
    }
    Ok((unlabelled, false))
}

/// Encodes the series of `input` with the tokenizer of the finished stage-1 run `run` and writes
/// the four files of `out` (see the module docs).
pub fn encode(
    run: &Path,
    input: &Path,
    out: &Path,
    device: &Device,
) -> Result<EncodeSummary, RunError> {
    let (config, data, model) = load_finished(run, device)?;
    let length = data.length();
    let (raw, labelled_input) = read_input(input, length)?;
    if raw.length != length {
        return Err(RunError::Input(format!(
            "{}: series have {} values, but the tokenizer of {} takes {length} ({}; a label column, if any, comes first)",
            input.display(),
            raw.length,
            run.display(),
            config.dataset
        )));
    }
    let n = raw.n();
    let split = Split::scaled(raw, vec![0; n], &data.normalizer);
    let encoded = train::stage1::encode(model.vqvae(), &split, device)?;
    let [rows, cols] = encoded.grid;
    let files: Vec<PathBuf> = [".tokens.npy", ".features.npy", ".tokens.csv", ".features.csv"]
        .iter()
        .map(|s| with_suffix(out, s))
        .collect();
    write_atomic(&files[0], &ucr_data::npy_i64(&[n, rows, cols], &encoded.tokens))?;
    write_atomic(&files[1], &ucr_data::npy_f32(&[n, encoded.feature_dim], &encoded.features))?;
    let header: Vec<String> =
        (0..rows).flat_map(|f| (0..cols).map(move |t| format!("f{f}_t{t}"))).collect();
    write_atomic(&files[2], csv(&header, encoded.tokens.chunks(rows * cols)).as_bytes())?;
    let header: Vec<String> = (0..encoded.feature_dim).map(|i| format!("z{i}")).collect();
    write_atomic(&files[3], csv(&header, encoded.features.chunks(encoded.feature_dim)).as_bytes())?;
    Ok(EncodeSummary {
        n,
        length,
        tokens_shape: [n, rows, cols],
        features_shape: [n, encoded.feature_dim],
        labelled_input,
        files,
    })
}

/// A CSV text: the header line, then one line per row.
fn csv<'a, T: std::fmt::Display + 'a>(
    header: &[String],
    rows: impl Iterator<Item = &'a [T]>,
) -> String {
    let mut text = header.join(",");
    text.push('\n');
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            let _ = write!(text, "{}{v}", if i > 0 { "," } else { "" });
        }
        text.push('\n');
    }
    text
}
