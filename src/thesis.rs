//! Published numbers of the thesis (docs/reference.md §12: 1000 epochs per stage, mean of 4
//! seeds), for putting next to ours in reports and sweep tables.

use crate::stage1::{Recipe, SslChoice};

/// Column order of the thesis tables.
const CONFIGS: [(SslChoice, Option<Recipe>); 7] = [
    (SslChoice::None, None),
    (SslChoice::BarlowTwins, Some(Recipe::Warp)),
    (SslChoice::BarlowTwins, Some(Recipe::Slice)),
    (SslChoice::BarlowTwins, Some(Recipe::Gauss)),
    (SslChoice::Vibcreg, Some(Recipe::Warp)),
    (SslChoice::Vibcreg, Some(Recipe::Slice)),
    (SslChoice::Vibcreg, Some(Recipe::Gauss)),
];

/// The column of `ssl` + `aug` in the thesis tables (the baseline ignores `aug`).
fn column(ssl: SslChoice, aug: Option<Recipe>) -> Option<usize> {
    CONFIGS.iter().position(|&(s, a)| s == ssl && (s == SslChoice::None || a == aug))
}

/// `(dataset, KNN means, SVM means)` in the column order of [`CONFIGS`] (docs/reference.md §12, "KNN probe
/// accuracy (k=5), mean of 4 seeds" and "Linear-SVM probe accuracy, mean of 4 seeds").
const PROBES: [(&str, [f64; 7], [f64; 7]); 10] = [
    (
        "FordA",
        [0.701, 0.830, 0.909, 0.804, 0.803, 0.868, 0.762],
        [0.742, 0.839, 0.894, 0.828, 0.740, 0.861, 0.781],
    ),
    (
        "ElectricDevices",
        [0.345, 0.346, 0.378, 0.396, 0.333, 0.357, 0.390],
        [0.414, 0.437, 0.410, 0.423, 0.375, 0.391, 0.427],
    ),
    (
        "StarLightCurves",
        [0.868, 0.928, 0.941, 0.875, 0.925, 0.913, 0.892],
        [0.885, 0.934, 0.941, 0.880, 0.935, 0.934, 0.891],
    ),
    (
        "Wafer",
        [0.933, 0.963, 0.964, 0.964, 0.966, 0.963, 0.965],
        [0.892, 0.944, 0.936, 0.927, 0.939, 0.917, 0.916],
    ),
    (
        "ECG5000",
        [0.800, 0.855, 0.878, 0.864, 0.860, 0.885, 0.844],
        [0.828, 0.814, 0.844, 0.839, 0.822, 0.838, 0.824],
    ),
    (
        "TwoPatterns",
        [0.341, 0.693, 0.662, 0.472, 0.641, 0.681, 0.550],
        [0.529, 0.906, 0.823, 0.727, 0.902, 0.803, 0.720],
    ),
    (
        "UWaveGestureLibraryAll",
        [0.311, 0.619, 0.558, 0.398, 0.617, 0.554, 0.439],
        [0.405, 0.701, 0.634, 0.537, 0.733, 0.658, 0.552],
    ),
    (
        "FordB",
        [0.578, 0.644, 0.742, 0.638, 0.632, 0.700, 0.612],
        [0.600, 0.674, 0.756, 0.677, 0.639, 0.698, 0.644],
    ),
    (
        "ShapesAll",
        [0.287, 0.487, 0.533, 0.397, 0.483, 0.539, 0.403],
        [0.305, 0.552, 0.604, 0.480, 0.560, 0.602, 0.460],
    ),
    (
        "SonyAIBORobotSurface1",
        [0.557, 0.545, 0.608, 0.532, 0.478, 0.578, 0.543],
        [0.679, 0.698, 0.740, 0.699, 0.744, 0.708, 0.692],
    ),
];

/// The thesis' probe accuracies (mean of 4 seeds) of the baseline and one NC-VQVAE setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThesisProbes {
    /// Baseline KNN.
    pub base_knn: f64,
    /// Baseline SVM.
    pub base_svm: f64,
    /// The setting's KNN.
    pub knn: f64,
    /// The setting's SVM.
    pub svm: f64,
}

/// The thesis' probe means for `dataset` (a UCR name) and the NC-VQVAE setting `ssl` + `aug`
/// (`ssl = None` gives the baseline twice), if the thesis reports that dataset.
pub fn probes(dataset: &str, ssl: SslChoice, aug: Recipe) -> Option<ThesisProbes> {
    let (_, knn, svm) = PROBES.iter().find(|(name, _, _)| *name == dataset)?;
    let col = column(ssl, Some(aug))?;
    Some(ThesisProbes { base_knn: knn[0], base_svm: svm[0], knn: knn[col], svm: svm[col] })
}

/// `(dataset, FID means, IS means, CAS means)`.
type Generation = (&'static str, [f64; 7], [f64; 7], [f64; 7]);

/// `(dataset, FID means, IS means, CAS means)` in the column order of [`CONFIGS`] (docs/reference.md §12,
/// "Stage 2 — FID and IS" and "Stage 2 — CAS", mean of 4 seeds; CAS is the reference's running
/// `val_acc_ema`).
const GENERATION: [Generation; 10] = [
    (
        "FordA",
        [5.15, 2.59, 2.36, 2.28, 3.01, 2.90, 3.73],
        [1.16, 1.41, 1.45, 1.45, 1.34, 1.41, 1.29],
        [0.864, 0.884, 0.902, 0.878, 0.864, 0.895, 0.870],
    ),
    (
        "ElectricDevices",
        [13.48, 16.51, 10.20, 11.54, 13.99, 11.82, 15.20],
        [3.75, 3.95, 3.93, 3.75, 4.17, 3.85, 3.55],
        [0.614, 0.588, 0.607, 0.599, 0.618, 0.610, 0.594],
    ),
    (
        "StarLightCurves",
        [1.01, 1.29, 1.91, 1.08, 1.07, 1.19, 1.05],
        [1.93, 2.35, 2.32, 2.25, 2.35, 2.36, 2.22],
        [0.960, 0.953, 0.955, 0.965, 0.962, 0.954, 0.964],
    ),
    (
        "Wafer",
        [5.72, 3.70, 4.20, 2.85, 3.67, 3.86, 2.84],
        [1.33, 1.25, 1.24, 1.31, 1.26, 1.26, 1.31],
        [0.976, 0.977, 0.978, 0.968, 0.979, 0.976, 0.984],
    ),
    (
        "ECG5000",
        [1.62, 2.61, 2.56, 2.47, 2.60, 2.39, 1.76],
        [1.94, 2.00, 1.98, 2.00, 1.99, 2.00, 1.99],
        [0.866, 0.881, 0.863, 0.880, 0.877, 0.892, 0.910],
    ),
    (
        "TwoPatterns",
        [4.04, 4.00, 2.96, 2.44, 4.05, 3.15, 2.62],
        [2.41, 2.54, 2.66, 2.67, 2.56, 2.66, 2.67],
        [0.808, 0.770, 0.788, 0.847, 0.715, 0.781, 0.846],
    ),
    (
        "UWaveGestureLibraryAll",
        [8.48, 6.77, 6.64, 7.35, 6.80, 6.49, 7.34],
        [2.13, 2.86, 2.96, 2.73, 2.91, 2.99, 2.72],
        [0.333, 0.300, 0.367, 0.313, 0.360, 0.401, 0.383],
    ),
    (
        "FordB",
        [4.05, 2.66, 3.49, 2.88, 2.49, 3.07, 3.04],
        [1.28, 1.48, 1.50, 1.52, 1.48, 1.51, 1.31],
        [0.725, 0.748, 0.756, 0.741, 0.750, 0.738, 0.750],
    ),
    (
        "ShapesAll",
        [27.64, 38.22, 32.54, 32.25, 36.59, 35.79, 31.56],
        [4.22, 5.07, 5.04, 4.56, 4.72, 4.76, 4.71],
        [0.361, 0.344, 0.329, 0.420, 0.379, 0.367, 0.404],
    ),
    (
        "SonyAIBORobotSurface1",
        [23.71, 30.65, 31.97, 25.29, 26.11, 28.20, 18.61],
        [1.20, 1.22, 1.21, 1.28, 1.32, 1.32, 1.44],
        [0.975, 0.933, 0.957, 0.979, 0.982, 0.976, 0.985],
    ),
];

/// The thesis' generation scores (mean of 4 seeds, 1000 epochs per stage, the reference's own
/// pretrained FCN) of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThesisGeneration {
    /// FID.
    pub fid: f64,
    /// IS.
    pub is: f64,
    /// CAS as the reference reports it (running average).
    pub cas: f64,
}

/// The thesis' FID / IS / CAS means for `dataset` and the model `ssl` (+ `aug` when `ssl` is not
/// `None`), if the thesis reports them.
pub fn generation(dataset: &str, ssl: SslChoice, aug: Option<Recipe>) -> Option<ThesisGeneration> {
    let (_, fid, is, cas) = GENERATION.iter().find(|(name, ..)| *name == dataset)?;
    let col = column(ssl, aug)?;
    Some(ThesisGeneration { fid: fid[col], is: is[col], cas: cas[col] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_the_column_order() {
        // Spot checks against the thesis' tables: FordA BT-slice (the headline 0.74 → 0.89), TwoPatterns VIb-warp.
        let f = probes("FordA", SslChoice::BarlowTwins, Recipe::Slice).unwrap();
        assert_eq!((f.base_knn, f.base_svm, f.knn, f.svm), (0.701, 0.742, 0.909, 0.894));
        let t = probes("TwoPatterns", SslChoice::Vibcreg, Recipe::Warp).unwrap();
        assert_eq!((t.knn, t.svm), (0.641, 0.902));
        let b = probes("Wafer", SslChoice::None, Recipe::Gauss).unwrap();
        assert_eq!((b.knn, b.svm), (0.933, 0.892));
        assert!(
            probes("Mallat", SslChoice::BarlowTwins, Recipe::Slice).is_none(),
            "held out in the thesis"
        );
    }

    #[test]
    fn generation_lookup_follows_the_column_order() {
        // Spot checks against the thesis' tables.
        let e = generation("ECG5000", SslChoice::None, None).unwrap();
        assert_eq!((e.fid, e.is, e.cas), (1.62, 1.94, 0.866));
        let s = generation("ECG5000", SslChoice::BarlowTwins, Some(Recipe::Slice)).unwrap();
        assert_eq!((s.fid, s.is, s.cas), (2.56, 1.98, 0.863));
        let v =
            generation("SonyAIBORobotSurface1", SslChoice::Vibcreg, Some(Recipe::Gauss)).unwrap();
        assert_eq!((v.fid, v.is, v.cas), (18.61, 1.44, 0.985));
        assert!(
            generation("ECG5000", SslChoice::BarlowTwins, None).is_none(),
            "an SSL model needs its augmentation"
        );
        assert!(generation("Mallat", SslChoice::None, None).is_none());
    }
}
