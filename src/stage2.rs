//! `nc-vqvae stage2`: the prior of a finished stage-1 run, trained in its folder
//! ([`train::stage2::train_prior`]), and sampling synthetic series from it.
//!
//! Files, inside the stage-1 run folder `DIR`: `DIR/stage2/` holds this stage's `config.toml`,
//! `metrics.jsonl`, checkpoints and the final `prior.bpk`; `DIR/stage2.json` is the summary.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use maskgit::{MaskGit, MaskGitConfig, SamplerConfig, Variant};
use serde::{Deserialize, Serialize};
use train::RunContext;
use train::persist::{load_weights, read_toml, run_config, save_weights};
use ucr_data::UcrDataset;
use vqvae::VqVae;

pub use train::stage2::{PriorChoice, Stage2Config};

use crate::RunError;
use crate::progress::Bar;
use crate::stage1::{Stage1Run, load_finished};
use train::run_dir::{RunDir, write_atomic, write_json};

/// `DIR/stage2.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage2Summary {
    /// Cross-entropy (nats per token) of the test tokens at masked positions: standard cosine
    /// masking, true class labels, the same token draws as training.
    pub loss: f64,
    /// The same over all positions (masked and visible), as the reference's validation loss.
    pub loss_all_positions: f64,
    /// `ln K`: the loss of a prior that knows nothing (uniform over the codes).
    pub uniform_loss: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training and evaluation wall time, seconds (summed over resumed segments).
    pub wall_seconds: f64,
    /// `token` or `embedding`.
    pub variant: String,
    /// Tokens per series.
    pub n_tokens: usize,
    /// Seed.
    pub seed: u64,
}

/// Options of one `stage2` invocation.
#[derive(Debug, Clone, Default)]
pub struct Stage2Options {
    /// Continue from the last checkpoint with the stored config.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// Trains (or resumes) the prior of the finished stage-1 run `run` and writes `run/stage2.json`.
pub fn train(
    config: &Stage2Config,
    run: &Path,
    device: &Device,
    options: &Stage2Options,
) -> Result<Stage2Summary, RunError> {
    config.validate()?;
    let (stage1, data, tokenizer) = load_finished(run, device)?;
    let folder = RunDir::create(&run.join("stage2"))?;
    let config: Stage2Config = run_config(
        &folder.path("config.toml"),
        options.resume,
        config,
        || format!("{}: no stage-2 run to resume (config.toml missing)", folder.root().display()),
        || {
            format!(
                "{}: already holds a stage-2 run; pass --resume to continue it",
                folder.root().display()
            )
        },
    )?;
    let trained = train::stage2::train_prior(
        &config,
        tokenizer.vqvae(),
        stage1.ssl,
        &data,
        device,
        RunContext::in_folder(
            &folder,
            options.resume,
            &mut Bar::phase(options.progress, "stage 2 (prior)"),
        ),
    )?;
    save_weights(trained.prior, &folder.path("prior.bpk"))?;
    let summary = Stage2Summary {
        loss: trained.loss,
        loss_all_positions: trained.loss_all_positions,
        uniform_loss: trained.uniform_loss,
        epochs: config.epochs,
        wall_seconds: trained.seconds,
        variant: match trained.variant {
            Variant::Token => "token".into(),
            Variant::Embedding => "embedding".into(),
        },
        n_tokens: trained.n_tokens,
        seed: config.seed,
    };
    write_json(&run.join("stage2.json"), &summary)?;
    Ok(summary)
}

/// A finished stage-1 + stage-2 run, loaded for sampling.
pub struct Generator {
    /// The stage-1 run's config.
    pub stage1: Stage1Run,
    /// Its dataset (class labels, normaliser, length).
    pub data: UcrDataset,
    tokenizer: crate::stage1::Stage1Model,
    prior: MaskGit,
}

impl Generator {
    /// Loads the tokenizer and the trained prior of `run` on `device`.
    pub fn load(run: &Path, device: &Device) -> Result<Self, RunError> {
        let (stage1, data, tokenizer) = load_finished(run, device)?;
        let prior_path = run.join("stage2").join("prior.bpk");
        let config_path = run.join("stage2").join("config.toml");
        if !prior_path.exists() || !config_path.exists() {
            return Err(RunError::NotReady(format!(
                "{}: no trained prior here (stage2/prior.bpk missing); run `nc-vqvae stage2 --run {}` first",
                run.display(),
                run.display()
            )));
        }
        let config: Stage2Config = read_toml(&config_path)?;
        let vq = tokenizer.vqvae();
        let n_tokens = 5 * latent_width(vq, device);
        let prior = MaskGitConfig::new(
            config.trunk(n_tokens, data.num_classes()),
            config.variant(stage1.ssl),
        )
        .init(vq.quantizer().codebook(), device)?;
        let prior = load_weights(prior, &prior_path)?;
        Ok(Self { stage1, data, tokenizer, prior })
    }

    /// Maps a label as written in the dataset files to the class index, if it is one.
    pub fn class_index(&self, label: i64) -> Option<usize> {
        self.data.classes.iter().position(|&c| c == label)
    }

    /// The stage-1 tokenizer.
    pub fn tokenizer(&self) -> &VqVae {
        self.tokenizer.vqvae()
    }

    /// The trained prior.
    pub fn prior(&self) -> &MaskGit {
        &self.prior
    }

    /// Draws `n` series of length `2⌊L/2⌋` for the class indices `classes` (one per series) or
    /// unconditionally, in the data's original scale or (`original_scale = false`) in the
    /// z-normalised scale the models work in. Returns `n` rows.
    pub fn generate(
        &self,
        n: usize,
        classes: Option<&[usize]>,
        sampler: &SamplerConfig,
        seed: u64,
        original_scale: bool,
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, RunError> {
        let mut out = train::scores::generate(
            self.tokenizer.vqvae(),
            &self.prior,
            n,
            classes,
            sampler,
            seed,
            device,
        )?;
        if original_scale {
            out.iter_mut().for_each(|row| self.data.normalizer.invert(row));
        }
        Ok(out)
    }
}

impl Generator {
    /// Draws a PNG at `path`: one row per `(label, class index)` group, up to `max` real test
    /// series of the class (all test series when unconditional) next to up to `max` of the
    /// generated `series` with that label, in the data's original scale.
    pub fn plot_comparison(
        &self,
        path: &Path,
        title: &str,
        groups: &[(i64, Option<usize>)],
        labels: &[i64],
        series: &[Vec<f32>],
        max: usize,
    ) -> Result<(), RunError> {
        let panels = self.comparison_panels(groups, labels, series, max);
        crate::plot::panel_grid(path, title, 2, &panels).map_err(RunError::Plot)
    }

    /// The panels of [`Self::plot_comparison`].
    fn comparison_panels(
        &self,
        groups: &[(i64, Option<usize>)],
        labels: &[i64],
        series: &[Vec<f32>],
        max: usize,
    ) -> Vec<crate::plot::Panel> {
        let test = &self.data.test;
        let mut panels = Vec::new();
        for &(label, class) in groups {
            let real: Vec<Vec<f32>> = (0..test.n())
                .filter(|&i| class.is_none_or(|c| test.labels[i] == c))
                .take(max)
                .map(|i| {
                    let mut v = test.series(i).to_vec();
                    self.data.normalizer.invert(&mut v);
                    v
                })
                .collect();
            let generated: Vec<Vec<f32>> = labels
                .iter()
                .zip(series)
                .filter(|(l, _)| **l == label)
                .map(|(_, s)| s.clone())
                .take(max)
                .collect();
            let name =
                if class.is_some() { format!("class {label}") } else { "unconditional".into() };
            panels.push(crate::plot::Panel {
                title: format!("{name}: real ({})", real.len()),
                series: real,
                color: (30, 90, 200),
            });
            panels.push(crate::plot::Panel {
                title: format!("{name}: generated ({})", generated.len()),
                series: generated,
                color: (220, 80, 30),
            });
        }
        panels
    }
}

/// The latent width W' of a tokenizer (one forward pass of a zero series): a series of its
/// length becomes `5 · W'` tokens.
pub fn latent_width(model: &VqVae, device: &Device) -> usize {
    let x = Tensor::<3>::zeros([1, 1, model.length()], device);
    model.encode(x).1.dims()[3]
}

/// Writes series as a UCR TSV file (label, then values), atomically.
pub fn write_tsv(path: &Path, labels: &[i64], series: &[Vec<f32>]) -> Result<(), RunError> {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (label, row) in labels.iter().zip(series) {
        let _ = write!(text, "{label}");
        for v in row {
            let _ = write!(text, "\t{v}");
        }
        text.push('\n');
    }
    Ok(write_atomic(path, text.as_bytes())?)
}
