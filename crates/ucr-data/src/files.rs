//! A dataset from a user's own files of series (not the UCR `<Name>_TRAIN.tsv` / `_TEST.tsv`
//! pair): a text file (CSV, TSV or space-separated, gzip allowed) with or without a label column,
//! or a 2-D float `.npy` array (rows = series) with an optional 1-D labels `.npy`. Without a test
//! file, every fifth series (the 5th, 10th, …) is held out as the test split. Without labels every
//! series gets the label 0 (one class): self-supervised training works, label-based measures (the
//! probes, FID / IS / CAS) do not.

use std::path::{Path, PathBuf};

use crate::dataset::UcrDataset;
use crate::error::{Error, Result};
use crate::tsv::RawSplit;

/// Where the labels of a file of series come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Labels {
    /// The first cell of every text row (UCR style). The default for text files.
    FirstColumn,
    /// No labels: every cell is a value. The default for `.npy` files.
    None,
    /// A 1-D integer `.npy` array with one label per series (for a `.npy` file of series).
    File(PathBuf),
}

impl Labels {
    /// Parses `first-column`, `none` or a path to a labels `.npy` file.
    pub fn parse(text: &str) -> Self {
        match text {
            "first-column" => Self::FirstColumn,
            "none" => Self::None,
            path => Self::File(PathBuf::from(path)),
        }
    }

    /// The default for a file of series: `.npy` arrays have no label column, text files do.
    pub fn default_for(path: &Path) -> Self {
        if is_npy(path) { Self::None } else { Self::FirstColumn }
    }

    /// The text [`Labels::parse`] reads back.
    pub fn spec(&self) -> String {
        match self {
            Self::FirstColumn => "first-column".into(),
            Self::None => "none".into(),
            Self::File(path) => path.display().to_string(),
        }
    }
}

fn is_npy(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Whether `spec` names one of a user's own series files rather than a UCR dataset: a path ending
/// in `.npy`, `.csv` or `.txt` (optionally `.gz`), or an existing file that is not named like a
/// UCR split (`<Name>_TRAIN.tsv[.gz]` / `<Name>_TEST.tsv[.gz]`).
pub fn is_series_file(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    if [".npy", ".csv", ".txt"].iter().any(|ext| stem.ends_with(ext)) {
        return true;
    }
    let ucr_split = stem.ends_with("_train.tsv") || stem.ends_with("_test.tsv");
    Path::new(spec).is_file() && !ucr_split
}

/// Reads one file of series with its labels (see the module docs). Errors name the file and the
/// 1-based row.
pub fn read_series_file(path: &Path, labels: &Labels) -> Result<RawSplit> {
    let origin = path.display().to_string();
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| Error::Io { origin: p.display().to_string(), source })
    };
    let bytes = read(path)?;
    if is_npy(path) {
        return match labels {
            Labels::None => crate::npy::read_npy_series(&bytes, &origin, None),
            Labels::File(file) => {
                let label_bytes = read(file)?;
                crate::npy::read_npy_series(
                    &bytes,
                    &origin,
                    Some((&label_bytes, &file.display().to_string())),
                )
            }
            Labels::FirstColumn => Err(Error::LabelSource {
                origin,
                message:
                    "a .npy array has no label column; give the labels as a 1-D .npy file (or none)"
                        .into(),
            }),
        };
    }
    let text = crate::tsv::decode(&bytes, &origin)?;
    match labels {
        Labels::FirstColumn => crate::tsv::parse(&text, &origin).map_err(|e| match e {
            // Most likely a file without a label column: say how to read one.
            Error::NonIntegerLabel { origin, line, value } => Error::LabelSource {
                origin: format!("{origin}:{line}"),
                message: format!("class label '{value}' is not an integer (the first column holds labels; for a file without labels use `--labels none`)"),
            },
            other => other,
        }),
        Labels::None => crate::tsv::parse_unlabelled(&text, &origin),
        Labels::File(file) => Err(Error::LabelSource {
            origin: file.display().to_string(),
            message: format!("a labels file goes with a .npy array of series; {origin} is text (use first-column or none)"),
        }),
    }
}

/// The series of `split` at `keep` (a subset, in order).
fn subset(split: &RawSplit, keep: &[usize]) -> RawSplit {
    let l = split.length;
    RawSplit {
        origin: split.origin.clone(),
        labels: keep.iter().map(|&i| split.labels[i]).collect(),
        lines: keep.iter().map(|&i| split.lines[i]).collect(),
        values: keep
            .iter()
            .flat_map(|&i| split.values[i * l..(i + 1) * l].iter().copied())
            .collect(),
        length: l,
    }
}

/// A dataset named `name` from a file of series: `test` gives the test split (read with
/// `test_labels`), otherwise every fifth series of `train` is held out.
pub fn load_files(
    name: &str,
    train: &Path,
    labels: &Labels,
    test: Option<(&Path, &Labels)>,
) -> Result<UcrDataset> {
    let all = read_series_file(train, labels)?;
    let (train_split, test_split) = match test {
        Some((path, test_labels)) => (all, read_series_file(path, test_labels)?),
        None => {
            let (held, kept): (Vec<usize>, Vec<usize>) = (0..all.n()).partition(|i| i % 5 == 4);
            if held.is_empty() {
                return Err(Error::TooFewToSplit { origin: all.origin.clone(), n: all.n() });
            }
            (subset(&all, &kept), subset(&all, &held))
        }
    };
    UcrDataset::from_raw(name, train_split, test_split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_files_are_told_from_ucr_names() {
        assert!(is_series_file("data/mine.csv"));
        assert!(is_series_file("x.npy"));
        assert!(is_series_file("x.CSV.gz"));
        assert!(!is_series_file("TwoPatterns"));
        assert!(!is_series_file("data/Wafer/Wafer_TRAIN.tsv"));
        assert!(!is_series_file("data/Wafer/Wafer_TEST.tsv.gz"));
        assert_eq!(Labels::default_for(Path::new("a.npy")), Labels::None);
        assert_eq!(Labels::default_for(Path::new("a.csv")), Labels::FirstColumn);
        for spec in ["first-column", "none", "labels.npy"] {
            assert_eq!(Labels::parse(spec).spec(), spec);
        }
    }

    #[test]
    fn every_fifth_series_is_held_out_without_a_test_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mine.csv");
        // 12 unlabelled series of length 3; series i is i, i, i.
        let text: String = (0..12).map(|i| format!("{i},{i},{i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let data = load_files("mine", &path, &Labels::None, None).unwrap();
        assert_eq!(
            (data.train.n(), data.test.n(), data.num_classes(), data.length()),
            (10, 2, 1, 3)
        );
        // Held out: rows 5 and 10 (1-based), i.e. the series 4 and 9; scaled back they are 4 and 9.
        let mut first = data.test.series(0).to_vec();
        data.normalizer.invert(&mut first);
        assert!((first[0] - 4.0).abs() < 1e-4, "{first:?}");
        let mut second = data.test.series(1).to_vec();
        data.normalizer.invert(&mut second);
        assert!((second[0] - 9.0).abs() < 1e-4, "{second:?}");

        std::fs::write(&path, "1,2\n3,4\n").unwrap();
        let err = load_files("mine", &path, &Labels::None, None).unwrap_err().to_string();
        assert!(err.contains("mine.csv") && err.contains("2 series"), "{err}");
    }

    #[test]
    fn npy_series_take_labels_from_a_second_file_and_refuse_a_label_column() {
        let tmp = tempfile::tempdir().unwrap();
        let (x, y) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
        let values: Vec<f32> = (0..40).map(|v| (v as f32 * 0.3).sin()).collect();
        std::fs::write(&x, crate::npy_f32(&[10, 4], &values)).unwrap();
        std::fs::write(&y, crate::npy_i64(&[10], &[1, 2, 1, 2, 1, 2, 1, 2, 1, 2])).unwrap();
        let data = load_files("x", &x, &Labels::File(y.clone()), None).unwrap();
        assert_eq!((data.train.n(), data.test.n(), data.classes.clone()), (8, 2, vec![1, 2]));
        let err = read_series_file(&x, &Labels::FirstColumn).unwrap_err().to_string();
        assert!(err.contains("x.npy") && err.contains("no label column"), "{err}");
        std::fs::write(&y, crate::npy_i64(&[3], &[1, 2, 1])).unwrap();
        let err = read_series_file(&x, &Labels::File(y)).unwrap_err().to_string();
        assert!(err.contains("y.npy"), "{err}");
    }
}
