//! `nc-vqvae encode` on a finished stage-1 run: the same series as a `.npy` array, an unlabelled
//! CSV and a labelled CSV give the same tokens and features, the arrays have the promised shapes
//! and dtypes (read back with NumPy when it is installed), and bad input exits 2 with one line.

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

/// The `.npy` header dict of a file.
fn npy_header(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    String::from_utf8(bytes[10..10 + len].to_vec()).unwrap()
}

#[test]
fn encode_writes_tokens_and_features_from_npy_and_csv_with_or_without_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let trained = nc_vqvae(&[
        "stage1",
        "SonyAIBORobotSurface1",
        "--out",
        r,
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]);
    assert_eq!(trained.status.code(), Some(0), "{}", String::from_utf8_lossy(&trained.stderr));

    // Five series of the run's length (70), as the three input formats.
    let series: Vec<Vec<f32>> = (0..5)
        .map(|i| (0..70).map(|t| ((t * (i + 1)) as f32 * 0.13).sin() * (1.0 + i as f32)).collect())
        .collect();
    let flat: Vec<f32> = series.iter().flatten().copied().collect();
    let npy = tmp.path().join("mine.npy");
    std::fs::write(&npy, nc_vqvae::ucr_data::npy_f32(&[5, 70], &flat)).unwrap();
    let row = |s: &[f32]| s.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    let csv = tmp.path().join("mine.csv");
    std::fs::write(&csv, series.iter().map(|s| row(s) + "\n").collect::<String>()).unwrap();
    let labelled = tmp.path().join("labelled.csv");
    std::fs::write(
        &labelled,
        series
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{},{}\n", i % 2, row(s)))
            .collect::<String>(),
    )
    .unwrap();

    let mut outputs = Vec::new();
    for (input, has_labels) in [(&npy, false), (&csv, false), (&labelled, true)] {
        let prefix =
            tmp.path().join(format!("out-{}", input.file_name().unwrap().to_str().unwrap()));
        let s = ok(&nc_vqvae(&[
            "encode",
            "--run",
            r,
            input.to_str().unwrap(),
            "--out",
            prefix.to_str().unwrap(),
            "--json",
        ]));
        // Sony (length 70): 2 down-sampling blocks, W' = 9.
        assert_eq!(s["tokens_shape"], serde_json::json!([5, 5, 9]), "{s}");
        assert_eq!(s["features_shape"], serde_json::json!([5, 64]));
        assert_eq!(s["labelled_input"], has_labels);
        let p = |suffix: &str| std::path::PathBuf::from(format!("{}{suffix}", prefix.display()));
        let tokens_header = npy_header(&p(".tokens.npy"));
        assert!(
            tokens_header.contains("'descr': '<i8'")
                && tokens_header.contains("'shape': (5, 5, 9)"),
            "{tokens_header}"
        );
        let features_header = npy_header(&p(".features.npy"));
        assert!(
            features_header.contains("'descr': '<f4'")
                && features_header.contains("'shape': (5, 64)"),
            "{features_header}"
        );
        let tokens_csv = std::fs::read_to_string(p(".tokens.csv")).unwrap();
        let lines: Vec<&str> = tokens_csv.lines().collect();
        assert_eq!(lines.len(), 6, "a header and one line per series");
        assert!(lines[0].starts_with("f0_t0,f0_t1,") && lines[0].ends_with("f4_t8"));
        assert!(lines[1..].iter().all(|l| l.split(',').count() == 45
            && l.split(',').all(|t| t.parse::<u32>().is_ok_and(|t| t < 32))));
        let features_csv = std::fs::read_to_string(p(".features.csv")).unwrap();
        assert_eq!(features_csv.lines().nth(1).unwrap().split(',').count(), 64);
        outputs.push((
            std::fs::read(p(".tokens.npy")).unwrap(),
            std::fs::read(p(".features.npy")).unwrap(),
            prefix,
        ));
    }
    assert!(
        outputs.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1),
        "the three formats give the same arrays"
    );

    // NumPy reads them (skipped where NumPy is not installed).
    let script = format!(
        "import numpy as np; t = np.load('{p}.tokens.npy'); z = np.load('{p}.features.npy'); \
         assert t.shape == (5, 5, 9) and t.dtype == np.int64 and z.shape == (5, 64) and z.dtype == np.float32; \
         assert (np.loadtxt('{p}.tokens.csv', delimiter=',', skiprows=1, dtype=np.int64).reshape(5, 5, 9) == t).all()",
        p = outputs[0].2.display()
    );
    match Command::new("python3").args(["-c", "import numpy"]).output() {
        Ok(o) if o.status.success() => {
            let o = Command::new("python3").args(["-c", &script]).output().unwrap();
            assert!(o.status.success(), "numpy: {}", String::from_utf8_lossy(&o.stderr));
        }
        _ => eprintln!("numpy not installed: the numpy.load check is skipped"),
    }

    // Bad input: one line naming the file, exit 2.
    let short = tmp.path().join("short.csv");
    std::fs::write(&short, "1,2,3\n4,5,6\n").unwrap();
    let broken = tmp.path().join("broken.npy");
    std::fs::write(&broken, b"\x93NUMPY\x01\x00garbage").unwrap();
    let missing = tmp.path().join("missing.csv");
    for (input, want) in [
        (&short, "series have 3 values, but the tokenizer"),
        (&broken, "broken.npy: truncated header"),
        (&missing, "missing.csv: cannot read"),
    ] {
        let out = nc_vqvae(&[
            "encode",
            "--run",
            r,
            input.to_str().unwrap(),
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want) && err.trim().lines().count() == 1, "{err}");
    }
    // The malformed corpus (tests/fixtures/encode/README.md).
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encode");
    let mut seen = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e == "md") {
            continue;
        }
        let out = nc_vqvae(&[
            "encode",
            "--run",
            r,
            path.to_str().unwrap(),
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(name) && err.trim().lines().count() == 1 && !err.contains("panicked"),
            "{name}: {err}"
        );
        seen += 1;
    }
    assert_eq!(seen, 17, "every file of the corpus was tried");
    assert!(!tmp.path().join("bad.tokens.npy").exists(), "nothing is written for bad input");
    let no_run = nc_vqvae(&[
        "encode",
        "--run",
        tmp.path().join("nothing").to_str().unwrap(),
        csv.to_str().unwrap(),
        "--out",
        "x",
    ]);
    assert_eq!(no_run.status.code(), Some(2));
}
