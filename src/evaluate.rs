//! `nc-vqvae evaluate`: FID, IS and CAS of a finished stage-2 run (reference spec §10.3–§10.5),
//! judged by a supervised FCN trained on the run's dataset.
//!
//! - The FCN is read from `--fcn FILE` if that file exists; otherwise it is trained there with the
//!   reference recipe and reused by every later evaluation (default `DIR/fcn.bpk`).
//! - FID: FCN features of the test split after an STFT→ISTFT round trip against `N_test`
//!   unconditional samples (generated in batches of 256, at least 256).
//! - IS: the FCN's class probabilities on the same samples, 10 splits.
//! - CAS: class-conditional samples in proportion to the train-set class counts (≈ 1000 when the
//!   train split is smaller), a fresh FCN trained on them, tested on the real test split after every
//!   epoch. `cas` is the reference's running accuracy (quirk Q21); `cas_final_acc` is the plain
//!   final test accuracy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use maskgit::SamplerConfig;
use serde::{Deserialize, Serialize};
use ucr_data::{Split, SplitStats, epoch_batches};

use crate::fcn::{FcnTrainConfig, accuracy, fit, load, train_on};
use crate::run_dir::{read_json, write_json};
use crate::stage1::{RunError, Stage1Summary, read};
use crate::stage2::Generator;

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The FCN weights (trained there if missing). Default: `DIR/fcn.bpk`.
    pub fcn: Option<PathBuf>,
    /// Epochs when the FCN has to be trained. Reference: 1000.
    pub fcn_epochs: usize,
    /// Epochs of the CAS classifier. Reference: 1000.
    pub cas_epochs: usize,
    /// Seed of the sampling, the IS shuffle and the CAS classifier.
    pub seed: u64,
    /// Show progress bars.
    pub progress: bool,
    /// At most this many generated (and real test) series for FID / IS; 0: all `N_test` as the
    /// reference. Fewer samples make FID biased upwards: compare only equal settings.
    pub max_fid_samples: usize,
    /// Synthetic training series for CAS; 0: the reference's count (≈ 1000, in proportion to
    /// the train-set class counts).
    pub cas_samples: usize,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        Self { fcn: None, fcn_epochs: 1000, cas_epochs: 1000, seed: 1, progress: false, max_fid_samples: 0, cas_samples: 0 }
    }
}

/// `DIR/eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// Fréchet distance between FCN features of real test and generated series.
    pub fid: f64,
    /// Inception score (mean over 10 splits).
    pub is_mean: f64,
    /// Its population standard deviation over the splits.
    pub is_std: f64,
    /// CAS as the reference reports it: the running accuracy over test batches (quirk Q21).
    pub cas: f64,
    /// CAS as the final full-test-set accuracy of the classifier trained on synthetic data.
    pub cas_final_acc: f64,
    /// KNN probe accuracy of the tokenizer (from `stage1.json`).
    pub probe_knn_acc: f64,
    /// SVM probe accuracy of the tokenizer (from `stage1.json`).
    pub probe_svm_acc: f64,
    /// Test accuracy of the FCN used for FID / IS.
    pub fcn_test_acc: f64,
    /// The FCN file used.
    pub fcn: PathBuf,
    /// Unconditional samples used for FID / IS.
    pub n_generated: usize,
    /// Class-conditional samples the CAS classifier was trained on.
    pub n_cas_samples: usize,
    /// Epochs of the CAS classifier.
    pub cas_epochs: usize,
    /// Wall time, seconds.
    pub wall_seconds: f64,
}

/// FCN features `(n, 128)` and class probabilities `(n, K)` of series rows of `length`.
fn fcn_outputs(model: &metrics::Fcn, rows: &[f32], length: usize, device: &Device) -> Result<(Vec<f32>, Vec<f32>), RunError> {
    let n = rows.len() / length;
    let (mut features, mut probs) = (Vec::new(), Vec::new());
    for idx in epoch_batches(n, 256, false, 0, 0)? {
        let (start, b) = (idx[0], idx.len());
        let x = Tensor::<3>::from_data(TensorData::new(rows[start * length..(start + b) * length].to_vec(), [b, 1, length]), device);
        let f = model.features(x.clone());
        features.extend(read::<f32, 2, _>(f)?);
        probs.extend(read::<f32, 2, _>(softmax(model.forward(x), 1))?);
    }
    Ok((features, probs))
}

/// A split of synthetic series (already z-normalised) with class indices.
fn synthetic_split(series: Vec<Vec<f32>>, labels: Vec<usize>, n_classes: usize) -> Split {
    let length = series.first().map_or(0, Vec::len);
    let n = series.len();
    Split {
        values: series.into_iter().flatten().collect(),
        labels,
        length,
        origin: "synthetic (stage-2 samples)".into(),
        stats: SplitStats { n, length_min: length, length_max: length, classes: n_classes, nan_values: 0 },
    }
}

/// Evaluates the finished run `run` and writes `run/eval.json`.
pub fn evaluate(run: &Path, opts: &EvaluateOptions, device: &Device) -> Result<EvalSummary, RunError> {
    let start = Instant::now();
    let generator = Generator::load(run, device)?;
    let stage1: Stage1Summary = read_json(&run.join("stage1.json"))?;
    let data = &generator.data;
    let k = data.num_classes();

    let fcn_path = opts.fcn.clone().unwrap_or_else(|| run.join("fcn.bpk"));
    if !fcn_path.exists() {
        let mut config = FcnTrainConfig::new(&generator.stage1.dataset);
        config.data_dir = generator.stage1.data_dir.clone();
        config.epochs = opts.fcn_epochs;
        config.seed = opts.seed;
        train_on(&config, data, &fcn_path, device, opts.progress)?;
    }
    let fcn = load(&fcn_path, k, device)?;
    let fcn_test_acc = accuracy(&fcn, &data.test, device)?;

    // Real: the test split through the STFT→ISTFT round trip (length 2⌊L/2⌋).
    let stft = generator.tokenizer().stft();
    let mut real = Vec::new();
    let mut length = 0;
    for idx in epoch_batches(data.test.n(), 256, false, 0, 0)? {
        let x = data.test.batch(&idx, device).x;
        let back = stft.inverse(stft.forward(x), None);
        length = back.dims()[2];
        real.extend(read::<f32, 3, _>(back)?);
    }
    let mut n_test = data.test.n();
    if opts.max_fid_samples > 0 && opts.max_fid_samples < n_test {
        // The first `max_fid_samples` test series (UCR test files are not sorted by class).
        n_test = opts.max_fid_samples;
        real.truncate(n_test * length);
    }
    let sampler = SamplerConfig::new();
    let generated = generator.generate(n_test.max(256), None, &sampler, opts.seed, false, device)?;
    let generated: Vec<f32> = generated.into_iter().take(n_test).flatten().collect();
    let (real_features, _) = fcn_outputs(&fcn, &real, length, device)?;
    let (gen_features, gen_probs) = fcn_outputs(&fcn, &generated, length, device)?;
    let fid = metrics::fid(&real_features, &gen_features, 128)?;
    let (is_mean, is_std) = metrics::inception_score(&gen_probs, k, 10, opts.seed)?;

    // CAS.
    let mut counts = vec![0usize; k];
    for &c in &data.train.labels {
        counts[c] += 1;
    }
    let counts = if opts.cas_samples > 0 {
        // Proportional to the class frequencies, at least one per class.
        let total: usize = counts.iter().sum();
        counts.iter().map(|&c| (c * opts.cas_samples).div_ceil(total).max(1)).collect()
    } else {
        metrics::cas_sample_counts(&counts)
    };
    let labels: Vec<usize> = counts.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c, n)).collect();
    let synthetic = generator.generate(labels.len(), Some(&labels), &sampler, opts.seed.wrapping_add(1), false, device)?;
    let n_cas = synthetic.len();
    let split = synthetic_split(synthetic, labels, k);
    let mut cas_config = FcnTrainConfig::new(&generator.stage1.dataset);
    cas_config.epochs = opts.cas_epochs;
    cas_config.seed = opts.seed;
    let cas = fit(&split, &data.test, k, &cas_config, true, opts.progress, device, None)?;

    let summary = EvalSummary {
        fid,
        is_mean,
        is_std,
        cas: cas.running_acc.unwrap_or(0.0),
        cas_final_acc: cas.test_acc,
        probe_knn_acc: stage1.probe_knn_acc,
        probe_svm_acc: stage1.probe_svm_acc,
        fcn_test_acc,
        fcn: fcn_path,
        n_generated: n_test,
        n_cas_samples: n_cas,
        cas_epochs: opts.cas_epochs,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&run.join("eval.json"), &summary)?;
    Ok(summary)
}
