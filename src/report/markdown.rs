//! The text of `report.md`.

use std::fmt::Write as _;

use crate::pipeline::{JobConfig, ModelResult};

/// The text of `report.md`.
pub(super) fn markdown(
    config: &JobConfig,
    base: &ModelResult,
    nc: &ModelResult,
    nc_name: &str,
) -> String {
    let mut t = String::new();
    let dataset = &base.stage1.dataset;
    let _ = writeln!(t, "# {dataset}: baseline VQ-VAE vs {nc_name}\n");
    quick_profile(&mut t, config, dataset);
    settings(&mut t, config, base, nc);
    scores_table(&mut t, config, base, nc, nc_name);
    footer(&mut t, base, nc);
    t
}

/// What the quick profile is (and why its default dataset), when the job ran it.
fn quick_profile(t: &mut String, config: &JobConfig, dataset: &str) {
    let s1 = &config.stage1;
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
}

/// The settings of both stages and of the evaluation.
fn settings(t: &mut String, config: &JobConfig, base: &ModelResult, nc: &ModelResult) {
    let s1 = &config.stage1;
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
}

/// Both models' scores next to the thesis'.
fn scores_table(
    t: &mut String,
    config: &JobConfig,
    base: &ModelResult,
    nc: &ModelResult,
    nc_name: &str,
) {
    let dataset = &base.stage1.dataset;
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
}

/// Wall times, the probe gain and the plots.
fn footer(t: &mut String, base: &ModelResult, nc: &ModelResult) {
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
}
