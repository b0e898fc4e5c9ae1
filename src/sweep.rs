//! `nc-vqvae sweep`: grids of single-model runs (stage 1 → stage 2 → evaluation), one index per
//! cluster task, collected into the thesis' tables.
//!
//! A SPEC file holds a `[grid]` table and the usual settings tables (`[run]` for the evaluation
//! settings, `[stage1]`, `[stage2]`, `[fcn]`) applied to every point:
//!
//! ```toml
//! [grid]
//! datasets = ["ECG5000", "FordA"]
//! configs = ["baseline", "barlow-twins/slice", "vibcreg/warp"]   # "baseline" or "SSL/AUG"
//! seeds = [1, 2, 3, 4]
//! data_dir = "/data/UCRArchive_2018"                              # optional
//! ```
//!
//! - `sweep expand SPEC --out DIR` writes `DIR/sweep.toml` (the spec) and one folder per point,
//!   `DIR/points/NNNN/point.toml`, in the order datasets × configs × seeds.
//! - `sweep run DIR --index I` runs point `I` in its folder: a finished point is skipped, an
//!   interrupted one resumes from its checkpoints. The FCN behind FID / IS is shared per dataset
//!   (`DIR/fcn/<dataset>.bpk`, trained by the first point that needs it; concurrent tasks of
//!   that dataset wait for it on `DIR/fcn/<dataset>.bpk.lock` and then reuse it).
//! - `sweep collect DIR` reads every finished point, prints the tables (mean and best over seeds,
//!   as the thesis) and writes `DIR/points.csv` (one row per point) and `DIR/tables.csv`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::RunError;
use crate::config::{ConfigError, layer_table, read_file};
use crate::evaluate::EvaluateOptions;
use crate::fcn::FcnTrainConfig;
use crate::pipeline::{JobConfig, ModelResult, claim_point, run_model};
use crate::stage1::{Recipe, SslChoice, Stage1Run};
use crate::stage2::Stage2Config;
use train::persist::read_toml;
use train::run_dir::{read_json, write_atomic};
use train::scores::ScoreConfig;

/// The `[grid]` table of a sweep spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Dataset names (or paths).
    pub datasets: Vec<String>,
    /// `"baseline"` or `"SSL/AUG"` (`barlow-twins/slice`, `vibcreg/warp`, …).
    pub configs: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Where the datasets are (else `$NC_VQVAE_DATA`, then the bundled data).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// One grid point; `DIR/points/NNNN/point.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Its index in the grid.
    pub index: usize,
    /// Dataset name.
    pub dataset: String,
    /// `"baseline"` or `"SSL/AUG"`.
    pub config: String,
    /// Seed.
    pub seed: u64,
    /// FCN file, relative to the sweep folder.
    pub fcn: PathBuf,
    /// Epochs of the CAS classifier.
    pub cas_epochs: usize,
    /// Batch size of the CAS classifier.
    #[serde(default = "crate::pipeline::reference_cas_batch_size")]
    pub cas_batch_size: usize,
    /// Synthetic series for CAS (0: the reference's count).
    pub cas_samples: usize,
    /// Classifier-free guidance weight of the CAS samples (1: the reference's).
    #[serde(default = "crate::pipeline::reference_guidance")]
    pub guidance: f64,
    /// FID / IS sample cap (0: all test series).
    pub fid_samples: usize,
    /// Stage 1.
    pub stage1: Stage1Run,
    /// Stage 2.
    pub stage2: Stage2Config,
    /// The FCN's training settings.
    pub fcn_train: FcnTrainConfig,
}

/// Parses a config name of the grid.
pub fn parse_config(name: &str) -> Result<(SslChoice, Recipe), String> {
    if name == "baseline" {
        return Ok((SslChoice::None, Recipe::Slice));
    }
    let (ssl, aug) = name.split_once('/').ok_or_else(|| {
        format!(
            "config `{name}`: expected \"baseline\" or \"SSL/AUG\" (e.g. \"barlow-twins/slice\")"
        )
    })?;
    let ssl = match ssl.parse::<SslChoice>() {
        Ok(SslChoice::None) | Err(_) => {
            return Err(format!("config `{name}`: unknown SSL `{ssl}` (barlow-twins or vibcreg)"));
        }
        Ok(ssl) => ssl,
    };
    let aug = aug.parse::<Recipe>().map_err(|e| format!("config `{name}`: {e}"))?;
    Ok((ssl, aug))
}

fn spec_err(path: &Path, message: impl Into<String>) -> RunError {
    RunError::config(format!("{}: {}", path.display(), message.into()))
}

impl From<ConfigError> for RunError {
    fn from(e: ConfigError) -> Self {
        RunError::config(e.to_string())
    }
}

/// Reads a spec and lists its points (datasets × configs × seeds).
pub fn points(spec: &Path) -> Result<Vec<Point>, RunError> {
    let mut doc = read_file(spec)?;
    let grid: Grid = match doc.remove("grid") {
        Some(toml::Value::Table(t)) => toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| spec_err(spec, format!("[grid]: {}", e.message())))?,
        _ => return Err(spec_err(spec, "no [grid] table (datasets, configs, seeds)")),
    };
    if let Some(name) = doc.keys().find(|k| !crate::config::SECTIONS.contains(&k.as_str())) {
        return Err(spec_err(
            spec,
            format!("unknown table [{name}] (known: grid, {})", crate::config::SECTIONS.join(", ")),
        ));
    }
    if grid.datasets.is_empty() || grid.configs.is_empty() || grid.seeds.is_empty() {
        return Err(spec_err(spec, "[grid] needs at least one dataset, config and seed"));
    }
    let origin = spec.display().to_string();
    let base = JobConfig::thesis("");
    let job = JobConfig {
        run: layer_table(&base.run, "run", Some((&doc, &origin)), &[])?,
        stage1: layer_table(&base.stage1, "stage1", Some((&doc, &origin)), &[])?,
        stage2: layer_table(&base.stage2, "stage2", Some((&doc, &origin)), &[])?,
        fcn: layer_table(&base.fcn, "fcn", Some((&doc, &origin)), &[])?,
    };
    // The same for every point (the grid never sets it).
    crate::pipeline::check_guidance("run.guidance", job.run.guidance)
        .map_err(|m| spec_err(spec, m))?;
    let mut out = Vec::new();
    for dataset in &grid.datasets {
        for config in &grid.configs {
            let (ssl, aug) = parse_config(config).map_err(|m| spec_err(spec, m))?;
            for &seed in &grid.seeds {
                let mut job =
                    job.clone().with_dataset(dataset, grid.data_dir.clone()).with_seed(seed);
                job.run.aug = aug;
                let stage1 = job.stage1_for(ssl);
                stage1.validate()?;
                job.stage2.validate()?;
                let mut fcn_train = job.fcn.clone();
                fcn_train.seed = 1;
                let name = Path::new(dataset)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("data")
                    .to_string();
                out.push(Point {
                    index: out.len(),
                    dataset: dataset.clone(),
                    config: config.clone(),
                    seed,
                    fcn: PathBuf::from("fcn").join(format!("{name}.bpk")),
                    cas_epochs: job.run.cas_epochs,
                    cas_batch_size: job.run.cas_batch_size,
                    cas_samples: job.run.cas_samples,
                    guidance: job.run.guidance,
                    fid_samples: job.run.fid_samples,
                    stage1,
                    stage2: job.stage2.clone(),
                    fcn_train,
                });
            }
        }
    }
    Ok(out)
}

pub(crate) fn point_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join("points").join(format!("{index:04}"))
}

/// `sweep expand`: writes the point folders; returns the number of points.
pub fn expand(spec: &Path, dir: &Path) -> Result<usize, RunError> {
    let points = points(spec)?;
    let text = std::fs::read_to_string(spec).map_err(train::run_dir::RunDirError::io(spec))?;
    train::persist::claim_text(&dir.join("sweep.toml"), &text, || {
        format!("{}: holds another sweep; choose another --out", dir.display())
    })?;
    for point in &points {
        let text = toml::to_string_pretty(point).map_err(|e| RunError::config(e.to_string()))?;
        claim_point(&point_dir(dir, point.index).join("point.toml"), &text)?;
    }
    Ok(points.len())
}

/// `sweep run`: runs (or finishes, or skips) point `index` of the expanded sweep in `dir`.
pub fn run(
    dir: &Path,
    index: usize,
    progress: bool,
    device: &Device,
) -> Result<ModelResult, RunError> {
    let folder = point_dir(dir, index);
    let path = folder.join("point.toml");
    if !path.exists() {
        let n = std::fs::read_dir(dir.join("points")).map(|d| d.count()).unwrap_or(0);
        return Err(RunError::NotReady(format!(
            "{}: no point {index} (the sweep has {n} points, 0..{}); run `sweep expand` first",
            dir.display(),
            n.saturating_sub(1)
        )));
    }
    let point: Point = read_toml(&path)?;
    let fcn = dir.join(&point.fcn);
    crate::fcn::ensure_trained(&point.fcn_train, None, &fcn, device, progress)?;
    let eval = EvaluateOptions {
        fcn: Some(fcn),
        fcn_epochs: point.fcn_train.epochs,
        progress,
        scores: ScoreConfig {
            cas_epochs: point.cas_epochs,
            cas_batch_size: point.cas_batch_size,
            seed: point.seed,
            max_fid_samples: point.fid_samples,
            cas_samples: point.cas_samples,
            guidance: point.guidance,
            work_dir: None,
        },
    };
    run_model(&folder.join("run"), &point.stage1, &point.stage2, &eval, progress, device)
}

/// What `sweep collect` found.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Points in the sweep.
    pub total: usize,
    /// Finished points.
    pub finished: usize,
    /// The markdown tables.
    pub markdown: String,
}

/// The metrics of the tables: name, key, whether lower is better.
const METRICS: [(&str, &str, bool); 7] = [
    ("reconstruction error (test MSE time + time-freq)", "recon", true),
    ("KNN probe accuracy", "knn", false),
    ("SVM probe accuracy", "svm", false),
    ("FID", "fid", true),
    ("IS", "is", false),
    ("CAS (final test accuracy)", "cas", false),
    ("prior test loss (nats / masked token)", "prior", true),
];

fn metric(r: &ModelResult, key: &str) -> f64 {
    match key {
        "recon" => r.stage1.recon_mse_time + r.stage1.recon_mse_timefreq,
        "knn" => r.stage1.probe_knn_acc,
        "svm" => r.stage1.probe_svm_acc,
        "fid" => r.eval.fid,
        "is" => r.eval.is_mean,
        "cas" => r.eval.cas_final_acc,
        _ => r.stage2.loss,
    }
}

/// `sweep collect`: tables over seeds (mean and best), `points.csv` and `tables.csv`.
pub fn collect(dir: &Path) -> Result<Collected, RunError> {
    let points = points(&dir.join("sweep.toml"))?;
    let (done, csv) = finished_points(dir, &points)?;
    write_atomic(&dir.join("points.csv"), csv.as_bytes())?;
    let (markdown, tables) = seed_tables(&points, &done);
    write_atomic(&dir.join("tables.csv"), tables.as_bytes())?;
    Ok(Collected { total: points.len(), finished: done.len(), markdown })
}

/// A finished point and its results.
type Finished<'a> = (&'a Point, ModelResult);

/// The finished points of a sweep with their results, and the text of `points.csv`.
fn finished_points<'a>(
    dir: &Path,
    points: &'a [Point],
) -> Result<(Vec<Finished<'a>>, String), RunError> {
    let mut done: Vec<Finished<'a>> = Vec::new();
    let mut csv = String::from(
        "index,dataset,config,seed,epochs_stage1,epochs_stage2,recon_mse_time,recon_mse_timefreq,probe_knn_acc,probe_svm_acc,codebook_perplexity,stage2_loss,fid,is_mean,is_std,cas,cas_final_acc\n",
    );
    for p in points {
        let run = point_dir(dir, p.index).join("run");
        if !(run.join("stage1.json").exists()
            && run.join("stage2.json").exists()
            && run.join("eval.json").exists())
        {
            continue;
        }
        let r = ModelResult {
            stage1: read_json(&run.join("stage1.json"))?,
            stage2: read_json(&run.join("stage2.json"))?,
            eval: read_json(&run.join("eval.json"))?,
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            p.index,
            p.dataset,
            p.config,
            p.seed,
            r.stage1.epochs,
            r.stage2.epochs,
            r.stage1.recon_mse_time,
            r.stage1.recon_mse_timefreq,
            r.stage1.probe_knn_acc,
            r.stage1.probe_svm_acc,
            r.stage1.codebook_perplexity,
            r.stage2.loss,
            r.eval.fid,
            r.eval.is_mean,
            r.eval.is_std,
            r.eval.cas,
            r.eval.cas_final_acc
        );
        done.push((p, r));
    }
    Ok((done, csv))
}

/// The Markdown tables (one per metric: datasets × configurations, mean / best over seeds) and the
/// text of `tables.csv`.
fn seed_tables(points: &[Point], done: &[Finished<'_>]) -> (String, String) {
    let mut datasets: Vec<&str> = Vec::new();
    let mut configs: Vec<&str> = Vec::new();
    for p in points {
        if !datasets.contains(&p.dataset.as_str()) {
            datasets.push(&p.dataset);
        }
        if !configs.contains(&p.config.as_str()) {
            configs.push(&p.config);
        }
    }
    let mut md = format!(
        "{} of {} points finished. Cells: mean over seeds / best seed (n seeds).\n",
        done.len(),
        points.len()
    );
    let mut tables = String::from("metric,dataset,config,n_seeds,mean,best\n");
    for (title, key, lower) in METRICS {
        let _ = write!(
            md,
            "\n### {title} ({})\n\n| dataset | {} |\n|---|{}\n",
            if lower { "lower is better" } else { "higher is better" },
            configs.join(" | "),
            "---|".repeat(configs.len())
        );
        for d in &datasets {
            let mut row = format!("| {d} |");
            for c in &configs {
                let values: Vec<f64> = done
                    .iter()
                    .filter(|(p, _)| p.dataset == *d && p.config == *c)
                    .map(|(_, r)| metric(r, key))
                    .collect();
                if values.is_empty() {
                    row.push_str(" — |");
                    continue;
                }
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let best = if lower {
                    values.iter().copied().fold(f64::INFINITY, f64::min)
                } else {
                    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                };
                let _ = write!(row, " {mean:.3} / {best:.3} ({}) |", values.len());
                let _ = writeln!(tables, "{key},{d},{c},{},{mean},{best}", values.len());
            }
            md.push_str(&row);
            md.push('\n');
        }
    }
    (md, tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_parse() {
        assert_eq!(parse_config("baseline").unwrap().0, SslChoice::None);
        assert_eq!(parse_config("vibcreg/gauss").unwrap(), (SslChoice::Vibcreg, Recipe::Gauss));
        assert!(parse_config("barlow/slice").unwrap_err().contains("unknown SSL"));
        assert!(parse_config("vibcreg").unwrap_err().contains("SSL/AUG"));
    }

    #[test]
    fn the_thesis_grid_has_364_points_in_order() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/sweeps/thesis.toml");
        let points = points(&path).unwrap();
        assert_eq!(
            points.len(),
            13 * 7 * 4,
            "13 datasets × 7 configs × 4 seeds (docs/reference.md §11)"
        );
        let p = &points[5];
        assert_eq!(
            (p.dataset.as_str(), p.config.as_str(), p.seed),
            ("FordA", "barlow-twins/warp", 2)
        );
        assert_eq!(
            (p.stage1.ssl, p.stage1.aug, p.stage1.epochs, p.stage1.seed),
            (SslChoice::BarlowTwins, Recipe::Warp, 1000, 2)
        );
        assert_eq!(p.stage2.epochs, 1000);
        assert!(points.iter().all(|q| q.index < points.len()));
    }

    #[test]
    fn the_campaign_blocks_hold_the_thesis_settings() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/sweeps/thesis-cpu");
        for (file, n, faithful) in [
            ("1-sony.toml", 28, true),
            ("2-ecg5000.toml", 8, true),
            ("3-twopatterns.toml", 8, true),
            ("4-sony-default.toml", 8, false),
            ("5-wafer.toml", 8, true),
        ] {
            let points = points(&dir.join(file)).unwrap();
            assert_eq!(points.len(), n, "{file}");
            for p in &points {
                let epochs = (p.stage1.epochs, p.stage2.epochs, p.cas_epochs, p.fcn_train.epochs);
                assert_eq!(epochs, (1000, 1000, 1000, 1000), "{file}");
                assert_eq!(
                    (p.stage1.batch_size, p.stage2.batch_size, p.cas_batch_size),
                    (128, 256, 256)
                );
                assert_eq!(p.stage1.projector_dim, 4096, "{file}");
                assert_eq!((p.guidance, p.cas_samples, p.fid_samples), (1.0, 0, 0), "{file}");
                assert_eq!(
                    (p.stage1.faithful_probes, p.stage1.faithful_aug_zeros),
                    (faithful, faithful)
                );
                assert_eq!(
                    (p.stage2.inverted_masking, p.stage2.loss_on_all_positions),
                    (faithful, faithful)
                );
            }
        }
    }

    #[test]
    fn bad_specs_are_named_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("s.toml");
        for (text, want) in [
            ("[stage1]\nepochs = 1\n", "no [grid]"),
            ("[grid]\ndatasets = []\nconfigs = [\"baseline\"]\nseeds = [1]\n", "at least one"),
            ("[grid]\ndatasets = [\"A\"]\nconfigs = [\"bt/x\"]\nseeds = [1]\n", "unknown SSL"),
            (
                "[grid]\ndatasets = [\"A\"]\nconfigs = [\"baseline\"]\nseeds = [1]\n[stage9]\n",
                "unknown table [stage9]",
            ),
            (
                "[grid]\ndatasets = [\"A\"]\nconfigs = [\"baseline\"]\nseeds = [1]\n[stage1]\nepochz = 3\n",
                "epochz",
            ),
            (
                "[grid]\ndatasets = [\"A\"]\nconfigs = [\"baseline\"]\nseeds = [1]\n[run]\nguidance = nan\n",
                "run.guidance must be a finite number",
            ),
        ] {
            std::fs::write(&spec, text).unwrap();
            let e = points(&spec).unwrap_err();
            assert!(e.is_input_error() && e.to_string().contains(want), "{text}: {e}");
        }
    }
}
