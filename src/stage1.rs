//! `nc-vqvae stage1`: a stage-1 run in its folder. The training itself is
//! [`train::stage1::train_tokenizer`]; this module resolves the dataset, claims the run's
//! `config.toml` (the recipe plus the dataset), and writes `model.bpk` and `stage1.json`.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use train::RunContext;
use train::persist::{load_weights, read_toml, run_config, save_weights};
use ucr_data::UcrDataset;

pub use augment::Recipe;
pub use train::stage1::{Evaluation, SslChoice, Stage1Model, evaluate, train_mode_probes};

use crate::RunError;
use crate::config::OnDataset;
use crate::progress::Bar;
use train::run_dir::{RunDir, write_json};

/// Everything that defines a stage-1 run in a folder: the dataset and the recipe
/// ([`train::stage1::Stage1Config`]); written to `config.toml`. Defaults are the thesis settings.
pub type Stage1Run = OnDataset<train::stage1::Stage1Config>;

impl Stage1Run {
    /// Thesis defaults for `dataset`.
    pub fn new(dataset: &str) -> Self {
        OnDataset::on(dataset, train::stage1::Stage1Config::default())
    }

    /// Checks the values that would otherwise fail deep inside training.
    pub fn validate(&self) -> Result<(), train::Error> {
        Ok(self.recipe.validate()?)
    }
}

/// `DIR/stage1.json` (keys promised in docs/cli.md, plus run identification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage1Summary {
    /// Test-set time-domain reconstruction MSE (full test set, sample-weighted).
    pub recon_mse_time: f64,
    /// Test-set STFT-domain reconstruction MSE.
    pub recon_mse_timefreq: f64,
    /// KNN (k = 5) probe test accuracy; NaN (`null` in JSON) without labels.
    #[serde(deserialize_with = "nan_if_null")]
    pub probe_knn_acc: f64,
    /// Linear SVM probe test accuracy; NaN (`null` in JSON) without labels.
    #[serde(deserialize_with = "nan_if_null")]
    pub probe_svm_acc: f64,
    /// Perplexity of the codebook usage over all test tokens.
    pub codebook_perplexity: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training and evaluation wall time, seconds (summed over resumed segments).
    pub wall_seconds: f64,
    /// Dataset name.
    pub dataset: String,
    /// SSL branch.
    pub ssl: SslChoice,
    /// Augmentation (`null` for the baseline).
    pub aug: Option<Recipe>,
    /// Seed.
    pub seed: u64,
}

/// Reads a number that JSON writes as `null` when it is NaN (serde_json's NaN).
fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Options of one invocation (not part of the run's identity).
#[derive(Debug, Clone, Default)]
pub struct Stage1Options {
    /// Continue the run in the output folder from its last checkpoint.
    pub resume: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Trains (or resumes) a stage-1 run in `out` on `device` (a plain device; autodiff is added
/// there) and writes `model.bpk` and `stage1.json`.
pub fn train(
    config: &Stage1Run,
    out: &Path,
    device: &Device,
    options: &Stage1Options,
) -> Result<Stage1Summary, train::Error> {
    config.validate()?;
    // A new run reads its data before it claims the folder, so bad input leaves nothing behind.
    let early = if options.resume { None } else { Some(config.load_data()?) };
    if !options.resume {
        // The config is claimed in the folder before the run folder is opened below.
        train::run_dir::ensure_writable(out)?;
    }
    let config: Stage1Run = run_config(
        &out.join("config.toml"),
        options.resume,
        config,
        || format!("{}: no run to resume (config.toml missing)", out.display()),
        || {
            format!(
                "{}: already holds a run; pass --resume to continue it or choose another --out",
                out.display()
            )
        },
    )?;
    config.validate()?;
    let run = RunDir::create(out)?;
    let data = match early {
        Some(data) => data,
        None => config.load_data()?,
    };
    let trained = train::stage1::train_tokenizer(
        &config.recipe,
        &data,
        device,
        RunContext::in_folder(&run, options.resume, &mut Bar::phase(options.progress, "stage 1")),
    )?;
    save_weights(trained.model, &run.path("model.bpk"))?;
    let eval = trained.evaluation;
    let summary = Stage1Summary {
        recon_mse_time: eval.recon_time,
        recon_mse_timefreq: eval.recon_timefreq,
        probe_knn_acc: eval.knn,
        probe_svm_acc: eval.svm,
        codebook_perplexity: eval.perplexity,
        epochs: config.epochs,
        wall_seconds: trained.seconds,
        dataset: data.name.clone(),
        ssl: config.ssl,
        aug: (config.ssl != SslChoice::None).then_some(config.aug),
        seed: config.seed,
    };
    write_json(&run.path("stage1.json"), &summary)?;
    Ok(summary)
}

/// A finished stage-1 run loaded back: its config, its dataset and the tokenizer in eval mode on
/// `device`.
pub fn load_finished(
    run: &Path,
    device: &Device,
) -> Result<(Stage1Run, UcrDataset, Stage1Model), RunError> {
    let model_path = run.join("model.bpk");
    if !run.join("stage1.json").exists() || !model_path.exists() {
        return Err(RunError::NotReady(format!(
            "{}: no finished stage-1 run here (stage1.json and model.bpk missing); run `nc-vqvae stage1 DATASET --out {}` first",
            run.display(),
            run.display()
        )));
    }
    let config: Stage1Run = read_toml(&run.join("config.toml"))?;
    let data = config.load_data()?;
    let model = Stage1Model::new(&config, data.length(), device)
        .map_err(|source| train::Error::Model { dataset: data.name.clone(), source })?;
    Ok((config, data, load_weights(model, &model_path)?))
}
