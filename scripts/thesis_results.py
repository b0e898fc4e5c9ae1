#!/usr/bin/env python3
"""Carries the thesis' per-seed result files into one CSV (results/thesis/per-seed.csv).

Source: the thesis repository (github.com/erlendlokna/Generative-SSL-VQVAE-modelling), its
results/<Dataset>/{stage1,stage2,cas}/<config>_summaries.csv, one row per run (4 seeds per cell;
the files name runs by experiment-tracker id, not by seed, so rows are numbered in file order).

    python3 scripts/thesis_results.py GIT_DIR [COMMIT] > results/thesis/per-seed.csv

GIT_DIR is a clone (or bare mirror) of that repository; COMMIT defaults to HEAD.
"""
import csv
import io
import subprocess
import sys

CONFIGS = {
    "regular": "baseline",
    "barlowtwins_warp": "barlow-twins/warp",
    "barlowtwins_slice": "barlow-twins/slice",
    "barlowtwins_gauss": "barlow-twins/gauss",
    "vibcreg_warp": "vibcreg/warp",
    "vibcreg_slice": "vibcreg/slice",
    "vibcreg_gauss": "vibcreg/gauss",
}
# (stage folder, file suffix, column in the file, our metric key)
COLUMNS = [
    ("stage1", "_summaries.csv", "val_loss", "recon"),
    ("stage1", "_summaries.csv", "knn_accuracy", "knn"),
    ("stage1", "_summaries.csv", "svm_accuracy", "svm"),
    ("stage1", "_summaries.csv", "training_time", "stage1_seconds"),
    ("stage2", "_summaries.csv", "FID", "fid"),
    ("stage2", "_summaries.csv", "IS_mean", "is"),
    ("cas", "_cas_summaries.csv", "val_acc_ema", "cas"),
]


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def main():
    repo = sys.argv[1]
    commit = sys.argv[2] if len(sys.argv) > 2 else "HEAD"
    commit = git(repo, "rev-parse", commit).strip()
    files = set(git(repo, "ls-tree", "-r", "--name-only", commit, "results").split())
    datasets = sorted({f.split("/")[1] for f in files if f.count("/") >= 3})
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["dataset", "config", "metric", "run", "value", "source"])
    for dataset in datasets:
        for name, config in CONFIGS.items():
            for stage, suffix, column, metric in COLUMNS:
                path = f"results/{dataset}/{stage}/{name}{suffix}"
                if path not in files:
                    continue
                rows = list(csv.DictReader(io.StringIO(git(repo, "show", f"{commit}:{path}"))))
                for i, row in enumerate(rows, 1):
                    if row.get(column, "") != "":
                        out.writerow([dataset, config, metric, i, row[column], f"{path}@{commit[:12]}"])


if __name__ == "__main__":
    main()
