//! `nc-vqvae stage1` end to end on the bundled dataset: a run killed with SIGKILL and resumed ends
//! exactly like an uninterrupted one (CPU backend, same seed), and bad runs are refused cleanly.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;

fn stage1(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nc-vqvae"));
    cmd.args(["stage1", "SonyAIBORobotSurface1", "--out", out.to_str().unwrap(), "--seed", "3"])
        .args(if extra.contains(&"--batch-size") { &[][..] } else { &["--batch-size", "8"][..] })
        .args(extra)
        .env_remove("NC_VQVAE_DATA")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn metrics_without_seconds(dir: &Path) -> Vec<serde_json::Value> {
    common::metrics_without_seconds(&dir.join("metrics.jsonl"))
}

fn summary_without_wall(dir: &Path) -> serde_json::Value {
    common::summary_without_wall(&dir.join("stage1.json"))
}

#[test]
fn killed_and_resumed_run_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, killed) = (tmp.path().join("full"), tmp.path().join("killed"));
    let args = ["--epochs", "24", "--checkpoint-every", "2"];

    let out = stage1(&full, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    common::kill_after_checkpoint(
        stage1(&killed, &args).spawn().unwrap(),
        &killed.join("checkpoint.json"),
        6,
    );
    assert!(!killed.join("stage1.json").exists(), "killed before the end");

    let refused = stage1(&killed, &args).output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "an existing run is refused without --resume");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    let resumed = stage1(&killed, &["--resume"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(summary_without_wall(&killed), summary_without_wall(&full));
    assert_eq!(metrics_without_seconds(&killed), metrics_without_seconds(&full));
    assert_eq!(metrics_without_seconds(&full).len(), 24, "one line per epoch");
    let s = summary_without_wall(&full);
    for key in [
        "recon_mse_time",
        "recon_mse_timefreq",
        "probe_knn_acc",
        "probe_svm_acc",
        "codebook_perplexity",
    ] {
        assert!(s[key].as_f64().is_some_and(f64::is_finite), "{key} in {s}");
    }
    assert_eq!(s["epochs"], 24);
    assert!(full.join("model.bpk").exists());
}

#[test]
fn bad_stage1_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec!["--epochs", "0"], "epochs must be at least 1"),
        (vec!["--batch-size", "1"], "batch_size must be at least 2"),
    ] {
        let out = stage1(&tmp.path().join("bad"), &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
    let out = stage1(&tmp.path().join("nothing"), &["--resume"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run to resume"));
    // A VIbCReg projector width IterNorm cannot split into its 64 groups: a configuration error
    // before anything is written, not a panic.
    let out =
        stage1(&tmp.path().join("vib"), &["--ssl", "vibcreg", "--set", "stage1.projector_dim=100"])
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("projector_dim")
            && stderr.contains("64 IterNorm groups")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!tmp.path().join("vib").exists(), "nothing written for a rejected configuration");
    // An output folder that cannot be created: an input error naming it.
    let unwritable = if std::path::Path::new("/proc/self").exists() {
        std::path::PathBuf::from("/proc/nc-vqvae-test/out")
    } else {
        tmp.path().join("file-not-folder").join("out")
    };
    std::fs::write(tmp.path().join("file-not-folder"), b"a file").unwrap();
    let out = stage1(&unwritable, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&*unwritable.to_string_lossy())
            && stderr.contains("cannot write the output folder")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// A learning rate of 1e10 blows the weights up after the first update: the run must stop with a
/// NonFinite error naming the loss term, leave no stage1.json, and keep the last checkpoint valid.
#[test]
fn diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    use nc_vqvae::stage1::{Stage1Options, Stage1Run, train};
    use nc_vqvae::train::Error;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Stage1Run::new("SonyAIBORobotSurface1");
    config.epochs = 20;
    config.batch_size = 8;
    config.checkpoint_every = 1;
    config.lr = 1e10;
    let device = burn::tensor::Device::flex();
    let err = train(&config, tmp.path(), &device, &Stage1Options::default()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(!err.is_input_error());
    assert!(err.to_string().contains("training diverged"), "{err}");
    assert!(!tmp.path().join("stage1.json").exists());
    if let Ok(text) = std::fs::read_to_string(tmp.path().join("checkpoint.json")) {
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        let folder = tmp.path().join(info["folder"].as_str().unwrap());
        assert!(folder.join("model.bpk").exists() && folder.join("optim.bpk").exists());
    }
}

/// Layering: defaults < --config file < --set < explicit flags; the run's config.toml records the
/// result, and a bad file or --set exits 2 with one line.
#[test]
fn config_file_set_and_flags_layer_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("exp.toml");
    std::fs::write(
        &file,
        "[stage1]\nepochs = 5\nlr = 0.002\nbatch_size = 4\n[stage2]\nepochs = 9\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let f = file.to_str().unwrap();
    let run = stage1(
        &out,
        &[
            "--batch-size",
            "8",
            "--config",
            f,
            "--set",
            "stage1.lr=5e-4",
            "--set",
            "stage1.batch_size=6",
            "--epochs",
            "1",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let stored: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(stored["epochs"].as_integer(), Some(1), "an explicit flag wins");
    assert_eq!(stored["batch_size"].as_integer(), Some(8), "an explicit flag wins over --set");
    assert_eq!(stored["lr"].as_float(), Some(5e-4), "--set wins over the file");
    std::fs::write(&file, "[stage1]\nepochz = 5\n").unwrap();
    let bad = stage1(&tmp.path().join("bad"), &["--config", f]).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("exp.toml") && stderr.contains("epochz") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let bad = stage1(&tmp.path().join("bad2"), &["--set", "stage1.lr"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn faithful_probes_run_before_training_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, killed, sane) =
        (tmp.path().join("full"), tmp.path().join("killed"), tmp.path().join("sane"));
    let args = ["--epochs", "8", "--checkpoint-every", "2", "--probe-every", "2", "--faithful"];

    let out = stage1(&full, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: toml::Table =
        toml::from_str(&std::fs::read_to_string(full.join("config.toml")).unwrap()).unwrap();
    assert_eq!(stored["faithful_probes"].as_bool(), Some(true));
    assert_eq!(stored["faithful_aug_zeros"].as_bool(), Some(true));
    let lines = metrics_without_seconds(&full);
    for key in ["initial_probe_knn_acc", "initial_probe_svm_acc"] {
        assert!(
            lines[0][key].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)),
            "{key} in {}",
            lines[0]
        );
        assert!(lines[1].get(key).is_none(), "only the first line holds the initial probe");
    }

    common::kill_after_checkpoint(
        stage1(&killed, &args).spawn().unwrap(),
        &killed.join("checkpoint.json"),
        4,
    );
    let resumed = stage1(&killed, &["--resume"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(summary_without_wall(&killed), summary_without_wall(&full));
    assert_eq!(metrics_without_seconds(&killed), lines);

    // The train-mode probe passes change the model: the same run without them ends elsewhere.
    let out = stage1(
        &sane,
        &[
            "--epochs",
            "8",
            "--checkpoint-every",
            "2",
            "--probe-every",
            "2",
            "--set",
            "stage1.faithful_aug_zeros=true",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(metrics_without_seconds(&sane)[0].get("initial_probe_knn_acc").is_none());
    assert_ne!(
        summary_without_wall(&sane)["recon_mse_time"],
        summary_without_wall(&full)["recon_mse_time"]
    );
}
