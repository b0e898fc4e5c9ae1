//! `nc-vqvae stage2`, `sample` and `evaluate` end to end on the bundled dataset: a prior killed with SIGKILL and
//! resumed ends exactly like an uninterrupted one, samples are valid UCR rows in the data's scale
//! and seeded, and missing prerequisites or bad flags exit with code 2 and one line.

use std::path::Path;

mod common;

use common::{input_error, nc_vqvae, ok};

/// A 2-epoch baseline stage-1 run on SonyAIBORobotSurface1, copied into `dirs`.
fn stage1_runs(root: &Path, dirs: &[&Path]) {
    let first = root.join("stage1");
    ok(nc_vqvae(&[
        "stage1",
        "SonyAIBORobotSurface1",
        "--out",
        first.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "8",
    ])
    .output()
    .unwrap());
    for dir in dirs {
        std::fs::create_dir_all(dir).unwrap();
        for f in ["config.toml", "model.bpk", "stage1.json"] {
            std::fs::copy(first.join(f), dir.join(f)).unwrap();
        }
    }
}

fn summary_without_wall_probe(run: &Path) -> f64 {
    common::summary_without_wall(&run.join("stage1.json"))["probe_svm_acc"].as_f64().unwrap()
}

fn read_tsv(path: &Path) -> Vec<(i64, Vec<f64>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut cells = l.split('\t');
            let label = cells.next().unwrap().parse().unwrap();
            (label, cells.map(|c| c.parse().unwrap()).collect())
        })
        .collect()
}

#[test]
fn killed_and_resumed_prior_equals_the_uninterrupted_one_and_samples_are_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, killed) = (tmp.path().join("full"), tmp.path().join("killed"));
    stage1_runs(tmp.path(), &[&full, &killed]);
    let args = |dir: &Path| {
        vec![
            "stage2",
            "--run",
            dir.to_str().unwrap(),
            "--epochs",
            "150",
            "--checkpoint-every",
            "5",
            "--eval-every",
            "50",
            "--seed",
            "4",
            "--prior",
            "embedding",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let run = |dir: &Path, extra: &[&str]| {
        let mut a = args(dir);
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        nc_vqvae(&a)
    };
    ok(run(&full, &[]).output().unwrap());
    common::kill_after_checkpoint(
        run(&killed, &[]).spawn().unwrap(),
        &killed.join("stage2/checkpoint.json"),
        20,
    );
    assert!(!killed.join("stage2.json").exists(), "killed before the end");
    input_error(run(&killed, &[]).output().unwrap(), "--resume");
    ok(run(&killed, &["--resume"]).output().unwrap());
    assert_eq!(
        common::summary_without_wall(&killed.join("stage2.json")),
        common::summary_without_wall(&full.join("stage2.json"))
    );
    let metrics = common::metrics_without_seconds(&full.join("stage2/metrics.jsonl"));
    assert_eq!(common::metrics_without_seconds(&killed.join("stage2/metrics.jsonl")), metrics);
    assert_eq!(metrics.len(), 150);
    assert!(metrics[49]["test_loss"].as_f64().is_some(), "test loss every 50 epochs");

    // The prior learned something: its test loss is below the uniform-code baseline ln 32. (The
    // embedding variant: the token variant's output is tied to the codebook, whose never-used rows
    // are huge after 2 stage-1 epochs (quirk Q17), and it needs far more than 150 steps here.)
    let summary = common::summary_without_wall(&full.join("stage2.json"));
    let (loss, uniform) =
        (summary["loss"].as_f64().unwrap(), summary["uniform_loss"].as_f64().unwrap());
    assert!((uniform - 32f64.ln()).abs() < 1e-12);
    assert!(loss < uniform, "test loss {loss} should be below ln 32 = {uniform}");
    assert_eq!(summary["variant"], "embedding");
    assert_eq!(summary["n_tokens"], 45, "Sony (L = 70): 5 × 9 tokens");

    // Sampling: labels, lengths, scale, seeding, and the class changes the series.
    let source = nc_vqvae::ucr_data::Resolver::new(None).resolve("SonyAIBORobotSurface1").unwrap();
    let data = nc_vqvae::ucr_data::UcrDataset::load(&source).unwrap();
    let sample = |class: Option<i64>, seed: &str, file: &str| {
        let out = tmp.path().join(file);
        let class = class.map(|c| c.to_string());
        let mut a = vec![
            "sample",
            "--run",
            full.to_str().unwrap(),
            "--n",
            "6",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(c) = &class {
            a.extend(["--class", c.as_str()]);
        }
        ok(nc_vqvae(&a).output().unwrap());
        read_tsv(&out)
    };
    let (c0, c1) = (data.classes[0], data.classes[1]);
    let a = sample(Some(c0), "1", "a.tsv");
    assert_eq!(a.len(), 6);
    assert!(a.iter().all(|(l, v)| *l == c0 && v.len() == 70 && v.iter().all(|x| x.is_finite())));
    assert_eq!(sample(Some(c0), "1", "a2.tsv"), a, "same seed, same series");
    assert_ne!(sample(Some(c0), "2", "a3.tsv"), a, "other seed, other series");
    assert_ne!(
        sample(Some(c1), "1", "b.tsv").iter().map(|r| &r.1).collect::<Vec<_>>(),
        a.iter().map(|r| &r.1).collect::<Vec<_>>()
    );
    let u = sample(None, "1", "u.tsv");
    assert!(u.iter().all(|(l, _)| *l == -1), "unconditional rows are labelled -1");
    // Evaluation: an FCN trained on the fly (cached for the next call), FID / IS / CAS in range.
    let fcn_file = tmp.path().join("fcn.bpk");
    let eval = |extra: &[&str]| {
        let mut a = vec![
            "evaluate",
            "--run",
            full.to_str().unwrap(),
            "--fcn",
            fcn_file.to_str().unwrap(),
            "--cas-epochs",
            "2",
            "--json",
        ];
        a.extend(extra);
        let out = ok(nc_vqvae(&a).output().unwrap());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let e = eval(&["--fcn-epochs", "15"]);
    assert_eq!(
        e,
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(full.join("eval.json")).unwrap()
        )
        .unwrap()
    );
    assert!(fcn_file.exists() && tmp.path().join("fcn.bpk.json").exists(), "the FCN is cached");
    let f = |k: &str| e[k].as_f64().unwrap_or_else(|| panic!("{k} in {e}"));
    assert!(f("fid").is_finite() && f("fid") >= -1e-6, "{e}");
    assert!(
        (1.0 - 1e-9..=2.0 + 1e-9).contains(&f("is_mean")),
        "IS of 2 classes lies in [1, 2]: {e}"
    );
    assert!((0.0..=1.0).contains(&f("cas")) && (0.0..=1.0).contains(&f("cas_final_acc")), "{e}");
    assert_eq!(e["n_generated"], 601, "N_test unconditional samples");
    assert_eq!(e["n_cas_samples"], 1000, "20 train series → ≈1000 class-proportional samples");
    assert_eq!(f("probe_svm_acc"), summary_without_wall_probe(&full));
    let again = eval(&["--fcn-epochs", "1"]);
    assert_eq!(again["fcn_test_acc"], e["fcn_test_acc"], "the cached FCN is reused, not retrained");
    assert_eq!(again["fid"], e["fid"], "same seed, same samples, same FID");
    assert_eq!(e["guidance"], 1.0, "no guidance unless asked for, as the reference");
    // Few CAS samples: the guided pass doubles the prior's work, and only the key and FID are checked.
    let guided = eval(&["--guidance", "3", "--cas-samples", "60"]);
    assert_eq!(guided["guidance"], 3.0, "{guided}");
    assert_eq!(
        guided["fid"], e["fid"],
        "guidance changes only the class-conditional (CAS) samples, not FID's unconditional ones"
    );

    // An evaluation killed inside the CAS classifier's training (after its checkpoint of epoch
    // 10) continues from there and ends with the uninterrupted eval.json; the samples it drew
    // are reused, and its work folder is gone at the end.
    let cas_args = [
        "evaluate",
        "--run",
        full.to_str().unwrap(),
        "--fcn",
        fcn_file.to_str().unwrap(),
        "--cas-epochs",
        "30",
        // Few samples: the sampling is what costs here, and the resume is what is tested.
        "--max-fid-samples",
        "64",
        "--cas-samples",
        "60",
        "--json",
    ];
    ok(nc_vqvae(&cas_args).output().unwrap());
    let uninterrupted = common::json_without_seconds(&full.join("eval.json"));
    let work = full.join("eval.run");
    assert!(!work.exists(), "the work folder is removed at the end");
    let cas_log = common::metrics_without_seconds(&full.join("eval.cas.metrics.jsonl"));
    assert_eq!(cas_log.len(), 30, "the CAS classifier's epoch lines are kept");
    std::fs::remove_file(full.join("eval.json")).unwrap();
    common::kill_after_checkpoint(
        nc_vqvae(&cas_args).spawn().unwrap(),
        &work.join("cas/checkpoint.json"),
        10,
    );
    assert!(
        work.join("samples_unconditional.npy").exists() && work.join("samples_cas.npy").exists(),
        "the samples are kept"
    );
    let resumed = ok(nc_vqvae(&cas_args).output().unwrap());
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("continuing the interrupted evaluation"),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(common::json_without_seconds(&full.join("eval.json")), uninterrupted);
    assert_eq!(common::metrics_without_seconds(&full.join("eval.cas.metrics.jsonl")), cas_log);

    // Original scale: the generated series' mean is the data's, not the z-normalised 0 (loosely).
    let mean = a.iter().flat_map(|r| r.1.iter()).sum::<f64>() / (6.0 * 70.0);
    let sd = data.normalizer.std;
    assert!(
        (mean - data.normalizer.mean).abs() < 3.0 * sd,
        "mean {mean} vs data mean {} (sd {sd})",
        data.normalizer.mean
    );
}

#[test]
fn missing_prerequisites_and_bad_flags_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    input_error(
        nc_vqvae(&["stage2", "--run", empty.to_str().unwrap()]).output().unwrap(),
        "no finished stage-1 run",
    );
    let run = tmp.path().join("run");
    stage1_runs(tmp.path(), &[&run]);
    let r = run.to_str().unwrap();
    let out = tmp.path().join("x.tsv");
    let o = out.to_str().unwrap();
    input_error(
        nc_vqvae(&["sample", "--run", r, "--n", "2", "--out", o]).output().unwrap(),
        "no trained prior",
    );
    input_error(
        nc_vqvae(&["stage2", "--run", r, "--epochs", "0"]).output().unwrap(),
        "epochs must be at least 1",
    );
    ok(nc_vqvae(&["stage2", "--run", r, "--epochs", "1", "--eval-every", "0"]).output().unwrap());
    input_error(
        nc_vqvae(&["sample", "--run", r, "--n", "2", "--class", "99", "--out", o])
            .output()
            .unwrap(),
        "--class 99",
    );
    input_error(
        nc_vqvae(&["sample", "--run", r, "--n", "0", "--out", o]).output().unwrap(),
        "--n must be at least 1",
    );
    input_error(
        nc_vqvae(&["evaluate", "--run", r, "--guidance", "NaN"]).output().unwrap(),
        "--guidance must be a finite number",
    );
    assert!(!out.exists(), "nothing written on bad input");
}
