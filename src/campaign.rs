//! `sweep collect` over a folder of sweeps (the thesis campaign, `results/thesis-cpu/`): every
//! block's finished points, as mean ± sd over seeds next to the thesis' own per-seed results, and
//! for each of the thesis' claims (NC-VQVAE vs the baseline, per dataset, configuration and
//! metric) a verdict from Welch's t-tests over seeds.
//!
//! The thesis' numbers are `results/thesis/per-seed.csv` (carried from the thesis repository's
//! `results/<Dataset>/{stage1,stage2,cas}/*_summaries.csv` by `scripts/thesis_results.py`), built
//! into the binary.
//!
//! A claim is the sign of the thesis' difference `Δ = mean(NC-VQVAE) − mean(baseline)` on one
//! metric. Its verdict, at α = 0.05 with one-sided Welch tests:
//! - **reproduced**: our Δ differs from 0 in the thesis' direction;
//! - **not reproduced**: our Δ is smaller (in the thesis' direction) than the thesis' Δ, tested on
//!   the difference of the two differences (four groups of seeds);
//! - **within noise**: neither (our seeds cannot tell).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::RunError;
use crate::pipeline::ModelResult;
use train::run_dir::read_json;

/// The thesis' per-seed results (dataset, config, metric, run, value, source).
const THESIS_PER_SEED: &str = include_str!("../results/thesis/per-seed.csv");

/// Metrics of the tables: key, title, whether higher is better, whether a claim is judged on it.
const METRICS: [(&str, &str, bool, bool); 8] = [
    (
        "recon",
        "reconstruction error (lower is better; ours: whole test split, thesis: its last batch, quirk Q1)",
        false,
        true,
    ),
    ("knn", "KNN probe accuracy", true, true),
    ("svm", "SVM probe accuracy", true, true),
    ("fid", "FID (lower is better; FCNs differ: compare differences)", false, true),
    ("is", "IS (FCNs differ: compare differences)", true, true),
    ("cas", "CAS (the reference's running accuracy)", true, true),
    ("stage1_seconds", "stage-1 wall seconds (ours: 2 CPU cores; thesis: its GPU)", false, false),
    ("total_seconds", "stage 1 + stage 2 + evaluation wall seconds (ours)", false, false),
];

/// One finished point of a campaign block.
#[derive(Debug, Clone)]
struct Finished {
    dataset: String,
    config: String,
    protocol: &'static str,
    values: BTreeMap<&'static str, f64>,
}

fn values(r: &ModelResult) -> BTreeMap<&'static str, f64> {
    BTreeMap::from([
        ("recon", r.stage1.recon_mse_time + r.stage1.recon_mse_timefreq),
        ("knn", r.stage1.probe_knn_acc),
        ("svm", r.stage1.probe_svm_acc),
        ("fid", r.eval.fid),
        ("is", r.eval.is_mean),
        ("cas", r.eval.cas),
        ("stage1_seconds", r.stage1.wall_seconds),
        ("total_seconds", r.stage1.wall_seconds + r.stage2.wall_seconds + r.eval.wall_seconds),
    ])
}

/// The sweep folders directly inside `dir`, in name order.
pub fn blocks(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("sweep.toml").is_file())
        .collect();
    out.sort();
    out
}

fn finished_points(dir: &Path) -> Result<(usize, Vec<Finished>), RunError> {
    let mut total = 0;
    let mut out = Vec::new();
    for block in blocks(dir) {
        let points = crate::sweep::points(&block.join("sweep.toml"))?;
        total += points.len();
        for p in points {
            let run = crate::sweep::point_dir(&block, p.index).join("run");
            if !["stage1.json", "stage2.json", "eval.json"].iter().all(|f| run.join(f).exists()) {
                continue;
            }
            let r = ModelResult {
                stage1: read_json(&run.join("stage1.json"))?,
                stage2: read_json(&run.join("stage2.json"))?,
                eval: read_json(&run.join("eval.json"))?,
            };
            let protocol = if p.stage1.faithful_probes { "reference" } else { "default" };
            out.push(Finished {
                dataset: p.dataset,
                config: p.config,
                protocol,
                values: values(&r),
            });
        }
    }
    Ok((total, out))
}

/// `(dataset, config, metric) → values` of the thesis' runs.
fn thesis() -> BTreeMap<(String, String, String), Vec<f64>> {
    let mut out: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for line in THESIS_PER_SEED.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        if let [dataset, config, metric, _, value, ..] = cells[..]
            && let Ok(v) = value.parse::<f64>()
        {
            out.entry((dataset.into(), config.into(), metric.into())).or_default().push(v);
        }
    }
    out
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = C[1..].iter().enumerate().fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularised incomplete beta function I_x(a, b) (continued fraction, modified Lentz).
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp() / a;
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = 1.0 / if d.abs() < tiny { tiny } else { d };
    let mut f = d;
    for m in 1..300 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < tiny { tiny } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < tiny { tiny } else { c };
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f
}

/// P(T > t) for Student's t with `df` degrees of freedom.
pub fn t_upper_tail(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    if t >= 0.0 { tail } else { 1.0 - tail }
}

/// One-sided Welch test that `Σ sign_i · mean_i > shift` over groups `(sign, values)`: the
/// p-value (Welch–Satterthwaite degrees of freedom); `None` when a group has fewer than 2 values
/// or every group's spread is 0.
pub fn welch_p(groups: &[(f64, &[f64])], shift: f64) -> Option<f64> {
    let mut estimate = 0.0;
    let (mut var, mut df_den) = (0.0, 0.0);
    for (sign, values) in groups {
        if values.len() < 2 {
            return None;
        }
        let (mean, sd) = mean_sd(values);
        let n = values.len() as f64;
        estimate += sign * mean;
        let v = sd * sd / n;
        var += v;
        df_den += v * v / (n - 1.0);
    }
    if var <= 0.0 {
        return None;
    }
    let t = (estimate - shift) / var.sqrt();
    let df = var * var / df_den;
    Some(t_upper_tail(t, df))
}

/// The verdict on the thesis' claim that NC-VQVAE's metric moves from the baseline's by the
/// thesis' Δ (its sign is the claim; `higher` says which way is better only for wording).
pub fn verdict(
    ours_base: &[f64],
    ours_ssl: &[f64],
    thesis_base: &[f64],
    thesis_ssl: &[f64],
) -> &'static str {
    let (tb, ts) = (mean_sd(thesis_base).0, mean_sd(thesis_ssl).0);
    let dir = if ts >= tb { 1.0 } else { -1.0 };
    match welch_p(&[(dir, ours_ssl), (-dir, ours_base)], 0.0) {
        None => return "too few seeds",
        Some(p) if p < 0.05 => return "reproduced",
        Some(_) => {}
    }
    // Is our (directed) Δ smaller than the thesis' one?
    let groups = [(-dir, ours_ssl), (dir, ours_base), (dir, thesis_ssl), (-dir, thesis_base)];
    match welch_p(&groups, 0.0) {
        Some(p) if p < 0.05 => "not reproduced",
        _ => "within noise",
    }
}

fn cell(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "—".into();
    }
    let (mean, sd) = mean_sd(values);
    format!("{mean:.digits$} ± {sd:.digits$} ({})", values.len())
}

fn digits(metric: &str) -> usize {
    match metric {
        "stage1_seconds" | "total_seconds" => 0,
        "fid" | "is" => 2,
        _ => 3,
    }
}

/// What [`collect`] found.
#[derive(Debug, Clone)]
pub struct CampaignTables {
    /// Points over every block.
    pub total: usize,
    /// Finished ones.
    pub finished: usize,
    /// The markdown.
    pub markdown: String,
}

/// The campaign's tables (see the module docs).
pub fn collect(dir: &Path) -> Result<CampaignTables, RunError> {
    let (total, done) = finished_points(dir)?;
    let thesis = thesis();
    let mut groups: BTreeMap<(&str, String, String), BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for f in &done {
        let g = groups.entry((f.protocol, f.dataset.clone(), f.config.clone())).or_default();
        for (k, v) in &f.values {
            g.entry(k).or_default().push(*v);
        }
    }
    let mut md = format!(
        "{} of {} campaign points finished (1000 + 1000 epochs). Cells: mean ± sd (seeds); thesis: its per-seed result files (4 runs).\n",
        done.len(),
        total
    );
    let theirs = |dataset: &str, config: &str, metric: &str| {
        let key = if metric == "stage1_seconds" { "stage1_seconds" } else { metric };
        thesis
            .get(&(dataset.to_string(), config.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    for (metric, title, _, _) in METRICS {
        let _ = write!(
            md,
            "\n### {title}\n\n| dataset | config | protocol | ours | thesis |\n|---|---|---|---|---|\n"
        );
        for ((protocol, dataset, config), values) in &groups {
            let ours = values.get(metric).cloned().unwrap_or_default();
            let t = if metric == "total_seconds" {
                Vec::new()
            } else {
                theirs(dataset, config, metric)
            };
            let _ = writeln!(
                md,
                "| {dataset} | {config} | {protocol} | {} | {} |",
                cell(&ours, digits(metric)),
                cell(&t, digits(metric))
            );
        }
    }
    let _ = write!(
        md,
        "\n### The thesis' claims: NC-VQVAE − baseline, per dataset and configuration (reference protocol)\n\n\
         Verdicts from one-sided Welch t-tests over seeds at α = 0.05: *reproduced* (our Δ ≠ 0 in the thesis' direction), \
         *not reproduced* (our Δ smaller than the thesis' Δ), *within noise* (neither).\n\n\
         | dataset | config | metric | thesis Δ | ours Δ | verdict |\n|---|---|---|---|---|---|\n"
    );
    for ((protocol, dataset, config), values) in &groups {
        if *protocol != "reference" || config == "baseline" {
            continue;
        }
        let Some(base) = groups.get(&(*protocol, dataset.clone(), "baseline".to_string())) else {
            continue;
        };
        for (metric, _, _, judged) in METRICS {
            if !judged {
                continue;
            }
            let (ob, os) = (
                base.get(metric).cloned().unwrap_or_default(),
                values.get(metric).cloned().unwrap_or_default(),
            );
            let (tb, ts) = (theirs(dataset, "baseline", metric), theirs(dataset, config, metric));
            if ob.is_empty() || os.is_empty() || tb.is_empty() || ts.is_empty() {
                continue;
            }
            let d = digits(metric);
            let delta = |s: &[f64], b: &[f64]| mean_sd(s).0 - mean_sd(b).0;
            let _ = writeln!(
                md,
                "| {dataset} | {config} | {metric} | {:+.d$} | {:+.d$} | {} |",
                delta(&ts, &tb),
                delta(&os, &ob),
                verdict(&ob, &os, &tb, &ts)
            );
        }
    }
    Ok(CampaignTables { total, finished: done.len(), markdown: md })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_t_tails_match_tabulated_values() {
        // Two-sided 95 % critical values: t(0.975; df).
        for (t, df) in [(12.706, 1.0), (2.776, 4.0), (2.228, 10.0), (1.960, 1e6)] {
            let p = t_upper_tail(t, df);
            assert!((p - 0.025).abs() < 2e-4, "t = {t}, df = {df}: {p}");
        }
        assert!((t_upper_tail(0.0, 3.0) - 0.5).abs() < 1e-12);
        assert!((t_upper_tail(-2.776, 4.0) - 0.975).abs() < 2e-4);
        // One-sided 99 %: t(0.99; 6) = 3.143.
        assert!((t_upper_tail(3.143, 6.0) - 0.01).abs() < 1e-4);
    }

    #[test]
    fn welch_matches_a_hand_computed_case() {
        // a = [1, 2, 3, 4] (mean 2.5, var 5/3), b = [2, 4, 6, 8] (mean 5, var 20/3):
        // se² = 5/12 + 20/12 = 25/12, t = 2.5 / √(25/12) = 1.7321, df = (25/12)² /
        // ((5/12)²/3 + (20/12)²/3) = 4.4118.
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]);
        let p = welch_p(&[(1.0, &b), (-1.0, &a)], 0.0).unwrap();
        let want = t_upper_tail(1.732_050_8, 4.4118);
        assert!((p - want).abs() < 1e-4, "{p} vs {want}");
        assert!(p > 0.05 && p < 0.1, "{p}");
        assert_eq!(welch_p(&[(1.0, &[1.0]), (-1.0, &a)], 0.0), None, "one seed");
    }

    #[test]
    fn verdicts_follow_the_tests() {
        let thesis_base = [0.50, 0.52, 0.49, 0.51];
        let thesis_ssl = [0.80, 0.82, 0.79, 0.81];
        // A clear gain like the thesis'.
        assert_eq!(
            verdict(
                &[0.55, 0.56, 0.54, 0.55],
                &[0.85, 0.83, 0.86, 0.84],
                &thesis_base,
                &thesis_ssl
            ),
            "reproduced"
        );
        // No gain at all, tight seeds: smaller than the thesis' 0.30.
        assert_eq!(
            verdict(
                &[0.55, 0.56, 0.54, 0.55],
                &[0.55, 0.54, 0.56, 0.55],
                &thesis_base,
                &thesis_ssl
            ),
            "not reproduced"
        );
        // Seeds all over the place: cannot tell.
        assert_eq!(
            verdict(&[0.2, 0.9, 0.5, 0.6], &[0.3, 0.95, 0.4, 0.7], &thesis_base, &thesis_ssl),
            "within noise"
        );
        // A claimed drop (lower value for NC-VQVAE) works the same way round.
        assert_eq!(
            verdict(
                &[0.85, 0.83, 0.86, 0.84],
                &[0.55, 0.56, 0.54, 0.55],
                &thesis_ssl,
                &thesis_base
            ),
            "reproduced"
        );
        assert_eq!(verdict(&[0.5], &[0.6, 0.7], &thesis_base, &thesis_ssl), "too few seeds");
    }

    #[test]
    fn the_thesis_file_holds_every_cell() {
        let t = thesis();
        let sony =
            &t[&("SonyAIBORobotSurface1".to_string(), "baseline".to_string(), "svm".to_string())];
        assert_eq!(sony.len(), 4);
        // docs/reference.md §12: Sony baseline SVM mean 0.679, ECG5000 BT-slice KNN 0.878.
        assert!((mean_sd(sony).0 - 0.679).abs() < 5e-4);
        let ecg = &t[&("ECG5000".to_string(), "barlow-twins/slice".to_string(), "knn".to_string())];
        assert!((mean_sd(ecg).0 - 0.878).abs() < 5e-4);
        for metric in ["recon", "knn", "svm", "fid", "is", "cas", "stage1_seconds"] {
            assert!(
                t.contains_key(&(
                    "TwoPatterns".to_string(),
                    "barlow-twins/warp".to_string(),
                    metric.to_string()
                )),
                "{metric}"
            );
        }
    }
}
