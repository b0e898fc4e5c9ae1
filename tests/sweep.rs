//! `nc-vqvae sweep` and `nc-vqvae run` end to end on the bundled SonyAIBORobotSurface1 with tiny
//! settings (configs/sweeps/tiny.toml): a 2 × 2 × 1 grid expands, runs its points at once (one
//! shared FCN, trained once) with one point killed with SIGKILL and rerun, and collects into tables; the main job writes its report, plots and
//! summary, and finishes an interrupted job when run again.

use std::path::Path;

mod common;

use common::{input_error, nc_vqvae, ok};

fn tiny_spec() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/sweeps/tiny.toml").display().to_string()
}

#[test]
fn tiny_sweep_expands_runs_with_a_killed_point_and_collects() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sweep");
    let d = dir.to_str().unwrap();
    let out = ok(nc_vqvae(&["sweep", "expand", &tiny_spec(), "--out", d]).output().unwrap());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("4 points"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    ok(nc_vqvae(&["sweep", "expand", &tiny_spec(), "--out", d]).output().unwrap()); // idempotent
    let other = tmp.path().join("other.toml");
    std::fs::write(&other, std::fs::read_to_string(tiny_spec()).unwrap() + "\n# another sweep\n")
        .unwrap();
    input_error(
        nc_vqvae(&["sweep", "expand", other.to_str().unwrap(), "--out", d]).output().unwrap(),
        "holds another sweep",
    );
    input_error(nc_vqvae(&["sweep", "run", d, "--index", "4"]).output().unwrap(), "no point 4");

    // All four points start at once, as the tasks of a job array do: they share the dataset's FCN,
    // which one of them trains while the others wait for it. Point 1 (baseline, seed 2) is killed
    // after its first stage-1 checkpoint while the others run, then rerun.
    let point = dir.join("points/0001/run");
    let others: Vec<_> = [0, 2, 3]
        .map(|i| nc_vqvae(&["sweep", "run", d, "--index", &i.to_string()]).spawn().unwrap())
        .into();
    common::kill_after_checkpoint(
        nc_vqvae(&["sweep", "run", d, "--index", "1"]).spawn().unwrap(),
        &point.join("checkpoint.json"),
        1,
    );
    assert!(!point.join("eval.json").exists());
    for child in others {
        ok(child.wait_with_output().unwrap());
    }
    // `status`: three points finished, point 1 interrupted in stage 1 with its time left measured
    // and its later phases estimated from the finished point of the same configuration.
    let status = |want_running: bool| {
        let out = ok(nc_vqvae(&["status", d, "--json"]).output().unwrap());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["kind"], "sweep");
        assert_eq!((v["total"].as_u64(), v["finished"].as_u64()), (Some(4), Some(3)), "{v}");
        assert_eq!(v["running"].as_u64(), Some(want_running as u64), "{v}");
        assert_eq!(v["interrupted"].as_u64(), Some(!want_running as u64), "{v}");
        let p1 = &v["points"][1];
        assert_eq!((p1["index"].as_u64(), p1["config"].as_str()), (Some(1), Some("baseline")));
        let stage1 = &p1["run"]["phases"][0];
        assert_eq!(stage1["epochs"], 2, "{p1}");
        assert!(stage1["epochs_done"].as_u64().unwrap() >= 1, "{p1}");
        assert!(stage1["state"] == if want_running { "running" } else { "interrupted" }, "{p1}");
        assert_eq!(p1["run"]["phases"][2]["state"], "pending");
        let left = v["seconds_left"].as_f64().unwrap();
        assert!(left > 0.0 && v["phases_without_estimate"] == 0, "every phase estimated: {v}");
        assert_eq!(v["points"][0]["run"]["state"], "finished");
        String::from_utf8(ok(nc_vqvae(&["status", d]).output().unwrap()).stdout).unwrap()
    };
    let text = status(false);
    assert!(
        text.contains("3 of 4 finished")
            && text.contains("point 1 (SonyAIBORobotSurface1 baseline seed 2): interrupted"),
        "{text}"
    );
    // A process on the point (its run.lock held) makes it running, and a second one is refused.
    let held = std::fs::File::open(point.join("run.lock")).unwrap();
    held.try_lock().unwrap();
    assert!(status(true).contains(": running: stage 1 running at epoch"));
    input_error(
        nc_vqvae(&["sweep", "run", d, "--index", "1"]).output().unwrap(),
        "another process is running this folder",
    );
    drop(held);
    // The rerun, its stderr a pipe: progress as plain lines, for every phase.
    let rerun = ok(nc_vqvae(&["sweep", "run", d, "--index", "1"]).output().unwrap());
    let log = String::from_utf8_lossy(&rerun.stderr);
    for phase in ["[stage 1] ", "[stage 2 (prior)] ", "[evaluation] "] {
        assert!(
            log.lines().any(|l| l.starts_with(phase) && l.ends_with(", done")),
            "{phase}: {log}"
        );
    }
    assert!(log.contains("[stage 1] 2 steps (resumed at step"), "{log}");
    assert!(log.contains("[evaluation] drawing 256 unconditional series"), "{log}");
    // One FCN, trained once: its log holds each of its 3 epochs once, no run folder or temporary
    // file is left beside it (the lock file stays, empty).
    let fcn = dir.join("fcn");
    let mut names: Vec<String> = std::fs::read_dir(&fcn)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want = [
        "SonyAIBORobotSurface1.bpk",
        "SonyAIBORobotSurface1.bpk.json",
        "SonyAIBORobotSurface1.bpk.lock",
        "SonyAIBORobotSurface1.bpk.metrics.jsonl",
    ];
    assert_eq!(names, want);
    assert_eq!(common::metrics_without_seconds(&fcn.join(want[3])).len(), 3);
    let lines = std::fs::read_to_string(point.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "the resumed stage 1 logged each epoch once");
    // A finished point is skipped: its results are not touched.
    let before = std::fs::read(point.join("eval.json")).unwrap();
    let out = ok(nc_vqvae(&["sweep", "run", d, "--index", "1", "--json"]).output().unwrap());
    assert_eq!(std::fs::read(point.join("eval.json")).unwrap(), before);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["seed"].as_u64(), v["ssl"].as_str()), (Some(2), Some("none")));

    let out = ok(nc_vqvae(&["sweep", "collect", d]).output().unwrap());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("4 of 4 points finished"), "{md}");
    assert!(
        md.contains("| dataset | baseline | barlow-twins/slice |")
            && md.contains("### SVM probe accuracy"),
        "{md}"
    );
    let svm_row = md
        .split("### SVM probe accuracy")
        .nth(1)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("| SonyAIBORobotSurface1"))
        .unwrap();
    assert_eq!(svm_row.matches("(2)").count(), 2, "two seeds per cell: {svm_row}");
    // The CSV holds every point, and the table's mean is the mean of its rows.
    let csv = std::fs::read_to_string(dir.join("points.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    let svm: Vec<f64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.contains(",baseline,"))
        .map(|l| l.split(',').nth(9).unwrap().parse().unwrap())
        .collect();
    let tables = std::fs::read_to_string(dir.join("tables.csv")).unwrap();
    let row =
        tables.lines().find(|l| l.starts_with("svm,SonyAIBORobotSurface1,baseline,")).unwrap();
    let mean: f64 = row.split(',').nth(4).unwrap().parse().unwrap();
    assert!((mean - (svm[0] + svm[1]) / 2.0).abs() < 1e-9, "{row} vs {svm:?}");
}

#[test]
fn main_job_killed_inside_each_part_ends_with_the_uninterrupted_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("job");
    let o = out.to_str().unwrap();
    let cfg = tiny_spec();
    // The tiny spec's settings tables double as a job config; its [grid] table is not one.
    let config = tmp.path().join("tiny.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let settings: String =
        text.split("[stage1]").nth(1).map(|rest| format!("[stage1]{rest}")).unwrap();
    std::fs::write(&config, settings).unwrap();
    let sets = ["--set", "fcn.checkpoint_every=1", "--set", "stage2.checkpoint_every=1"];
    let args: Vec<&str> =
        ["run", "SonyAIBORobotSurface1", "--out", o, "--config", config.to_str().unwrap()]
            .into_iter()
            .chain(sets)
            .collect();
    // The same job without interruption, for comparison.
    let whole = tmp.path().join("whole");
    let mut whole_args = args.clone();
    whole_args[3] = whole.to_str().unwrap();
    ok(nc_vqvae(&whole_args).output().unwrap());

    // Killed with SIGKILL inside each part in turn, then run again, in one folder: inside the FCN's
    // training, the baseline's stage 1 and stage 2, the NC-VQVAE model's stage 1 and evaluation
    // (sampling, FID / IS, CAS training), and the report's plots. The last run finishes the job.
    let baseline_eval = out.join("baseline/eval.json");
    type KillPoint<'a> = (&'a str, Box<dyn Fn() -> bool + 'a>);
    let kill_points: [KillPoint; 6] = [
        (
            "FCN training",
            Box::new(|| common::checkpoint_epoch(&out.join("fcn.bpk.run/checkpoint.json")) >= 1),
        ),
        (
            "baseline stage 1",
            Box::new(|| common::checkpoint_epoch(&out.join("baseline/checkpoint.json")) >= 1),
        ),
        (
            "baseline stage 2",
            Box::new(|| {
                common::checkpoint_epoch(&out.join("baseline/stage2/checkpoint.json")) >= 1
            }),
        ),
        (
            "NC-VQVAE stage 1",
            Box::new(|| common::checkpoint_epoch(&out.join("nc_vqvae/checkpoint.json")) >= 1),
        ),
        ("NC-VQVAE evaluation", Box::new(|| out.join("nc_vqvae/stage2.json").exists())),
        ("report and plots", Box::new(|| out.join("summary.json").exists())),
    ];
    let mut baseline_eval_bytes = None;
    for (part, reached) in &kill_points {
        common::kill_when(nc_vqvae(&args).spawn().unwrap(), part, reached);
        assert!(!out.join("report.md").exists(), "killed in {part}, before the end");
        if *part == "NC-VQVAE stage 1" {
            baseline_eval_bytes = Some(std::fs::read(&baseline_eval).unwrap());
        }
    }
    ok(nc_vqvae(&args).output().unwrap());
    assert_eq!(
        std::fs::read(&baseline_eval).ok(),
        baseline_eval_bytes,
        "the finished model was not redone"
    );
    // Every number equals the uninterrupted job's (CPU, same seed; wall-clock fields aside).
    assert_eq!(
        common::json_without_seconds(&out.join("summary.json")),
        common::json_without_seconds(&whole.join("summary.json"))
    );
    for file in [
        "baseline/metrics.jsonl",
        "nc_vqvae/metrics.jsonl",
        "baseline/stage2/metrics.jsonl",
        "fcn.bpk.metrics.jsonl",
    ] {
        assert_eq!(
            common::metrics_without_seconds(&out.join(file)),
            common::metrics_without_seconds(&whole.join(file)),
            "{file}"
        );
    }

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for model in ["baseline", "nc_vqvae"] {
        for key in [
            "recon_mse_time",
            "recon_mse_timefreq",
            "probe_knn_acc",
            "probe_svm_acc",
            "codebook_perplexity",
            "epochs",
            "fid",
            "is_mean",
            "is_std",
            "cas",
        ] {
            assert!(summary[model][key].is_number(), "{model}.{key} in {summary}");
        }
    }
    assert_eq!(summary["nc_vqvae"]["ssl"], "barlow-twins");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for png in [
        "scores",
        "curves",
        "reconstructions",
        "samples_baseline",
        "samples_nc_vqvae",
        "token_grids",
        "token_usage",
    ] {
        assert!(report.contains(&format!("plots/{png}.png")), "{png} linked");
        let bytes = std::fs::read(out.join("plots").join(format!("{png}.png"))).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{png}: {} bytes",
            bytes.len()
        );
    }
    let svm = summary["baseline"]["probe_svm_acc"].as_f64().unwrap();
    assert!(report.contains(&format!("{svm:.3}")), "the report shows the summary's numbers");

    // Another config in the same folder is refused.
    let mut other = args.clone();
    other.extend(["--seed", "9"]);
    input_error(nc_vqvae(&other).output().unwrap(), "different config");
}
