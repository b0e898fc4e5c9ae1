//! A full disk: `stage1` with `--out` on an 8 MiB tmpfs runs out of space while writing its second
//! checkpoint (one checkpoint is 5 MiB). It stops with exit 1 and one line saying so, the first
//! checkpoint survives intact, and after the tmpfs is grown the same command with `--resume`
//! finishes with the uninterrupted run's numbers.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says that it was skipped and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_the_last_checkpoint_and_a_rerun_with_space_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("small"), "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let args = |out: &Path| -> Vec<String> {
        [
            "stage1",
            "SonyAIBORobotSurface1",
            "--epochs",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--set",
            "stage1.checkpoint_every=1",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |args: &[String]| {
        common::nc_vqvae(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap()
    };
    let whole = tmp.path().join("whole");
    common::ok(run(&args(&whole)));

    let out = disk.0.join("run");
    let full = run(&args(&out));
    let all = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{all}");
    // Stderr is a pipe here, so the progress of stage 1 comes first, as plain `[stage 1] …`
    // lines; the error is one line, the last.
    let (progress, error): (Vec<&str>, Vec<&str>) =
        all.lines().partition(|l| l.starts_with("[stage 1] "));
    assert!(!progress.is_empty() && all.trim_end().ends_with(error.last().unwrap()), "{all}");
    let stderr = error.join("\n");
    assert!(stderr.starts_with("error: out of disk space: ") && error.len() == 1, "{all}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("run the same command again"),
        "{stderr}"
    );
    // The first checkpoint is the current one, complete and loadable.
    assert_eq!(common::checkpoint_epoch(&out.join("checkpoint.json")), 1);
    let model = out.join("checkpoints/epoch-00001/model.bpk");
    assert_eq!(
        std::fs::metadata(&model).unwrap().len(),
        std::fs::metadata(whole.join("model.bpk")).unwrap().len()
    );
    assert!(!out.join("stage1.json").exists());

    disk.resize("64m");
    let mut resume = args(&out);
    resume.push("--resume".into());
    common::ok(run(&resume));
    assert_eq!(
        common::metrics_without_seconds(&out.join("metrics.jsonl")),
        common::metrics_without_seconds(&whole.join("metrics.jsonl"))
    );
    assert_eq!(
        common::summary_without_wall(&out.join("stage1.json")),
        common::summary_without_wall(&whole.join("stage1.json"))
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "no temporary file left: {names:?}");
}
