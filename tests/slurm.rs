//! The tiny sweep (configs/sweeps/tiny.toml) under a real Slurm: a one-node cluster started by
//! `scripts/slurm/local-cluster.sh`, the four points submitted with `sbatch --array` through
//! `scripts/slurm/sweep.sbatch` and run at once (one shared FCN), one task cancelled with `scancel`
//! after its first stage-1 checkpoint and requeued with `scontrol requeue`, then `sweep collect`.
//!
//! Ignored by default: it needs root and Debian's `slurm-wlm` and `munge`. `.ci/run` installs them
//! and runs it (`cargo test --test slurm -- --ignored` by hand).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The local cluster, stopped when dropped (also when the test fails).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let out = Command::new(repo().join("scripts/slurm/local-cluster.sh"))
            .arg("start")
            .arg(dir)
            .arg("4")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "local-cluster.sh start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir: dir.to_path_buf(), conf: dir.join("slurm.conf") }
    }

    /// A Slurm client command for this cluster; its stdout, asserting success.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `scontrol show job ID` (the empty string once Slurm has forgotten the job).
    fn job(&self, id: &str) -> String {
        let out = Command::new("scontrol")
            .args(["show", "job", id])
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `done` holds, checking twice a second, for at most `limit`.
    fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; squeue:\n{}",
                self.run("squeue", &[])
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/slurm/local-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

#[test]
#[ignore = "needs root and Slurm (slurm-wlm, munge); .ci/run installs them and runs it"]
fn tiny_sweep_runs_as_a_slurm_array_with_a_cancelled_and_requeued_task() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&tmp.path().join("cluster"));
    let dir = tmp.path().join("sweep");
    let d = dir.to_str().unwrap();
    let spec = repo().join("configs/sweeps/tiny.toml");
    common::ok(
        common::nc_vqvae(&["sweep", "expand", spec.to_str().unwrap(), "--out", d])
            .output()
            .unwrap(),
    );

    // The script as a user submits it, its GPU / memory requests replaced for this CPU-only node.
    let output = tmp.path().join("task-%a.out");
    let job = cluster
        .run(
            "sbatch",
            &[
                "--parsable",
                "--array=0-3",
                "--gres=none",
                "--cpus-per-task=1",
                "--mem=512M",
                "--open-mode=append",
                &format!("--output={}", output.display()),
                &format!("--export=ALL,NC_VQVAE={},BACKEND=cpu", env!("CARGO_BIN_EXE_nc-vqvae")),
                "scripts/slurm/sweep.sbatch",
                d,
            ],
        )
        .trim()
        .to_string();
    let task = |i: usize| format!("{job}_{i}");
    // All four run at once: that is what concurrent points of one dataset are.
    cluster.wait("four tasks running", Duration::from_secs(60), || {
        (0..4).all(|i| cluster.job(&task(i)).contains("JobState=RUNNING"))
    });

    // Task 1 is cancelled after its first stage-1 checkpoint, as a preempted task would be.
    let point = dir.join("points/0001/run");
    cluster.wait("point 1's first checkpoint", Duration::from_secs(600), || {
        common::checkpoint_epoch(&point.join("checkpoint.json")) >= 1
    });
    cluster.run("scancel", &[&task(1)]);
    cluster.wait("task 1 cancelled", Duration::from_secs(60), || {
        cluster.job(&task(1)).contains("JobState=CANCELLED")
    });
    assert!(!point.join("eval.json").exists(), "cancelled before it finished");
    // Requeued; Slurm holds a requeued job for two minutes, released at once here.
    cluster.run("scontrol", &["requeue", &task(1)]);
    cluster.run("scontrol", &["update", &format!("jobid={}", task(1)), "StartTime=now"]);

    cluster.wait("the array finished", Duration::from_secs(900), || {
        cluster.run("squeue", &["-h", "-j", &job]).trim().is_empty()
    });
    for i in 0..4 {
        let info = cluster.job(&task(i));
        let log =
            std::fs::read_to_string(tmp.path().join(format!("task-{i}.out"))).unwrap_or_default();
        assert!(
            info.contains("JobState=COMPLETED") && info.contains("ExitCode=0:0"),
            "task {i}:\n{info}\n{log}"
        );
    }
    assert!(cluster.job(&task(1)).contains("Restarts=1"), "task 1 ran twice");
    // Every task's log shows each phase's progress as plain lines (the log is a file, not a
    // terminal).
    for i in 0..4 {
        let log =
            std::fs::read_to_string(tmp.path().join(format!("task-{i}.out"))).unwrap_or_default();
        for phase in ["[stage 1] ", "[stage 2 (prior)] ", "[evaluation] "] {
            assert!(
                log.lines().any(|l| l.starts_with(phase) && l.ends_with(", done")),
                "task {i}, {phase}:\n{log}"
            );
        }
    }
    let lines = std::fs::read_to_string(point.join("metrics.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        2,
        "the requeued point resumed: each stage-1 epoch logged once"
    );
    // One FCN for the dataset, trained once by one of the tasks.
    assert_eq!(
        common::metrics_without_seconds(&dir.join("fcn/SonyAIBORobotSurface1.bpk.metrics.jsonl"))
            .len(),
        3
    );

    let out = common::ok(common::nc_vqvae(&["sweep", "collect", d]).output().unwrap());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("4 of 4 points finished"), "{md}");
    assert!(md.contains("### SVM probe accuracy"), "{md}");
}
