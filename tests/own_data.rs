//! Stage 1 (and what follows) on one's own files of series: an unlabelled CSV and a `.npy` array
//! with or without a labels `.npy` train, hold out every fifth series as the test split, report
//! reconstruction and codebook usage and, without labels, no probes; stage 2 then trains on one
//! class (unconditionally) and `evaluate` refuses; malformed files exit 2 with one line.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn nc_vqvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nc-vqvae"))
        .args(args)
        .env_remove("NC_VQVAE_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Exit code 2 and one line on stderr that contains `want`.
fn refused(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(want) && err.trim().lines().count() == 1 && !err.contains("panicked"),
        "want {want:?}: {err}"
    );
}

/// 20 series of length 64: sines of two frequencies (class 0 and 1, alternating).
fn series() -> Vec<Vec<f32>> {
    (0..20)
        .map(|i| {
            (0..64)
                .map(|t| ((t as f32) * if i % 2 == 0 { 0.2 } else { 0.5 } + i as f32).sin())
                .collect()
        })
        .collect()
}

#[test]
fn stage1_trains_on_an_unlabelled_csv_and_on_npy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let data = series();
    let row = |s: &[f32]| s.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    std::fs::write(p("mine.csv"), data.iter().map(|s| row(s) + "\n").collect::<String>()).unwrap();
    let flat: Vec<f32> = data.iter().flatten().copied().collect();
    std::fs::write(p("x.npy"), nc_vqvae::ucr_data::npy_f32(&[20, 64], &flat)).unwrap();
    std::fs::write(
        p("y.npy"),
        nc_vqvae::ucr_data::npy_i64(&[20], &(0..20).map(|i| i % 2).collect::<Vec<_>>()),
    )
    .unwrap();
    let short = ["--epochs", "1", "--batch-size", "8", "--json"];

    // Unlabelled CSV: reconstruction and codebook usage, no probes.
    let csv_run = p("csv-run");
    let s = ok(&nc_vqvae(
        &[&["stage1", &p("mine.csv"), "--labels", "none", "--out", &csv_run][..], &short].concat(),
    ));
    assert!(
        s["recon_mse_time"].as_f64().unwrap().is_finite()
            && s["codebook_perplexity"].as_f64().unwrap() >= 1.0,
        "{s}"
    );
    assert!(
        s["probe_knn_acc"].is_null() && s["probe_svm_acc"].is_null(),
        "probes need labels: {s}"
    );
    let config = std::fs::read_to_string(tmp.path().join("csv-run/config.toml")).unwrap();
    assert!(
        config.contains("labels = \"none\"")
            && config.contains(&format!("dataset = \"{}\"", p("mine.csv"))),
        "{config}"
    );
    // Stage 2 trains on the single class (here with a one-block prior, which sampling then loads
    // as such); the classifier-judged scores are refused.
    let s2 = ok(&nc_vqvae(&[
        "stage2",
        "--run",
        &csv_run,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--set",
        "stage2.depth=1",
        "--json",
    ]));
    assert!(s2["loss"].as_f64().unwrap().is_finite(), "{s2}");
    let s2_config = std::fs::read_to_string(tmp.path().join("csv-run/stage2/config.toml")).unwrap();
    assert!(s2_config.contains("depth = 1"), "{s2_config}");
    let sampled = nc_vqvae(&["sample", "--run", &csv_run, "--n", "3", "--out", &p("samples.tsv")]);
    assert_eq!(sampled.status.code(), Some(0), "{}", String::from_utf8_lossy(&sampled.stderr));
    assert_eq!(std::fs::read_to_string(p("samples.tsv")).unwrap().lines().count(), 3);
    refused(
        &nc_vqvae(&["evaluate", "--run", &csv_run, "--fcn-epochs", "1", "--cas-epochs", "1"]),
        "labelled dataset",
    );
    // Encoding the same file with the run: 20 series.
    let e =
        ok(&nc_vqvae(&["encode", "--run", &csv_run, &p("mine.csv"), "--out", &p("enc"), "--json"]));
    assert_eq!(e["tokens_shape"][0], 20, "{e}");

    // .npy without labels, then with them: the probes appear, computed on the 4 held-out series.
    let s = ok(&nc_vqvae(&[&["stage1", &p("x.npy"), "--out", &p("npy-run")][..], &short].concat()));
    assert!(s["probe_svm_acc"].is_null(), "{s}");
    let s = ok(&nc_vqvae(
        &[
            &["stage1", &p("x.npy"), "--labels", &p("y.npy"), "--out", &p("npy-labelled")][..],
            &short,
        ]
        .concat(),
    ));
    let svm = s["probe_svm_acc"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&svm) && (svm * 4.0).fract() == 0.0,
        "an accuracy over 4 test series: {s}"
    );
    // A separate test file instead of the hold-out.
    let s = ok(&nc_vqvae(
        &[
            &[
                "stage1",
                &p("mine.csv"),
                "--labels",
                "none",
                "--test",
                &p("mine.csv"),
                "--test-labels",
                "none",
                "--out",
                &p("with-test"),
            ][..],
            &short,
        ]
        .concat(),
    ));
    assert!(s["recon_mse_time"].as_f64().unwrap().is_finite());
}

#[test]
fn malformed_own_files_exit_2_with_one_line_and_leave_no_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    // The malformed corpus of tests/fixtures/encode: every format's broken files. Rows of another
    // length are fine for a new run, so `wrong_length.*` are left out here.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encode");
    let mut seen = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".md") || name.starts_with("wrong_length") {
            continue;
        }
        // Text files are read with a label column (the default) except the label test itself.
        refused(&nc_vqvae(&["stage1", path.to_str().unwrap(), "--out", o, "--epochs", "1"]), &name);
        assert!(!out.exists(), "{name}: no run folder is claimed for bad input");
        seen += 1;
    }
    assert_eq!(seen, 15);

    // Labels asked for in a way the file cannot give them, and too few series for a hold-out.
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let flat: Vec<f32> = series().into_iter().flatten().collect();
    std::fs::write(p("x.npy"), nc_vqvae::ucr_data::npy_f32(&[20, 64], &flat)).unwrap();
    std::fs::write(p("y3.npy"), nc_vqvae::ucr_data::npy_i64(&[3], &[0, 1, 0])).unwrap();
    std::fs::write(p("three.csv"), "1,2,3\n4,5,6\n7,8,9\n").unwrap();
    refused(
        &nc_vqvae(&["stage1", &p("x.npy"), "--labels", "first-column", "--out", o]),
        "no label column",
    );
    refused(&nc_vqvae(&["stage1", &p("x.npy"), "--labels", &p("y3.npy"), "--out", o]), "y3.npy");
    refused(
        &nc_vqvae(&["stage1", &p("three.csv"), "--labels", &p("y3.npy"), "--out", o]),
        "three.csv is text",
    );
    refused(&nc_vqvae(&["stage1", &p("three.csv"), "--labels", "none", "--out", o]), "too few");
    refused(&nc_vqvae(&["stage1", &p("missing.csv"), "--out", o]), "missing.csv");
    assert!(!out.exists());
}
