//! End-to-end checks of the `nc-vqvae` binary: `data inspect` on bundled data, and the malformed
//! corpus in `tests/fixtures/malformed` (exit code 2, one line naming the file, never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nc_vqvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nc-vqvae"))
        .args(args)
        .env_remove("NC_VQVAE_DATA")
        .output()
        .expect("the binary runs")
}

fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed").join(case).join(file)
}

#[test]
fn inspect_bundled_dataset_as_json() {
    let out = nc_vqvae(&["data", "inspect", "SonyAIBORobotSurface1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["name"], "SonyAIBORobotSurface1");
    for (split, n) in [("train", 20), ("test", 601)] {
        assert_eq!(v[split]["n"], n);
        assert_eq!(v[split]["length_min"], 70);
        assert_eq!(v[split]["length_max"], 70);
        assert_eq!(v[split]["classes"], 2);
        assert_eq!(v[split]["nan_values"], 0);
    }
    let mut keys: Vec<_> = v["train"].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["classes", "length_max", "length_min", "n", "nan_values"]);
}

#[test]
fn inspect_text_and_path_forms() {
    let out = nc_vqvae(&[
        "data",
        "inspect",
        fixture("NanPadded", "NanPadded_TEST.tsv").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("NanPadded\n"), "{text}");
    assert!(text.contains("train      2 series, length 2–3, 2 classes, 1 NaN values"), "{text}");
    assert!(text.contains("test       2 series, length 1–3, 2 classes, 2 NaN values"), "{text}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed");
    let out =
        nc_vqvae(&["data", "inspect", "NanPadded", "--json", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["test"]["nan_values"], 2);
}

#[test]
fn every_malformed_file_exits_2_with_one_line_naming_it() {
    let cases: &[(&str, &str, &str)] = &[
        ("EmptyFile", "EmptyFile_TRAIN.tsv", "empty file"),
        ("Ragged", "Ragged_TRAIN.tsv", ":3: 2 values, but line 1 has 3"),
        ("NonNumeric", "NonNumeric_TRAIN.tsv", ":2: column 3: 'abc' is not a number"),
        ("NonIntegerLabel", "NonIntegerLabel_TRAIN.tsv", ":2: class label '2.5' is not an integer"),
        (
            "UnknownTestLabel",
            "UnknownTestLabel_TEST.tsv",
            ":2: class label 3 does not occur in the train split",
        ),
        ("TruncatedGzip", "TruncatedGzip_TRAIN.tsv.gz", "corrupt or truncated gzip data"),
        ("CorruptGzip", "CorruptGzip_TRAIN.tsv.gz", "corrupt or truncated gzip data"),
        ("InfValue", "InfValue_TRAIN.tsv", ":2: column 3: infinite value 'inf'"),
        ("MissingLabel", "MissingLabel_TRAIN.tsv", ":2: missing class label"),
        ("EmptyGzip", "EmptyGzip_TRAIN.tsv.gz", "empty file"),
        ("Binary", "Binary_TRAIN.tsv", ":2: not a text TSV file"),
        (
            "LengthMismatch",
            "LengthMismatch_TEST.tsv",
            "series have 4 values but the train split has 3",
        ),
        ("NoValues", "NoValues_TRAIN.tsv", ":2: line has a label but no values"),
        ("Lonely", "Lonely_TEST.tsv[.gz]", "missing file"),
        ("Nope", "Nope_TRAIN.tsv", "cannot read"),
    ];
    for (case, file, problem) in cases {
        // Point at the TRAIN file (which always exists, or is the missing one) and let the loader
        // find the sibling, as a user would.
        let given = fixture(case, &format!("{case}_TRAIN.tsv"));
        let given =
            if given.exists() { given } else { fixture(case, &format!("{case}_TRAIN.tsv.gz")) };
        let given = if given.exists() || *case == "Nope" {
            given
        } else {
            unreachable!("fixture {case} missing")
        };
        let out = nc_vqvae(&["data", "inspect", given.to_str().unwrap(), "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: stderr {stderr}");
        assert!(out.stdout.is_empty(), "{case}: nothing on stdout");
        assert_eq!(stderr.lines().count(), 1, "{case}: one line, got {stderr}");
        assert!(stderr.starts_with("error: "), "{case}: {stderr}");
        assert!(stderr.contains(file), "{case}: names the file {file}: {stderr}");
        assert!(stderr.contains(problem), "{case}: says '{problem}': {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    }
}

#[test]
fn unknown_dataset_and_missing_backend_are_usage_errors() {
    let out = nc_vqvae(&["data", "inspect", "NoSuchDataset"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dataset 'NoSuchDataset' not found"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    for (backend, compiled) in [("wgpu", cfg!(feature = "wgpu")), ("cuda", cfg!(feature = "cuda"))]
    {
        if compiled {
            continue;
        }
        let out = nc_vqvae(&["--backend", backend, "data", "inspect", "SonyAIBORobotSurface1"]);
        assert_eq!(out.status.code(), Some(2), "{backend}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("--features {backend}")), "{stderr}");
    }

    let out = nc_vqvae(&["data", "inspect"]);
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn help_exists_for_every_command() {
    for args in [&["--help"][..], &["data", "--help"], &["data", "inspect", "--help"]] {
        let out = nc_vqvae(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}
