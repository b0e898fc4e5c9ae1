//! `nc-vqvae fcn train` end to end on the bundled dataset: the FCN learns the task (far above the
//! majority-class rate), writes its files, bad settings exit with code 2, and a killed run
//! continues from its checkpoint to the uninterrupted run's result.

use std::process::{Command, Stdio};

mod common;

fn fcn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nc-vqvae"))
        .args(["fcn", "train", "SonyAIBORobotSurface1"])
        .args(args)
        .env_remove("NC_VQVAE_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn fcn_learns_sony_and_writes_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fcn.bpk");
    let o = out.to_str().unwrap();
    let run =
        fcn(&["--out", o, "--epochs", "40", "--batch-size", "8", "--eval-every", "10", "--json"]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("fcn.bpk.json")).unwrap())
            .unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed, summary);
    // The test split's majority class covers 56.6 % (343 of 601 series); published FCN: 0.958.
    let acc = summary["test_acc"].as_f64().unwrap();
    assert!(acc > 0.85, "test accuracy {acc}");
    assert_eq!(summary["n_classes"], 2);
    assert!(out.exists());
    assert!(
        !tmp.path().join("fcn.bpk.run").exists(),
        "the checkpoint folder is removed at the end"
    );
    let lines = std::fs::read_to_string(tmp.path().join("fcn.bpk.metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 40);
    // The saved weights load back and give the same accuracy.
    let device = burn::tensor::Device::flex();
    let model = nc_vqvae::fcn::load(&out, 2, &device).unwrap();
    let data = nc_vqvae::ucr_data::UcrDataset::load(
        &nc_vqvae::ucr_data::Resolver::new(None).resolve("SonyAIBORobotSurface1").unwrap(),
    )
    .unwrap();
    let again = nc_vqvae::fcn::accuracy(&model, &data.test, &device).unwrap();
    assert!((again - acc).abs() < 1e-12, "{again} vs {acc}");

    let bad = fcn(&["--out", o, "--epochs", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("epochs must be"));
}

#[test]
fn killed_fcn_run_continues_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |out: &str| {
        [
            "fcn",
            "train",
            "SonyAIBORobotSurface1",
            "--out",
            out,
            "--epochs",
            "12",
            "--batch-size",
            "8",
            "--eval-every",
            "4",
            "--checkpoint-every",
            "3",
        ]
        .map(String::from)
    };
    let full = tmp.path().join("full.bpk");
    let killed = tmp.path().join("killed.bpk");
    let (f, k) = (full.to_str().unwrap(), killed.to_str().unwrap());
    common::ok(common::nc_vqvae(&args(f).each_ref().map(String::as_str)).output().unwrap());

    let child = common::nc_vqvae(&args(k).each_ref().map(String::as_str)).spawn().unwrap();
    common::kill_after_checkpoint(child, &tmp.path().join("killed.bpk.run/checkpoint.json"), 6);
    assert!(!killed.exists(), "killed before the end");
    // Other settings do not mix with the interrupted run.
    let mut other = args(k);
    other[6] = "11".into();
    let refused = common::nc_vqvae(&other.each_ref().map(String::as_str)).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("interrupted FCN run"), "{stderr}");

    common::ok(common::nc_vqvae(&args(k).each_ref().map(String::as_str)).output().unwrap());
    let summary =
        |p: &std::path::Path| common::summary_without_wall(&nc_vqvae::fcn::with_suffix(p, ".json"));
    assert_eq!(summary(&killed), summary(&full));
    let metrics = |p: &std::path::Path| {
        common::metrics_without_seconds(&nc_vqvae::fcn::with_suffix(p, ".metrics.jsonl"))
    };
    assert_eq!(metrics(&killed), metrics(&full));
    assert_eq!(metrics(&full).len(), 12);
    // Same weights: the two networks give the same logits (the files differ in their parameter ids).
    let device = burn::tensor::Device::flex();
    let data = nc_vqvae::ucr_data::UcrDataset::load(
        &nc_vqvae::ucr_data::Resolver::new(None).resolve("SonyAIBORobotSurface1").unwrap(),
    )
    .unwrap();
    let logits = |p: &std::path::Path| {
        let model = nc_vqvae::fcn::load(p, 2, &device).unwrap();
        let x = data.test.batch(&(0..64).collect::<Vec<_>>(), &device).x;
        model.forward(x).try_into_vec_as::<f32>().unwrap()
    };
    assert_eq!(logits(&killed), logits(&full));
}

#[test]
fn two_processes_training_one_fcn_at_once_leave_one_valid_fcn() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fcn.bpk");
    let args = [
        "fcn",
        "train",
        "SonyAIBORobotSurface1",
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "1",
    ];
    // The second waits on fcn.bpk.lock while the first trains (they would share fcn.bpk.run/).
    let children: Vec<_> = (0..2).map(|_| common::nc_vqvae(&args).spawn().unwrap()).collect();
    for child in children {
        common::ok(child.wait_with_output().unwrap());
    }
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["fcn.bpk", "fcn.bpk.json", "fcn.bpk.lock", "fcn.bpk.metrics.jsonl"],
        "no run folder or temporary file left"
    );
    assert_eq!(
        common::metrics_without_seconds(&tmp.path().join("fcn.bpk.metrics.jsonl")).len(),
        4,
        "each epoch logged once"
    );
    let device = burn::tensor::Device::flex();
    nc_vqvae::fcn::load(&out, 2, &device).unwrap();
}
