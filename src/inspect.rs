//! `data inspect`: what a dataset looks like on disk (the JSON keys are a promise, see docs/cli.md).

use serde::Serialize;
use ucr_data::{SplitStats, UcrDataset};

/// The report of one split: `n`, `length_min`, `length_max`, `classes`, `nan_values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitReport {
    /// Number of series.
    pub n: usize,
    /// Shortest series (last non-NaN position).
    pub length_min: usize,
    /// Longest series.
    pub length_max: usize,
    /// Distinct class labels in the split.
    pub classes: usize,
    /// NaN cells in the split.
    pub nan_values: usize,
}

impl From<&SplitStats> for SplitReport {
    fn from(s: &SplitStats) -> Self {
        Self {
            n: s.n,
            length_min: s.length_min,
            length_max: s.length_max,
            classes: s.classes,
            nan_values: s.nan_values,
        }
    }
}

/// The report of a dataset: `{"name", "train": {…}, "test": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetReport {
    /// Dataset name.
    pub name: String,
    /// The training split.
    pub train: SplitReport,
    /// The test split.
    pub test: SplitReport,
}

impl DatasetReport {
    /// Describes a loaded dataset.
    pub fn new(data: &UcrDataset) -> Self {
        Self {
            name: data.name.clone(),
            train: (&data.train.stats).into(),
            test: (&data.test.stats).into(),
        }
    }

    /// The human-readable form printed without `--json`.
    pub fn to_text(&self, data: &UcrDataset) -> String {
        let line = |label: &str, s: &SplitReport, origin: &str| {
            let length = if s.length_min == s.length_max {
                format!("length {}", s.length_max)
            } else {
                format!("length {}–{}", s.length_min, s.length_max)
            };
            format!(
                "  {label:<5} {:>6} series, {length}, {} classes, {} NaN values  ({origin})\n",
                s.n, s.classes, s.nan_values
            )
        };
        format!(
            "{}\n{}{}  scaling: mean {:.6}, std {:.6} (fitted on train)\n",
            self.name,
            line("train", &self.train, &data.train.origin),
            line("test", &self.test, &data.test.origin),
            data.normalizer.mean,
            data.normalizer.std,
        )
    }
}
