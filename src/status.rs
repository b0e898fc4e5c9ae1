//! `nc-vqvae status DIR`: what a run, job or sweep folder has finished, what is running, what is
//! left and about how long it will take, read from the files the runs write (nothing is locked
//! or changed).
//!
//! - A model's run folder (stage 1 → stage 2 → evaluation): each phase is `finished` (its summary
//!   exists), `running` / `interrupted` (epochs in its `metrics.jsonl`; running while a process
//!   holds the folder's `run.lock`, [`lock_run`]) or `pending`. A started phase's time left is its
//!   epochs left at the mean rate of its last 50 epochs.
//! - A job folder (`nc-vqvae run`): its `baseline/` and `nc_vqvae/` runs.
//! - A sweep folder: every point's run. Phases not started yet are estimated from the finished
//!   phases of the sweep's other points of the same dataset and configuration (else the same
//!   dataset); without any, the total says how many phases it leaves out.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::RunError;

/// One phase of a model's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseStatus {
    /// `stage 1`, `stage 2` or `evaluation`.
    pub phase: &'static str,
    /// `finished`, `running`, `interrupted` or `pending`.
    pub state: &'static str,
    /// Epochs done (the CAS classifier's for the evaluation).
    pub epochs_done: usize,
    /// Epochs in all (0 when not known yet).
    pub epochs: usize,
    /// Wall seconds of a finished phase.
    pub wall_seconds: Option<f64>,
    /// Mean seconds per epoch over the last 50 epochs of a started phase.
    pub seconds_per_epoch: Option<f64>,
    /// Seconds left, measured or estimated; `None` when nothing to estimate from.
    pub seconds_left: Option<f64>,
}

/// A model's run folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStatus {
    /// The folder.
    pub path: PathBuf,
    /// `finished`, `running`, `interrupted` or `pending`.
    pub state: &'static str,
    /// Stage 1, stage 2, evaluation.
    pub phases: Vec<PhaseStatus>,
}

/// A sweep point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointStatus {
    /// Index in the grid.
    pub index: usize,
    /// Dataset.
    pub dataset: String,
    /// `baseline` or `SSL/AUG`.
    pub config: String,
    /// Seed.
    pub seed: u64,
    /// Its run.
    pub run: RunStatus,
}

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// `run`, `job` or `sweep`.
    pub kind: &'static str,
    /// The folder asked about.
    pub path: PathBuf,
    /// Runs (or points) in all.
    pub total: usize,
    /// Finished ones.
    pub finished: usize,
    /// Running ones (a process holds their lock).
    pub running: usize,
    /// Interrupted ones (started, not finished, no process on them).
    pub interrupted: usize,
    /// Not started.
    pub pending: usize,
    /// Seconds left over every unfinished phase that has a measurement or an estimate.
    pub seconds_left: f64,
    /// Unfinished phases with neither (left out of `seconds_left`).
    pub phases_without_estimate: usize,
    /// The runs (`run`, `job`) ...
    pub runs: Vec<RunStatus>,
    /// ... or the points (`sweep`).
    pub points: Vec<PointStatus>,
}

/// Takes the OS lock on `DIR/run.lock` that tells `status` a process is working on the run
/// folder `dir` (released when the returned file is dropped or the process dies). A folder
/// another process holds is a usage error: two processes must not train one run.
pub fn lock_run(dir: &Path) -> Result<std::fs::File, RunError> {
    std::fs::create_dir_all(dir).map_err(train::run_dir::RunDirError::io(dir))?;
    let path = dir.join("run.lock");
    match try_lock_file(&path)? {
        (file, true) => Ok(file),
        (_, false) => Err(RunError::config(format!(
            "{}: another process is running this folder (it holds {})",
            dir.display(),
            path.display()
        ))),
    }
}

/// Opens the lock file `path` (created if missing, never truncated) and tries its OS lock
/// (`flock(2)`): the file, and whether this process now holds the lock (`false`: another does).
/// The lock goes with the file, and with the process if it dies.
pub(crate) fn try_lock_file(path: &Path) -> Result<(std::fs::File, bool), RunError> {
    let io = train::run_dir::RunDirError::io;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    match file.try_lock() {
        Ok(()) => Ok((file, true)),
        Err(std::fs::TryLockError::WouldBlock) => Ok((file, false)),
        Err(std::fs::TryLockError::Error(e)) => Err(io(path)(e).into()),
    }
}

/// Whether a process holds `DIR/run.lock`.
fn locked(dir: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(dir.join("run.lock"))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

fn json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The top-level `epochs` of a run's `config.toml`.
fn toml_epochs(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: toml::Table = toml::from_str(&text).ok()?;
    value.get("epochs")?.as_integer().map(|e| e as usize)
}

/// Epoch lines of a `metrics.jsonl` and the mean `seconds` of the last 50.
fn progress(path: &Path) -> (usize, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(path) else { return (0, None) };
    let seconds: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v.get("seconds").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN))
        .collect();
    let recent: Vec<f64> =
        seconds.iter().rev().take(50).copied().filter(|s| s.is_finite()).collect();
    let rate = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
    (seconds.len(), rate)
}

fn phase(
    phase: &'static str,
    summary: &Path,
    config_epochs: Option<usize>,
    metrics: &Path,
    running: bool,
) -> PhaseStatus {
    if let Some(done) = json(summary) {
        let epochs = done
            .get("epochs")
            .or_else(|| done.get("cas_epochs"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as usize;
        return PhaseStatus {
            phase,
            state: "finished",
            epochs_done: epochs,
            epochs,
            wall_seconds: done.get("wall_seconds").and_then(serde_json::Value::as_f64),
            seconds_per_epoch: None,
            seconds_left: Some(0.0),
        };
    }
    let (done, rate) = progress(metrics);
    let epochs = config_epochs.unwrap_or(0);
    let started = config_epochs.is_some() || done > 0;
    PhaseStatus {
        phase,
        state: match (started, running) {
            (false, _) => "pending",
            (true, true) => "running",
            (true, false) => "interrupted",
        },
        epochs_done: done,
        epochs,
        wall_seconds: None,
        seconds_per_epoch: rate,
        seconds_left: rate.filter(|_| epochs > 0).map(|r| r * epochs.saturating_sub(done) as f64),
    }
}

/// The status of one model's run folder (estimates for phases not started are left `None`).
pub fn run_status(dir: &Path) -> RunStatus {
    let running = locked(dir);
    let stage1 = phase(
        "stage 1",
        &dir.join("stage1.json"),
        toml_epochs(&dir.join("config.toml")),
        &dir.join("metrics.jsonl"),
        running,
    );
    let stage2 = phase(
        "stage 2",
        &dir.join("stage2.json"),
        toml_epochs(&dir.join("stage2").join("config.toml")),
        &dir.join("stage2").join("metrics.jsonl"),
        running,
    );
    let cas_epochs = json(&dir.join("eval.run").join("settings.json"))
        .and_then(|s| s.get("cas_epochs").and_then(serde_json::Value::as_u64))
        .map(|e| e as usize);
    let evaluation = phase(
        "evaluation",
        &dir.join("eval.json"),
        cas_epochs,
        &dir.join("eval.run").join("cas").join("metrics.jsonl"),
        running,
    );
    let phases = vec![stage1, stage2, evaluation];
    let state = if phases.iter().all(|p| p.state == "finished") {
        "finished"
    } else if running {
        "running"
    } else if phases.iter().any(|p| p.state != "pending") {
        "interrupted"
    } else {
        "pending"
    };
    RunStatus { path: dir.to_path_buf(), state, phases }
}

/// Fills the estimates of phases not started from the finished phases of `peers` (wall times of
/// the same phase), and a started phase without a rate from them too.
fn estimate(run: &mut RunStatus, peers: &[&RunStatus]) {
    for (i, phase) in run.phases.iter_mut().enumerate() {
        if phase.seconds_left.is_some() {
            continue;
        }
        let walls: Vec<f64> = peers.iter().filter_map(|p| p.phases[i].wall_seconds).collect();
        if walls.is_empty() {
            continue;
        }
        let mean = walls.iter().sum::<f64>() / walls.len() as f64;
        let left = match phase.epochs {
            0 => 1.0,
            e => e.saturating_sub(phase.epochs_done) as f64 / e as f64,
        };
        phase.seconds_left = Some(mean * left);
    }
}

fn totals(kind: &'static str, path: &Path, runs: Vec<&RunStatus>) -> Status {
    let count = |state: &str| runs.iter().filter(|r| r.state == state).count();
    let unfinished = runs.iter().flat_map(|r| &r.phases).filter(|p| p.state != "finished");
    let (mut seconds_left, mut without) = (0.0, 0);
    for p in unfinished {
        match p.seconds_left {
            Some(s) => seconds_left += s,
            None => without += 1,
        }
    }
    Status {
        kind,
        path: path.to_path_buf(),
        total: runs.len(),
        finished: count("finished"),
        running: count("running"),
        interrupted: count("interrupted"),
        pending: count("pending"),
        seconds_left,
        phases_without_estimate: without,
        runs: Vec::new(),
        points: Vec::new(),
    }
}

/// The status of `dir`: a sweep folder (`sweep.toml`), a job folder (`baseline/`, `nc_vqvae/`)
/// or a model's run folder.
pub fn status(dir: &Path) -> Result<Status, RunError> {
    if !dir.is_dir() {
        return Err(RunError::config(format!("{}: no such folder", dir.display())));
    }
    if dir.join("sweep.toml").exists() {
        let points = crate::sweep::points(&dir.join("sweep.toml"))?;
        let mut out: Vec<PointStatus> = points
            .iter()
            .map(|p| PointStatus {
                index: p.index,
                dataset: p.dataset.clone(),
                config: p.config.clone(),
                seed: p.seed,
                run: run_status(&crate::sweep::point_dir(dir, p.index).join("run")),
            })
            .collect();
        let snapshot = out.clone();
        for point in out.iter_mut().filter(|p| p.run.state != "finished") {
            let same = |q: &&PointStatus| q.dataset == point.dataset && q.index != point.index;
            let mut peers: Vec<&RunStatus> = snapshot
                .iter()
                .filter(same)
                .filter(|q| q.config == point.config)
                .map(|q| &q.run)
                .collect();
            if !peers.iter().any(|r| r.phases.iter().any(|p| p.wall_seconds.is_some())) {
                peers = snapshot.iter().filter(same).map(|q| &q.run).collect();
            }
            estimate(&mut point.run, &peers);
        }
        let mut status = totals("sweep", dir, out.iter().map(|p| &p.run).collect());
        status.points = out;
        return Ok(status);
    }
    let models: Vec<PathBuf> =
        ["baseline", "nc_vqvae"].iter().map(|m| dir.join(m)).filter(|d| d.is_dir()).collect();
    if dir.join("config.toml").exists() && !dir.join("stage1.json").exists() && !models.is_empty()
        || dir.join("summary.json").exists()
    {
        let mut runs: Vec<RunStatus> = models.iter().map(|m| run_status(m)).collect();
        let snapshot = runs.clone();
        for (i, run) in runs.iter_mut().enumerate() {
            let peers: Vec<&RunStatus> =
                snapshot.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, r)| r).collect();
            estimate(run, &peers);
        }
        let mut status = totals("job", dir, runs.iter().collect());
        status.runs = runs;
        return Ok(status);
    }
    if !dir.join("config.toml").exists() && !dir.join("stage1.json").exists() {
        return Err(RunError::config(format!(
            "{}: not a run, job or sweep folder (no config.toml, stage1.json or sweep.toml)",
            dir.display()
        )));
    }
    let run = run_status(dir);
    let mut status = totals("run", dir, vec![&run]);
    status.runs = vec![run];
    Ok(status)
}

fn phase_text(p: &PhaseStatus) -> String {
    let left = p.seconds_left.map(|s| format!(", {} left", crate::progress::duration(s)));
    match p.state {
        "finished" => format!(
            "{} finished ({} epochs{})",
            p.phase,
            p.epochs,
            p.wall_seconds
                .map(|s| format!(" in {}", crate::progress::duration(s)))
                .unwrap_or_default()
        ),
        "pending" => format!(
            "{} pending{}",
            p.phase,
            left.map(|l| format!(" (~{})", &l[2..])).unwrap_or_default()
        ),
        state => format!(
            "{} {state} at epoch {}/{}{}{}",
            p.phase,
            p.epochs_done,
            p.epochs,
            p.seconds_per_epoch.map(|r| format!(" ({r:.2} s/epoch)")).unwrap_or_default(),
            left.unwrap_or_default()
        ),
    }
}

impl Status {
    /// The human text `status` prints.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} ({}): {} of {} finished, {} running, {} interrupted, {} not started; {} left{}\n",
            self.path.display(),
            self.kind,
            self.finished,
            self.total,
            self.running,
            self.interrupted,
            self.pending,
            crate::progress::duration(self.seconds_left),
            match self.phases_without_estimate {
                0 => String::new(),
                n => format!(" (plus {n} phases with nothing to estimate them from yet)"),
            }
        );
        let line = |name: String, run: &RunStatus| {
            let phases: Vec<String> = run.phases.iter().map(phase_text).collect();
            format!("  {name}: {}: {}\n", run.state, phases.join("; "))
        };
        for run in &self.runs {
            out.push_str(&line(run.path.display().to_string(), run));
        }
        for p in
            self.points.iter().filter(|p| p.run.state != "pending" && p.run.state != "finished")
        {
            out.push_str(&line(
                format!("point {} ({} {} seed {})", p.index, p.dataset, p.config, p.seed),
                &p.run,
            ));
        }
        out
    }
}
