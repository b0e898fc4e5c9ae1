//! `nc-vqvae fcn train` end to end on the bundled dataset: the FCN learns the task (far above the
//! majority-class rate), writes its files, and bad settings exit with code 2.

use std::process::{Command, Stdio};

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
    let run = fcn(&["--out", o, "--epochs", "40", "--batch-size", "8", "--eval-every", "10", "--json"]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("fcn.bpk.json")).unwrap()).unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed, summary);
    // The test split's majority class covers 56.6 % (343 of 601 series); published FCN: 0.958.
    let acc = summary["test_acc"].as_f64().unwrap();
    assert!(acc > 0.85, "test accuracy {acc}");
    assert_eq!(summary["n_classes"], 2);
    assert!(out.exists());
    let lines = std::fs::read_to_string(tmp.path().join("fcn.bpk.metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 40);
    // The saved weights load back and give the same accuracy.
    let device = burn::tensor::Device::flex();
    let model = nc_vqvae::fcn::load(&out, 2, &device).unwrap();
    let data = nc_vqvae::ucr_data::UcrDataset::load(&nc_vqvae::ucr_data::Resolver::new(None).resolve("SonyAIBORobotSurface1").unwrap()).unwrap();
    let again = nc_vqvae::fcn::accuracy(&model, &data.test, &device).unwrap();
    assert!((again - acc).abs() < 1e-12, "{again} vs {acc}");

    let bad = fcn(&["--out", o, "--epochs", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("epochs must be"));
}
