//! A loaded, validated and preprocessed UCR dataset (docs/reference.md §2).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::normalize::Normalizer;
use crate::source::{DatasetSource, SplitSource};
use crate::tsv::{self, RawSplit};

/// What a split looked like on disk, before preprocessing (what `data inspect` reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitStats {
    /// Number of series.
    pub n: usize,
    /// Shortest series: position of the last non-NaN value (NaN padding excluded).
    pub length_min: usize,
    /// Longest series, measured the same way (equals the row width for fixed-length data).
    pub length_max: usize,
    /// Number of distinct class labels in this split.
    pub classes: usize,
    /// Number of NaN cells.
    pub nan_values: usize,
}

impl SplitStats {
    fn of(raw: &RawSplit) -> Self {
        let mut length_min = usize::MAX;
        let mut length_max = 0;
        let mut nan_values = 0;
        for row in raw.values.chunks(raw.length) {
            nan_values += row.iter().filter(|v| v.is_nan()).count();
            let len = row.iter().rposition(|v| !v.is_nan()).map_or(0, |p| p + 1);
            length_min = length_min.min(len);
            length_max = length_max.max(len);
        }
        let mut labels = raw.labels.clone();
        labels.sort_unstable();
        labels.dedup();
        Self { n: raw.n(), length_min, length_max, classes: labels.len(), nan_values }
    }
}

/// One split after preprocessing: z-normalised values with NaN replaced by 0, labels re-indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Row-major `(n, length)` values, ready for a model.
    pub values: Vec<f32>,
    /// Class index of each series in `0..num_classes` (order of the sorted train labels).
    pub labels: Vec<usize>,
    /// Number of values per series.
    pub length: usize,
    /// Where the split was read from.
    pub origin: String,
    /// The split as it was on disk.
    pub stats: SplitStats,
}

impl Split {
    /// Number of series.
    pub fn n(&self) -> usize {
        self.labels.len()
    }

    /// The values of series `i`.
    pub fn series(&self, i: usize) -> &[f32] {
        &self.values[i * self.length..(i + 1) * self.length]
    }

    /// `raw` preprocessed with `normalizer` (NaN → 0 after scaling), with the class indices
    /// `labels` (one per series); `stats` describe `raw` as read.
    pub fn scaled(raw: RawSplit, labels: Vec<usize>, normalizer: &Normalizer) -> Self {
        let stats = SplitStats::of(&raw);
        let mut values = raw.values;
        normalizer.apply(&mut values);
        Split { values, labels, length: raw.length, origin: raw.origin, stats }
    }
}

/// A UCR dataset with both splits, preprocessed as the reference does (docs/reference.md §2): a label encoder
/// fitted on the train labels, one scalar mean/std over the whole train matrix, NaN → 0.
#[derive(Debug, Clone, PartialEq)]
pub struct UcrDataset {
    /// Dataset name.
    pub name: String,
    /// Training split.
    pub train: Split,
    /// Test split (the only held-out data in the UCR protocol).
    pub test: Split,
    /// The original label of each class index, sorted ascending (`classes[k]` is class `k`).
    pub classes: Vec<i64>,
    /// The scaling fitted on the train values; [`Normalizer::invert`] undoes it.
    pub normalizer: Normalizer,
}

impl UcrDataset {
    /// Reads, validates and preprocesses both splits of a located dataset.
    pub fn load(source: &DatasetSource) -> Result<Self> {
        let train = read_split(&source.train)?;
        let test = read_split(&source.test)?;
        Self::from_raw(&source.name, train, test)
    }

    /// Validates and preprocesses two parsed splits.
    pub fn from_raw(name: &str, train: RawSplit, test: RawSplit) -> Result<Self> {
        if test.length != train.length {
            return Err(Error::LengthMismatch {
                origin: test.origin.clone(),
                found: test.length,
                expected: train.length,
            });
        }
        let mut classes = train.labels.clone();
        classes.sort_unstable();
        classes.dedup();
        let index: BTreeMap<i64, usize> =
            classes.iter().enumerate().map(|(k, &c)| (c, k)).collect();
        let test_labels = test
            .labels
            .iter()
            .zip(&test.lines)
            .map(|(label, &line)| {
                index.get(label).copied().ok_or_else(|| Error::UnknownTestLabel {
                    origin: test.origin.clone(),
                    line,
                    label: *label,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let train_labels = train.labels.iter().map(|l| index[l]).collect();
        let normalizer = Normalizer::fit(&train.values);
        Ok(Self {
            name: name.to_string(),
            train: Split::scaled(train, train_labels, &normalizer),
            test: Split::scaled(test, test_labels, &normalizer),
            classes,
            normalizer,
        })
    }

    /// Number of classes (fitted on the train split).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Whether the data carries labels a classifier can use: two classes or more (unlabelled
    /// series, [`crate::Labels::None`], all carry one label). The probes, the FCN and the scores it
    /// judges need them.
    pub fn labelled(&self) -> bool {
        self.num_classes() >= 2
    }

    /// Series length (values per row).
    pub fn length(&self) -> usize {
        self.train.length
    }
}

/// Reads and parses one split from its source.
pub fn read_split(source: &SplitSource) -> Result<RawSplit> {
    let origin = source.origin();
    let bytes = source.read()?;
    let text = tsv::decode(&bytes, &origin)?;
    tsv::parse(&text, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Resolver;

    fn raw(text: &str, origin: &str) -> RawSplit {
        tsv::parse(text, origin).unwrap()
    }

    #[test]
    fn labels_are_reindexed_from_train_and_scaling_uses_train_only() {
        let train = raw("-1\t1\t3\n1\t5\tNaN\n", "tr");
        let test = raw("1\t3\t3\n-1\tNaN\t1\n", "te");
        let ds = UcrDataset::from_raw("toy", train, test).unwrap();
        assert_eq!(ds.classes, vec![-1, 1]);
        assert_eq!(ds.train.labels, vec![0, 1]);
        assert_eq!(ds.test.labels, vec![1, 0]);
        // train values 1, 3, 5 (NaN ignored): mean 3, population std sqrt(8/3).
        let s = (8.0f64 / 3.0).sqrt();
        assert!((ds.normalizer.mean - 3.0).abs() < 1e-12);
        assert!((ds.normalizer.std - s).abs() < 1e-12);
        let want = [(1.0 - 3.0) / s, 0.0, (5.0 - 3.0) / s, 0.0];
        for (got, want) in ds.train.values.iter().zip(want) {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(ds.test.values[2], 0.0, "NaN becomes 0 after scaling");
        assert_eq!(ds.train.stats.nan_values, 1);
        assert_eq!((ds.train.stats.length_min, ds.train.stats.length_max), (1, 2));
    }

    #[test]
    fn unseen_test_label_and_length_mismatch_are_errors() {
        let err = UcrDataset::from_raw("t", raw("1\t1\n", "tr"), raw("1\t1\n\n2\t3\n", "te"));
        assert_eq!(
            err.unwrap_err().to_string(),
            "te:3: class label 2 does not occur in the train split"
        );
        let err = UcrDataset::from_raw("t", raw("1\t1\t2\n", "tr"), raw("1\t1\n", "te"));
        assert_eq!(
            err.unwrap_err().to_string(),
            "te: series have 1 values but the train split has 2"
        );
    }

    #[test]
    fn bundled_dataset_matches_the_archive_counts() {
        let source = Resolver::with_roots(vec![crate::DataRoot::Bundled])
            .resolve("SonyAIBORobotSurface1")
            .unwrap();
        let ds = UcrDataset::load(&source).unwrap();
        assert_eq!((ds.train.n(), ds.test.n(), ds.length(), ds.num_classes()), (20, 601, 70, 2));
        assert_eq!(ds.train.stats.nan_values + ds.test.stats.nan_values, 0);
        // UCR series are already z-normalised per series, so the global scaling is mild.
        assert!(ds.normalizer.mean.abs() < 0.1 && (ds.normalizer.std - 1.0).abs() < 0.1);
        let mean: f64 = ds.train.values.iter().map(|&v| v as f64).sum::<f64>() / 1400.0;
        assert!(mean.abs() < 1e-5, "train mean after scaling {mean}");
        // The other bundled datasets, among them the default of `nc-vqvae run` (SyntheticControl);
        // UCR archive counts.
        for (name, counts) in
            [("TwoPatterns", (1000, 4000, 128, 4)), ("SyntheticControl", (300, 300, 60, 6))]
        {
            let source =
                Resolver::with_roots(vec![crate::DataRoot::Bundled]).resolve(name).unwrap();
            let ds = UcrDataset::load(&source).unwrap();
            assert_eq!(
                (ds.train.n(), ds.test.n(), ds.length(), ds.num_classes()),
                counts,
                "{name}"
            );
        }
    }
}
