//! The PNG plots of the report (see the module docs of [`super`]).

use std::path::Path;

use burn::tensor::{Device, Int};
use maskgit::SamplerConfig;
use train::to_host;
use ucr_data::{UcrDataset, epoch_batches};

use super::plot_err;
use crate::RunError;
use crate::pipeline::ModelResult;
use crate::plot::{
    BLUE, BarPanel, Curve, CurvePanel, GREY, ORANGE, TokenPanel, bar_row, curve_grid,
};
use crate::stage2::Generator;

/// `curves.png`: the training curves of both runs (`base_dir`, `nc_dir`).
pub(super) fn curves(
    plots: &Path,
    dataset: &str,
    nc_name: &str,
    base_dir: &Path,
    nc_dir: &Path,
) -> Result<(), RunError> {
    let pair = |key_a: &str, key_b: Option<&str>, file: &str| {
        let curve = |dir: &Path| match key_b {
            Some(b) => summed(&dir.join(file), key_a, b),
            None => metric_curve(&dir.join(file), key_a),
        };
        vec![
            Curve { name: "baseline".into(), color: BLUE, points: curve(base_dir) },
            Curve { name: nc_name.into(), color: ORANGE, points: curve(nc_dir) },
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
                name: nc_name.into(),
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

    Ok(())
}

/// `token_usage.png`: the share of test tokens per code, by rank, of both tokenizers.
pub(super) fn usage(
    plots: &Path,
    dataset: &str,
    nc_name: &str,
    (base, nc): (&ModelResult, &ModelResult),
    (base_run, nc_run): (&Generator, &Generator),
    device: &Device,
) -> Result<(), RunError> {
    let mut usage = Vec::new();
    for run in [base_run, nc_run] {
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
                (nc_name.into(), ORANGE, usage[1].clone()),
            ],
        }],
    )
    .map_err(plot_err)?;

    Ok(())
}

/// `scores.png`: probe accuracies, CAS, FID and IS of both models.
pub(super) fn scores(
    plots: &Path,
    dataset: &str,
    nc_name: &str,
    base: &ModelResult,
    nc: &ModelResult,
) -> Result<(), RunError> {
    let groups = |f: &dyn Fn(&ModelResult) -> Vec<f64>| {
        vec![("baseline".to_string(), BLUE, f(base)), (nc_name.into(), ORANGE, f(nc))]
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

    Ok(())
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
        for t in to_host::<i64, 2, Int>(tokens)? {
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
pub(super) fn reconstruction_panels(
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
        let mut values = to_host::<f32, 3, _>(run.tokenizer().forward(batch.x.clone()).x_hat)?;
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
pub(super) fn token_panels(
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
        let tokens = to_host::<i64, 2, Int>(run.tokenizer().tokens(x.clone()))?;
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
pub(super) fn sample_plot(
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
    generator.plot_comparison(path, title, &groups, &labels, &series, per_class)
}
