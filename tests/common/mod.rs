//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// The JSON lines of a `metrics.jsonl` without the wall-clock field `seconds`.
pub(crate) fn metrics_without_seconds(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// A JSON summary without its `wall_seconds`.
pub(crate) fn summary_without_wall(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("wall_seconds");
    v
}

/// A JSON file without any field whose name ends in `seconds` (wall-clock times), at any depth.
pub(crate) fn json_without_seconds(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|k, _| !k.ends_with("seconds"));
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

/// The epoch a `checkpoint.json` names (0 while there is none).
pub(crate) fn checkpoint_epoch(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epoch"].as_u64())
        .unwrap_or(0)
}

/// Waits until `reached` holds (checked every 5 ms), then kills `child` with SIGKILL; fails if
/// the child ends first (`part` names the point in the message).
pub(crate) fn kill_when(mut child: Child, part: &str, reached: &dyn Fn() -> bool) {
    let start = Instant::now();
    while !reached() {
        assert!(start.elapsed() < Duration::from_secs(600), "{part}: not reached");
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the run ended ({status}) before it reached {part}: {err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Waits until `checkpoint_json` names an epoch ≥ `epoch`, then kills `child` with SIGKILL
/// ([`kill_when`]).
pub(crate) fn kill_after_checkpoint(child: Child, checkpoint_json: &Path, epoch: u64) {
    kill_when(child, &format!("the checkpoint of epoch {epoch}"), &|| {
        checkpoint_epoch(checkpoint_json) >= epoch
    });
}

/// The `nc-vqvae` binary with `args`, without `$NC_VQVAE_DATA`, capturing its output.
pub(crate) fn nc_vqvae(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nc-vqvae"));
    cmd.args(args)
        .env_remove("NC_VQVAE_DATA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Asserts exit code 0 (showing stderr otherwise).
pub(crate) fn ok(out: std::process::Output) -> std::process::Output {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Asserts exit code 2 with one stderr line containing `want`.
pub(crate) fn input_error(out: std::process::Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(want) && stderr.lines().count() == 1,
        "want {want:?} in one line: {stderr}"
    );
}
