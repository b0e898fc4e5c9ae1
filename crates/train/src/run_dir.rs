//! Run folders: atomic file writes, the `metrics.jsonl` log and checkpoints.
//!
//! Layout of a training run (`--out DIR`):
//! - `config.toml`: the resolved configuration,
//! - `metrics.jsonl`: one JSON object per finished epoch,
//! - `checkpoints/epoch-NNNNN/{model.bpk, optim.bpk}` and `checkpoint.json` naming the latest one,
//! - the final summary (`stage1.json`) and weights (`model.bpk`).
//!
//! A checkpoint is written into its own folder first; only then is `checkpoint.json` replaced
//! (write to a temporary file, rename), so a crash at any point leaves the previous checkpoint
//! valid. Older checkpoint folders are removed after the switch.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of the run folder.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output folder cannot be created or written (the user's `--out`: an input error).
    #[error("{path}: cannot write the output folder here: {source}")]
    Unwritable {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but cannot be understood.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl RunDirError {
    /// Maps an I/O error on `path` to [`RunDirError::Io`]: `.map_err(RunDirError::io(path))`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| RunDirError::Io { path: path.to_path_buf(), source }
    }
}

/// [`RunDirError::io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    RunDirError::io(path)
}

/// Creates the output folder `dir` (and its parents) and checks that a file can be written in it,
/// before any work starts: a folder that cannot hold the run is [`RunDirError::Unwritable`].
pub fn ensure_writable(dir: &Path) -> Result<(), RunDirError> {
    let unwritable = |source| RunDirError::Unwritable { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let probe = unique_temp(&dir.join("write-test"));
    std::fs::write(&probe, b"").map_err(unwritable)?;
    std::fs::remove_file(&probe).map_err(unwritable)
}

/// A temporary name beside `path` that no other process or thread uses: `.NAME.tmp-TOKEN-N.EXT`, where
/// TOKEN is drawn once per process from the process id and the clock (process ids repeat across the
/// hosts of a cluster that share a file system) and N counts the names this process has drawn.
pub(crate) fn unique_temp(path: &Path) -> PathBuf {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TOKEN: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let token = *TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // SplitMix64 of the two, so that neighbouring ids and times give unrelated tokens.
        let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    });
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // The extension is kept at the end for writers that pick the format from it (plot PNGs).
    let ext =
        path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{token:016x}-{n}{ext}"))
}

/// Flushes a folder's entries (a rename inside it) to disk. Folders that cannot be opened for
/// that (some file systems) are left as they are: the rename itself is still atomic.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The one way every file of a run is written: `write` fills a temporary file beside `path` (a
/// name unique to this process and call), which is then flushed to disk, renamed over `path` and
/// the rename flushed (the folder synced). A crash at any moment leaves either the old file or the new one, never a
/// part; concurrent writers of one path never share a temporary file, and the last rename wins.
/// On failure the temporary file is removed. `E` is the caller's error type.
pub fn write_atomic_with<E: From<RunDirError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = unique_temp(path);
    let done = write(&tmp).and_then(|()| {
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        Ok(())
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        sync_dir(dir);
    }
    done
}

/// Writes `bytes` to `path` atomically ([`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    write_atomic_with(path, |tmp| {
        let mut file = std::fs::File::create(tmp).map_err(io(tmp))?;
        file.write_all(bytes).map_err(io(tmp))
    })
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunDirError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| RunDirError::Corrupt { path: path.into(), message: e.to_string() })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RunDirError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text)
        .map_err(|e| RunDirError::Corrupt { path: path.into(), message: e.to_string() })
}

/// Pointer to the latest complete checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Epochs completed when it was written.
    pub epoch: usize,
    /// Scheduler steps taken so far.
    pub step: usize,
    /// Training wall time accumulated so far, seconds.
    pub wall_seconds: f64,
    /// Folder holding `model.bpk` and `optim.bpk`, relative to the run folder.
    pub folder: String,
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (creating if needed) the run folder; one that cannot be written is
    /// [`RunDirError::Unwritable`] ([`ensure_writable`]).
    pub fn create(root: &Path) -> Result<Self, RunDirError> {
        ensure_writable(root)?;
        Ok(Self { root: root.to_path_buf() })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The latest checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<CheckpointInfo>, RunDirError> {
        let path = self.path("checkpoint.json");
        if path.exists() { read_json(&path).map(Some) } else { Ok(None) }
    }

    /// Folder for a new checkpoint after `epoch` epochs (emptied if it exists from a crashed write).
    pub fn new_checkpoint_folder(&self, epoch: usize) -> Result<(String, PathBuf), RunDirError> {
        let name = format!("checkpoints/epoch-{epoch:05}");
        let path = self.path(&name);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        Ok((name, path))
    }

    /// Makes `info` the current checkpoint, then deletes the other checkpoint folders.
    pub fn commit_checkpoint(&self, info: &CheckpointInfo) -> Result<(), RunDirError> {
        write_json(&self.path("checkpoint.json"), info)?;
        let dir = self.path("checkpoints");
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let keep = entry.path() == self.path(&info.folder);
            if !keep {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Appends one JSON line to `metrics.jsonl`.
    pub fn append_metrics(&self, line: &serde_json::Value) -> Result<(), RunDirError> {
        let path = self.path("metrics.jsonl");
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        writeln!(file, "{line}").map_err(io(&path))?;
        file.sync_data().map_err(io(&path))
    }

    /// Keeps only the `metrics.jsonl` lines of epochs `≤ epoch` (after resuming from a checkpoint,
    /// later lines belong to work that is about to be redone).
    pub fn truncate_metrics(&self, epoch: usize) -> Result<(), RunDirError> {
        let path = self.path("metrics.jsonl");
        if !path.exists() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let kept: String = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("epoch").and_then(serde_json::Value::as_u64))
                    .is_some_and(|e| e as usize <= epoch)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_atomic(&path, kept.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_never_share_a_temporary_file_and_clean_up_after_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("plot.png");
        let (a, b) = (unique_temp(&path), unique_temp(&path));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".plot.png.tmp-") && name.ends_with(".png"), "{name}");
        // Eight threads write the same file at once: each through its own temporary file, so
        // every rename succeeds and the file holds one writer's whole content.
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || write_atomic(path, &vec![i; 100_000]).unwrap());
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() == 100_000 && bytes.iter().all(|&b| b == bytes[0]));
        // A writer that fails leaves neither its temporary file nor a changed target.
        let failed = write_atomic_with(&path, |t| -> Result<(), RunDirError> {
            std::fs::write(t, b"part").map_err(io(t))?;
            Err(RunDirError::Corrupt { path: t.to_path_buf(), message: "disk full".into() })
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn checkpoints_switch_atomically_and_metrics_truncate() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        assert!(run.checkpoint().unwrap().is_none());
        for epoch in [5, 10] {
            let (folder, path) = run.new_checkpoint_folder(epoch).unwrap();
            std::fs::write(path.join("model.bpk"), b"x").unwrap();
            run.commit_checkpoint(&CheckpointInfo {
                epoch,
                step: epoch * 3,
                wall_seconds: 1.0,
                folder,
            })
            .unwrap();
        }
        let info = run.checkpoint().unwrap().unwrap();
        assert_eq!(info.epoch, 10);
        assert!(!run.path("checkpoints/epoch-00005").exists(), "old checkpoint removed");
        for e in 1..=12 {
            run.append_metrics(&serde_json::json!({"epoch": e, "loss": 1.0})).unwrap();
        }
        run.truncate_metrics(10).unwrap();
        let text = std::fs::read_to_string(run.path("metrics.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 10);
        assert!(text.ends_with("{\"epoch\":10,\"loss\":1.0}\n"), "{text}");
    }
}
