//! Sampling from a trained prior, and the generative scores of a tokenizer + prior pair
//! (docs/reference.md §9.5, §10.3–§10.5): FID and IS against the test split with a trained FCN as
//! the judge, and CAS (a fresh FCN trained on class-conditional samples, tested on the real test
//! split).

use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use maskgit::{MaskGit, SamplerConfig, int_tensor};
use metrics::Fcn;
use rand::SeedableRng;
use rand::rngs::StdRng;
use ucr_data::{Split, SplitStats, UcrDataset, epoch_batches};
use vqvae::VqVae;

use crate::error::Error;
use crate::fcn::{FcnTrainConfig, train_fcn};
use crate::fit::{Progress, RunContext};
use crate::run_dir::{RunDir, io, write_atomic};
use crate::to_host;

/// Draws `n` series of length `2⌊L/2⌋` from `prior`, decoded by the frozen `tokenizer` (with its
/// own, not the prior's fine-tuned, codebook), for the class indices `classes` (one per series) or
/// unconditionally; in the z-normalised scale the models work in (`Normalizer::invert` undoes it).
/// Generated in batches of 256 from one generator seeded with `seed`.
pub fn generate(
    tokenizer: &VqVae,
    prior: &MaskGit,
    n: usize,
    classes: Option<&[usize]>,
    sampler: &SamplerConfig,
    seed: u64,
    device: &Device,
) -> Result<Vec<Vec<f32>>, Error> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let b = (n - start).min(256);
        let chunk = classes.map(|c| &c[start..start + b]);
        let tokens = maskgit::sample(prior, b, chunk, sampler, device, &mut rng)?;
        let tokens = int_tensor(tokens, [b, prior.n_tokens()], device);
        let z = tokenizer.quantizer().decode_tokens(tokens, 5);
        let (_, x_hat) = tokenizer.decode(z);
        let len = x_hat.dims()[2];
        let values = to_host::<f32, 3, _>(x_hat)?;
        out.extend(values.chunks(len).map(<[f32]>::to_vec));
        start += b;
    }
    Ok(out)
}

/// Settings of [`generative_scores`]; defaults are the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreConfig {
    /// Epochs of the CAS classifier. Reference: 1000.
    pub cas_epochs: usize,
    /// Batch size of the CAS classifier. Reference: 256 (the FCN recipe, §10.2); a few hundred
    /// synthetic series in batches of 256 make one step per epoch, so short profiles use less.
    pub cas_batch_size: usize,
    /// Seed of the sampling, the IS shuffle and the CAS classifier.
    pub seed: u64,
    /// At most this many generated (and real test) series for FID / IS; 0: all `N_test`, as the
    /// reference. Fewer samples bias FID upwards: compare only equal settings.
    pub max_fid_samples: usize,
    /// Synthetic training series for CAS; 0: the reference's count (≈ 1000, in proportion to the
    /// train-set class counts).
    pub cas_samples: usize,
    /// Classifier-free guidance weight of the class-conditional samples CAS trains on
    /// ([`SamplerConfig::guidance`]). Reference: 1 (the plain conditional prior, quirk Q11).
    pub guidance: f64,
    /// A folder that makes the scores resumable (`None`: nothing is kept): the drawn samples are
    /// kept there (`samples_unconditional.npy`, `samples_cas.npy`) and the CAS classifier trains
    /// in its run folder `cas/` (checkpoints, `metrics.jsonl`), so a second call with the same
    /// settings after an interruption reuses the samples and continues the classifier from its
    /// last checkpoint, ending with the same scores. The caller empties it when the settings change.
    pub work_dir: Option<PathBuf>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            cas_epochs: 1000,
            cas_batch_size: 256,
            seed: 1,
            max_fid_samples: 0,
            cas_samples: 0,
            guidance: 1.0,
            work_dir: None,
        }
    }
}

/// `generate` through a cache file `name` in `work` (when given): series drawn by an earlier
/// call are read back instead of drawn again (the draw is deterministic, so this only saves time).
fn kept_samples(
    work: Option<&Path>,
    name: &str,
    n: usize,
    draw: impl FnOnce() -> Result<Vec<Vec<f32>>, Error>,
) -> Result<Vec<Vec<f32>>, Error> {
    let Some(work) = work else { return draw() };
    let path = work.join(name);
    if let Ok(bytes) = std::fs::read(&path)
        && let Some(rows) = read_npy_rows(&bytes, n)
    {
        return Ok(rows);
    }
    let rows = draw()?;
    let length = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    write_atomic(&path, &ucr_data::npy_f32(&[rows.len(), length], &flat))?;
    Ok(rows)
}

/// The `n` rows of a 2-D little-endian `float32` `.npy` array written by [`ucr_data::npy_f32`];
/// `None` for anything else (the cache is then drawn again).
fn read_npy_rows(bytes: &[u8], n: usize) -> Option<Vec<Vec<f32>>> {
    let header_len = u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + header_len)?).ok()?;
    let shape = header.split("'shape': (").nth(1)?.split(')').next()?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().ok())
        .collect::<Option<_>>()?;
    if !header.contains("'<f4'") || dims.len() != 2 || dims[0] != n {
        return None;
    }
    let data = bytes.get(10 + header_len..)?;
    if data.len() != 4 * dims[0] * dims[1] {
        return None;
    }
    let values: Vec<f32> =
        data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(values.chunks(dims[1].max(1)).map(<[f32]>::to_vec).collect())
}

/// The generative scores of one tokenizer + prior pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Fréchet distance between FCN features of real test and generated series.
    pub fid: f64,
    /// Inception score (mean over 10 splits).
    pub is_mean: f64,
    /// Its population standard deviation over the splits.
    pub is_std: f64,
    /// CAS as the reference reports it: the running accuracy over test batches (quirk Q21).
    pub cas: f64,
    /// CAS as the final full-test accuracy of the classifier trained on synthetic series.
    pub cas_final_acc: f64,
    /// Unconditional samples used for FID / IS.
    pub n_generated: usize,
    /// Class-conditional samples the CAS classifier was trained on.
    pub n_cas_samples: usize,
}

/// FID, IS and CAS of `prior` decoded by `tokenizer`, judged by `fcn` (trained on `data`'s train
/// split, docs/reference.md §10.2):
/// - FID: FCN features of the test split after the STFT→ISTFT round trip against as many
///   unconditional samples (generated in batches of 256, at least 256);
/// - IS: the FCN's class probabilities on the same samples, 10 splits;
/// - CAS: class-conditional samples in proportion to the train-set class counts, a fresh FCN
///   trained on them with the reference recipe (`config.cas_epochs`), tested on the real test
///   split after every epoch whose pass can still move the reported running accuracy by 1e-6
///   ([`crate::fcn::cas_first_counted_epoch`]; progress goes to `progress`).
///
/// With `config.work_dir` the samples and the CAS classifier's checkpoints are kept there, and a
/// call interrupted anywhere is finished by the next one with the same settings.
pub fn generative_scores(
    tokenizer: &VqVae,
    prior: &MaskGit,
    fcn: &Fcn,
    data: &UcrDataset,
    config: &ScoreConfig,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Scores, Error> {
    let k = data.num_classes();
    // Real: the test split through the STFT→ISTFT round trip (length 2⌊L/2⌋).
    let stft = tokenizer.stft();
    let mut real = Vec::new();
    let mut length = 0;
    for idx in epoch_batches(data.test.n(), 256, false, 0, 0)? {
        let x = data.test.batch(&idx, device).x;
        let back = stft.inverse(stft.forward(x), None);
        length = back.dims()[2];
        real.extend(to_host::<f32, 3, _>(back)?);
    }
    let mut n_test = data.test.n();
    if config.max_fid_samples > 0 && config.max_fid_samples < n_test {
        // The first `max_fid_samples` test series (UCR test files are not sorted by class).
        n_test = config.max_fid_samples;
        real.truncate(n_test * length);
    }
    let sampler = SamplerConfig::new();
    let work = config.work_dir.as_deref();
    if let Some(work) = work {
        std::fs::create_dir_all(work).map_err(io(work))?;
    }
    let n_draw = n_test.max(256);
    let started = std::time::Instant::now();
    progress.note(&format!("drawing {n_draw} unconditional series for FID / IS"));
    let generated = kept_samples(work, "samples_unconditional.npy", n_draw, || {
        generate(tokenizer, prior, n_draw, None, &sampler, config.seed, device)
    })?;
    let generated: Vec<f32> = generated.into_iter().take(n_test).flatten().collect();
    let (real_features, _) = fcn_outputs(fcn, &real, length, device)?;
    let (gen_features, gen_probs) = fcn_outputs(fcn, &generated, length, device)?;
    let fid = metrics::fid(&real_features, &gen_features, 128)?;
    let (is_mean, is_std) = metrics::inception_score(&gen_probs, k, 10, config.seed)?;

    let mut counts = vec![0usize; k];
    for &c in &data.train.labels {
        counts[c] += 1;
    }
    let counts = if config.cas_samples > 0 {
        // Proportional to the class frequencies, at least one per class.
        let total: usize = counts.iter().sum();
        counts.iter().map(|&c| (c * config.cas_samples).div_ceil(total).max(1)).collect()
    } else {
        metrics::cas_sample_counts(&counts)
    };
    let labels: Vec<usize> =
        counts.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c, n)).collect();
    let conditional = SamplerConfig::new().with_guidance(config.guidance);
    progress.note(&format!(
        "FID {fid:.3}, IS {is_mean:.3} after {:.0}s; drawing {} class-conditional series for CAS",
        started.elapsed().as_secs_f64(),
        labels.len()
    ));
    let synthetic = kept_samples(work, "samples_cas.npy", labels.len(), || {
        generate(
            tokenizer,
            prior,
            labels.len(),
            Some(&labels),
            &conditional,
            config.seed.wrapping_add(1),
            device,
        )
    })?;
    let n_cas_samples = synthetic.len();
    let split = synthetic_split(synthetic, labels, k);
    let recipe = FcnTrainConfig {
        epochs: config.cas_epochs,
        batch_size: config.cas_batch_size,
        seed: config.seed,
        ..FcnTrainConfig::default()
    };
    progress.note(&format!(
        "training the CAS classifier ({} epochs) after {:.0}s",
        config.cas_epochs,
        started.elapsed().as_secs_f64()
    ));
    let cas_run = work.map(|w| RunDir::create(&w.join("cas"))).transpose()?;
    let ctx = RunContext { run: cas_run.as_ref(), resume: true, progress };
    let cas = train_fcn(&split, &data.test, k, &recipe, true, device, ctx)?;
    Ok(Scores {
        fid,
        is_mean,
        is_std,
        cas: cas.running_acc.unwrap_or(0.0),
        cas_final_acc: cas.test_acc,
        n_generated: n_test,
        n_cas_samples,
    })
}

/// FCN features `(n, 128)` and class probabilities `(n, K)` of series rows of `length`.
fn fcn_outputs(
    model: &Fcn,
    rows: &[f32],
    length: usize,
    device: &Device,
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let n = rows.len() / length;
    let (mut features, mut probs) = (Vec::new(), Vec::new());
    for idx in epoch_batches(n, 256, false, 0, 0)? {
        let (start, b) = (idx[0], idx.len());
        let x = Tensor::<3>::from_data(
            TensorData::new(rows[start * length..(start + b) * length].to_vec(), [b, 1, length]),
            device,
        );
        let f = model.features(x.clone());
        features.extend(to_host::<f32, 2, _>(f)?);
        probs.extend(to_host::<f32, 2, _>(softmax(model.forward(x), 1))?);
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
        stats: SplitStats {
            n,
            length_min: length,
            length_max: length,
            classes: n_classes,
            nan_values: 0,
        },
    }
}
