//! The report of `nc-vqvae run`: `report.md` and the PNG plots in `plots/` that compare the
//! baseline VQ-VAE with NC-VQVAE on one dataset.
//!
//! Plots (all with labelled axes and legends):
//! - `curves.png`: stage-1 training losses per epoch (reconstruction, and the SSL loss), the probe
//!   accuracies where they were computed during training, and the stage-2 prior's loss;
//! - `reconstructions.png`: test series (one per class) with both models' reconstructions;
//! - `samples_baseline.png`, `samples_nc_vqvae.png`: real test vs generated series per class;
//! - `token_grids.png`: test series (one per class) above their token grids under both tokenizers
//!   (time on x, frequency bands on y, one colour per code);
//! - `token_usage.png`: how often each codebook entry is used on the test set, by rank;
//! - `scores.png`: probe accuracies, CAS, FID and IS of both models side by side.

use std::fmt::Write as _;
use std::path::Path;

use burn::tensor::{Device, Int};
use maskgit::SamplerConfig;
use ucr_data::{UcrDataset, epoch_batches};

use crate::pipeline::{JobConfig, JobSummary, ModelResult};
use crate::plot::{
    BLUE, BarPanel, Curve, CurvePanel, GREY, ORANGE, TokenPanel, bar_row, curve_grid, panel_grid,
    token_grids,
};
use crate::run_dir::write_atomic;
use crate::stage1::{RunError, SslChoice};
use crate::stage2::Generator;
use train::persist::read;

fn plot_err(e: crate::plot::PlotError) -> RunError {
    RunError::Plot(e)
}

/// One numeric column of a `metrics.jsonl` file as `(epoch, value)` points (missing file or key:
/// no points).
pub fn metric_curve(path: &Path, key: &str) -> Vec<(f64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v.get("epoch")?.as_f64()?, v.get(key)?.as_f64()?)))
        .collect()
}

/// Sum of two metric columns, matched by epoch.
fn summed(path: &Path, a: &str, b: &str) -> Vec<(f64, f64)> {
    let second = metric_curve(path, b);
    metric_curve(path, a).into_iter().zip(second).map(|((e, x), (_, y))| (e, x + y)).collect()
}

/// Codebook usage counts of a run's tokenizer on the test split.
fn token_usage(run: &Generator, device: &Device) -> Result<Vec<usize>, RunError> {
    let (data, vq) = (&run.data, run.tokenizer());
    let mut usage = vec![0usize; vq.quantizer().codebook_size()];
    for idx in epoch_batches(data.test.n(), 256, false, 0, 0)? {
        let tokens = vq.tokens(data.test.batch(&idx, device).x);
        for t in read::<i64, 2, Int>(tokens)? {
            usage[t as usize] += 1;
        }
    }
    Ok(usage)
}

/// The first test series of each class, at most `max`.
fn first_of_each_class(data: &UcrDataset, max: usize) -> Vec<usize> {
    (0..data.num_classes())
        .filter_map(|c| data.test.labels.iter().position(|&l| l == c))
        .take(max)
        .collect()
}

/// Test series `i` in the data's original scale.
fn original_test_series(data: &UcrDataset, i: usize) -> Vec<f32> {
    let mut series = data.test.series(i).to_vec();
    data.normalizer.invert(&mut series);
    series
}

/// Test series (the first of each class, at most `max`) and both models' reconstructions, in the
/// data's original scale.
fn reconstruction_panels(
    base: &Generator,
    nc: &Generator,
    max: usize,
    device: &Device,
) -> Result<Vec<CurvePanel>, RunError> {
    let data = &base.data;
    let picks = first_of_each_class(data, max);
    let batch = data.test.batch(&picks, device);
    let length = data.length();
    let mut rows = Vec::new();
    for run in [base, nc] {
        let mut values = read::<f32, 3, _>(run.tokenizer().forward(batch.x.clone()).x_hat)?;
        data.normalizer.invert(&mut values);
        rows.push(values);
    }
    let points =
        |v: &[f32]| v.iter().enumerate().map(|(i, &y)| (i as f64, y as f64)).collect::<Vec<_>>();
    Ok(picks
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            let real = original_test_series(data, i);
            CurvePanel {
                title: format!("test series {i} (class {})", data.classes[data.test.labels[i]]),
                x_label: "time step".into(),
                y_label: "value".into(),
                curves: vec![
                    Curve { name: "real".into(), color: GREY, points: points(&real) },
                    Curve {
                        name: "baseline".into(),
                        color: BLUE,
                        points: points(&rows[0][j * length..(j + 1) * length]),
                    },
                    Curve {
                        name: "NC-VQVAE".into(),
                        color: ORANGE,
                        points: points(&rows[1][j * length..(j + 1) * length]),
                    },
                ],
            }
        })
        .collect())
}

/// Test series (the first of each class, at most `max`) in the data's original scale above their
/// token grids, baseline and NC-VQVAE side by side.
fn token_panels(
    base: &Generator,
    nc: &Generator,
    nc_name: &str,
    max: usize,
    device: &Device,
) -> Result<Vec<TokenPanel>, RunError> {
    let data = &base.data;
    let picks = first_of_each_class(data, max);
    let x = data.test.batch(&picks, device).x;
    let mut grids = Vec::new();
    for run in [base, nc] {
        let tokens = read::<i64, 2, Int>(run.tokenizer().tokens(x.clone()))?;
        grids.push(tokens.into_iter().map(|t| t as usize).collect::<Vec<_>>());
    }
    let n = grids[0].len() / picks.len().max(1);
    let mut panels = Vec::new();
    for (j, &i) in picks.iter().enumerate() {
        let series = original_test_series(data, i);
        for (grid, name) in grids.iter().zip(["baseline", nc_name]) {
            panels.push(TokenPanel {
                title: format!(
                    "test series {i} (class {}), {name}",
                    data.classes[data.test.labels[i]]
                ),
                series: series.clone(),
                tokens: grid[j * n..(j + 1) * n].to_vec(),
                rows: 5,
            });
        }
    }
    Ok(panels)
}

/// Writes the per-class sample plot of one model.
fn sample_plot(
    generator: &Generator,
    path: &Path,
    title: &str,
    per_class: usize,
    guidance: f64,
    seed: u64,
    device: &Device,
) -> Result<(), RunError> {
    let groups: Vec<(i64, Option<usize>)> =
        generator.data.classes.iter().enumerate().map(|(i, &l)| (l, Some(i))).collect();
    let labels: Vec<i64> =
        groups.iter().flat_map(|&(l, _)| std::iter::repeat_n(l, per_class)).collect();
    let classes: Vec<usize> =
        groups.iter().flat_map(|&(_, c)| std::iter::repeat_n(c.unwrap_or(0), per_class)).collect();
    let series = generator.generate(
        labels.len(),
        Some(&classes),
        &SamplerConfig::new().with_guidance(guidance),
        seed,
        true,
        device,
    )?;
    let panels = generator.comparison_panels(&groups, &labels, &series, per_class);
    panel_grid(path, title, 2, &panels).map_err(plot_err)
}

fn model_name(config: &JobConfig) -> String {
    let ssl = match config.run.ssl {
        SslChoice::BarlowTwins => "Barlow Twins",
        SslChoice::Vibcreg => "VIbCReg",
        SslChoice::None => "none",
    };
    format!("NC-VQVAE ({ssl} + {})", config.run.aug)
}

/// `nc-vqvae run`: runs (or finishes) the job of `config` in `out` ([`crate::pipeline::run_job`]),
/// then draws the plots and writes `report.md`.
pub fn job(
    config: &JobConfig,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<(JobSummary, ModelResult, ModelResult), RunError> {
    let (summary, base, nc) = crate::pipeline::run_job(config, out, device, progress)?;
    crate::pipeline::step(progress, "report and plots");
    write(out, config, &base, &nc, device)?;
    Ok((summary, base, nc))
}

/// Draws the plots and writes `report.md` for a finished job in `out`.
pub fn write(
    out: &Path,
    config: &JobConfig,
    base: &ModelResult,
    nc: &ModelResult,
    device: &Device,
) -> Result<(), RunError> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(crate::run_dir::io(&plots))?;
    let (base_dir, nc_dir) = (out.join("baseline"), out.join("nc_vqvae"));
    let nc_name = model_name(config);
    let dataset = &base.stage1.dataset;

    // Curves.
    let pair = |key_a: &str, key_b: Option<&str>, file: &str| {
        let curve = |dir: &Path| match key_b {
            Some(b) => summed(&dir.join(file), key_a, b),
            None => metric_curve(&dir.join(file), key_a),
        };
        vec![
            Curve { name: "baseline".into(), color: BLUE, points: curve(&base_dir) },
            Curve { name: nc_name.clone(), color: ORANGE, points: curve(&nc_dir) },
        ]
    };
    let mut panels = vec![
        CurvePanel {
            title: "stage 1: training reconstruction loss".into(),
            x_label: "epoch".into(),
            y_label: "MSE time + time-freq".into(),
            curves: pair("recon_time", Some("recon_timefreq"), "metrics.jsonl"),
        },
        CurvePanel {
            title: "stage 1: SSL loss (NC-VQVAE)".into(),
            x_label: "epoch".into(),
            y_label: "SSL loss".into(),
            curves: vec![Curve {
                name: nc_name.clone(),
                color: ORANGE,
                points: metric_curve(&nc_dir.join("metrics.jsonl"), "ssl"),
            }],
        },
        CurvePanel {
            title: "stage 2: prior training loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy (nats / token)".into(),
            curves: pair("loss", None, "stage2/metrics.jsonl"),
        },
    ];
    let probes = pair("probe_svm_acc", None, "metrics.jsonl");
    if probes.iter().any(|c| c.points.len() > 1) {
        panels.push(CurvePanel {
            title: "stage 1: SVM probe during training".into(),
            x_label: "epoch".into(),
            y_label: "test accuracy".into(),
            curves: probes,
        });
    }
    curve_grid(&plots.join("curves.png"), &format!("{dataset}: training curves"), 2, &panels)
        .map_err(plot_err)?;

    // Each run's tokenizer, prior and dataset, loaded once for the remaining plots.
    let (base_run, nc_run) =
        (Generator::load(&base_dir, device)?, Generator::load(&nc_dir, device)?);

    curve_grid(
        &plots.join("reconstructions.png"),
        &format!("{dataset}: test series and their reconstructions"),
        2,
        &reconstruction_panels(&base_run, &nc_run, 6, device)?,
    )
    .map_err(plot_err)?;

    token_grids(
        &plots.join("token_grids.png"),
        &format!("{dataset}: test series and their tokens (one colour per code)"),
        2,
        &token_panels(&base_run, &nc_run, &nc_name, 4, device)?,
    )
    .map_err(plot_err)?;

    let seed = config.stage2.seed;
    sample_plot(
        &base_run,
        &plots.join("samples_baseline.png"),
        &format!("{dataset}, baseline: real test (blue) vs generated (orange)"),
        config.run.plot_samples,
        config.run.guidance,
        seed,
        device,
    )?;
    sample_plot(
        &nc_run,
        &plots.join("samples_nc_vqvae.png"),
        &format!("{dataset}, {nc_name}: real test (blue) vs generated (orange)"),
        config.run.plot_samples,
        config.run.guidance,
        seed,
        device,
    )?;

    let mut usage = Vec::new();
    for run in [&base_run, &nc_run] {
        let mut u = token_usage(run, device)?;
        let total = u.iter().sum::<usize>().max(1) as f64;
        u.sort_unstable_by(|a, b| b.cmp(a));
        usage.push(u.into_iter().map(|c| c as f64 / total).collect::<Vec<f64>>());
    }
    let ranks = (1..=usage[0].len()).map(|r| r.to_string()).collect();
    bar_row(
        &plots.join("token_usage.png"),
        &format!("{dataset}: codebook usage on the test set"),
        &[BarPanel {
            title: format!(
                "share of tokens by code rank (perplexity: baseline {:.1}, NC-VQVAE {:.1})",
                base.stage1.codebook_perplexity, nc.stage1.codebook_perplexity
            ),
            x_label: "code rank (most used first)".into(),
            y_label: "share of test tokens".into(),
            categories: ranks,
            groups: vec![
                ("baseline".into(), BLUE, usage[0].clone()),
                (nc_name.clone(), ORANGE, usage[1].clone()),
            ],
        }],
    )
    .map_err(plot_err)?;

    let groups = |f: &dyn Fn(&ModelResult) -> Vec<f64>| {
        vec![("baseline".to_string(), BLUE, f(base)), (nc_name.clone(), ORANGE, f(nc))]
    };
    bar_row(
        &plots.join("scores.png"),
        &format!("{dataset}: baseline vs {nc_name}"),
        &[
            BarPanel {
                title: "accuracy (higher is better)".into(),
                x_label: "score".into(),
                y_label: "test accuracy".into(),
                categories: vec!["KNN probe".into(), "SVM probe".into(), "CAS".into()],
                groups: groups(&|r| {
                    vec![r.stage1.probe_knn_acc, r.stage1.probe_svm_acc, r.eval.cas_final_acc]
                }),
            },
            BarPanel {
                title: "FID (lower is better)".into(),
                x_label: "".into(),
                y_label: "FID".into(),
                categories: vec!["FID".into()],
                groups: groups(&|r| vec![r.eval.fid]),
            },
            BarPanel {
                title: "IS (higher is better)".into(),
                x_label: "".into(),
                y_label: "IS".into(),
                categories: vec!["IS".into()],
                groups: groups(&|r| vec![r.eval.is_mean]),
            },
        ],
    )
    .map_err(plot_err)?;

    let text = markdown(config, base, nc, &nc_name);
    write_atomic(&out.join("report.md"), text.as_bytes())?;
    Ok(())
}

/// The text of `report.md`.
fn markdown(config: &JobConfig, base: &ModelResult, nc: &ModelResult, nc_name: &str) -> String {
    let s1 = &config.stage1;
    let mut t = String::new();
    let dataset = &base.stage1.dataset;
    let _ = writeln!(t, "# {dataset}: baseline VQ-VAE vs {nc_name}\n");
    if config.is_quick() {
        let _ = writeln!(
            t,
            "**Quick profile.** Every number below comes from the quick default of `nc-vqvae run` \
             (`configs/quick.toml`): {} + {} epochs (stage 1 + stage 2) instead of the thesis' 1000 + 1000, batches of {}, \
             a {}-wide projector, a prior of {} transformer blocks (thesis: 4), a {}-epoch FCN judge and a {}-epoch CAS classifier on {} synthetic series \
             drawn with classifier-free guidance {} (the thesis' evaluation: 1, no guidance; the sample plots use the same). \
             It shows the direction of the thesis' results in a few minutes on a 2-core CPU; \
             it does not reproduce the thesis' numbers (those are the right-hand columns).\n",
            s1.epochs,
            config.stage2.epochs,
            s1.batch_size,
            s1.projector_dim,
            config.stage2.depth,
            config.fcn.epochs,
            config.run.cas_epochs,
            config.run.cas_samples,
            config.run.guidance,
        );
        if dataset == crate::pipeline::DEFAULT_DATASET {
            let _ = writeln!(
                t,
                "Why SyntheticControl: its six classes are shapes one can name at a glance (1 normal, 2 cyclic, \
                 3 increasing trend, 4 decreasing trend, 5 upward shift, 6 downward shift), so the sample plots can be \
                 checked by eye; it is small (300 + 300 series of length 60), so both tokenizers and both priors get \
                 hundreds of steps within the time budget. On TwoPatterns, the earlier default, the same budget bought 8 + 3 epochs, \
                 after which the prior's samples were noise (CAS at chance); the thesis reports CAS 0.72–0.85 there after 1000 + 1000 epochs. \
                 Longer runs raise CAS here too: samples come out smoother than the real, noisy series until the tokenizer \
                 has learnt to reconstruct the noise.\n"
            );
        }
    }
    let _ = writeln!(
        t,
        "Stage 1: {} epochs, batch {}, AdamW lr {} (cosine), projector width {}; stage 2: {} epochs of the MaskGIT prior \
         ({} for the baseline, {} for NC-VQVAE); FCN for FID / IS: {} epochs (test accuracy {:.3}); CAS classifier: {} epochs in batches of {}. \
         Seed {}. The thesis trains 1000 epochs per stage with a 4096-wide projector (`configs/thesis.toml`); \
         short runs are not the thesis' numbers. The full settings are in `config.toml`.\n",
        s1.epochs,
        s1.batch_size,
        s1.lr,
        s1.projector_dim,
        config.stage2.epochs,
        base.stage2.variant,
        nc.stage2.variant,
        config.fcn.epochs,
        base.eval.fcn_test_acc,
        config.run.cas_epochs,
        config.run.cas_batch_size,
        s1.seed,
    );
    let _ = writeln!(
        t,
        "FID / IS: {} unconditional samples against {} real test series{}; CAS: a classifier trained on {} class-conditional samples{}, tested on the real test split.\n",
        base.eval.n_generated,
        base.eval.n_generated,
        if config.run.fid_samples > 0 {
            " (capped by `run.fid_samples`; fewer samples bias FID upwards, so compare only runs with equal caps)"
        } else {
            ""
        },
        base.eval.n_cas_samples,
        if config.run.guidance != 1.0 {
            format!(" (classifier-free guidance {}, `run.guidance`)", config.run.guidance)
        } else {
            String::new()
        },
    );
    let _ = writeln!(
        t,
        "| | baseline | {nc_name} | thesis baseline (1000 ep.) | thesis NC-VQVAE (1000 ep.) |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|");
    let thesis = crate::thesis::probes(dataset, config.run.ssl, config.run.aug);
    let fmt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3}"));
    /// A row: its name, the value read from a model's results, the thesis' pair.
    type Row = (&'static str, fn(&ModelResult) -> f64, Option<(f64, f64)>);
    let rows: [Row; 10] = [
        (
            "KNN probe accuracy (k = 5) ↑",
            |r| r.stage1.probe_knn_acc,
            thesis.map(|t| (t.base_knn, t.knn)),
        ),
        (
            "linear SVM probe accuracy ↑",
            |r| r.stage1.probe_svm_acc,
            thesis.map(|t| (t.base_svm, t.svm)),
        ),
        ("test reconstruction MSE (time) ↓", |r| r.stage1.recon_mse_time, None),
        ("test reconstruction MSE (time-freq) ↓", |r| r.stage1.recon_mse_timefreq, None),
        ("codebook perplexity", |r| r.stage1.codebook_perplexity, None),
        ("prior test loss (nats / masked token) ↓", |r| r.stage2.loss, None),
        ("FID ↓", |r| r.eval.fid, None),
        ("IS ↑", |r| r.eval.is_mean, None),
        ("CAS, final test accuracy ↑", |r| r.eval.cas_final_acc, None),
        ("CAS, running (as the reference) ↑", |r| r.eval.cas, None),
    ];
    for (name, get, published) in rows {
        let _ = writeln!(
            t,
            "| {name} | {:.3} | {:.3} | {} | {} |",
            get(base),
            get(nc),
            fmt(published.map(|p| p.0)),
            fmt(published.map(|p| p.1))
        );
    }
    let _ = writeln!(
        t,
        "\nWall time: stage 1 {:.0} s + {:.0} s, stage 2 {:.0} s + {:.0} s, evaluation {:.0} s + {:.0} s (baseline + NC-VQVAE).\n",
        base.stage1.wall_seconds,
        nc.stage1.wall_seconds,
        base.stage2.wall_seconds,
        nc.stage2.wall_seconds,
        base.eval.wall_seconds,
        nc.eval.wall_seconds
    );
    let (dk, ds) = (
        nc.stage1.probe_knn_acc - base.stage1.probe_knn_acc,
        nc.stage1.probe_svm_acc - base.stage1.probe_svm_acc,
    );
    let _ = writeln!(
        t,
        "Probe gain of NC-VQVAE over the baseline: KNN {dk:+.3}, SVM {ds:+.3} (one seed; probes on mean-pooled tokens in eval mode, docs/reference.md §10.1 with quirk Q2 sane).\n"
    );
    for (title, file) in [
        ("Scores", "scores.png"),
        ("Training curves", "curves.png"),
        ("Reconstructions", "reconstructions.png"),
        ("Samples: baseline", "samples_baseline.png"),
        ("Samples: NC-VQVAE", "samples_nc_vqvae.png"),
        ("Token grids", "token_grids.png"),
        ("Codebook usage", "token_usage.png"),
    ] {
        let _ = writeln!(t, "## {title}\n\n![{title}](plots/{file})\n");
    }
    t
}
