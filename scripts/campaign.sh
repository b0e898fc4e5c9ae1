#!/usr/bin/env bash
# The thesis campaign (issue 37): the sweeps of configs/sweeps/thesis-cpu/ at the thesis' settings,
# one point at a time, at the lowest CPU priority, from a release binary kept aside so that work on
# the tree cannot change it mid-way. Stop it at any moment (Ctrl-C, kill, the end of a session):
# the next start finishes the interrupted point from its checkpoints and goes on.
#
#   scripts/campaign.sh start          # in the background (nohup, nice -n 19); log: WORK/campaign.log
#   scripts/campaign.sh run            # in the foreground
#   scripts/campaign.sh stop           # ends a background campaign (the point resumes next time)
#   scripts/campaign.sh status         # points done / left per block, the running one
#   scripts/campaign.sh install-binary # builds `cargo build --release` and keeps it as WORK/bin/nc-vqvae
#   scripts/campaign.sh copy           # copies the finished points' small files into results/thesis-cpu/
#
# WORK (weights, checkpoints, the binary) is $NC_VQVAE_CAMPAIGN (default ~/.cache/nc-vqvae/campaign),
# outside the work tree. Every finished point's small files (point.toml, config, summaries, metrics
# logs; no weights) are copied to results/thesis-cpu/BLOCK/ for committing. Data: $NC_VQVAE_DATA
# (default ../shared/data/ucr, then the bundled data).
#
# The order (the PLAN below): block 1 in seed order (seed 1 of every configuration first), then
# ECG5000 and TwoPatterns seeds 1-2, then their seeds 3-4, then the default-protocol block, then
# Wafer.
set -euo pipefail
repo=${NC_VQVAE_CAMPAIGN_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
work=${NC_VQVAE_CAMPAIGN:-$HOME/.cache/nc-vqvae/campaign}
specs="$repo/configs/sweeps/thesis-cpu"
results="$repo/results/thesis-cpu"
bin="$work/bin/nc-vqvae"
export NC_VQVAE_DATA=${NC_VQVAE_DATA:-$repo/../shared/data/ucr}

# BLOCK SEEDS: run BLOCK's points whose seed is in SEEDS, seed by seed, in index order.
PLAN=(
    "1-sony 1 2 3 4"
    "2-ecg5000 1 2"
    "3-twopatterns 1 2"
    "2-ecg5000 3 4"
    "3-twopatterns 3 4"
    "4-sony-default 1 2 3 4"
    "5-wafer 1 2"
    "5-wafer 3 4"
)

die() { echo "campaign.sh: $*" >&2; exit 2; }

# Points of BLOCK with seed S, one index a line.
indices() {
    local dir=$1 seed=$2 p
    for p in "$dir"/points/*/point.toml; do
        [ -f "$p" ] || continue
        # The point's own seed: the top-level key, before the first table.
        if awk '/^\[/ { exit } { print }' "$p" | grep -qx "seed = $seed"; then
            basename "$(dirname "$p")" | sed 's/^0*\([0-9]\)/\1/'
        fi
    done
}

finished() { # run folder
    [ -f "$1/stage1.json" ] && [ -f "$1/stage2.json" ] && [ -f "$1/eval.json" ]
}

# Copies the small files of BLOCK's finished points (and the sweep's spec and FCN summaries).
copy_block() {
    local block=$1 src="$work/$1" dst="$results/$1" p rel
    [ -f "$src/sweep.toml" ] || return 0
    mkdir -p "$dst"
    cp "$src/sweep.toml" "$dst/sweep.toml"
    for p in "$src"/points/*/; do
        finished "$p/run" || continue
        rel=${p#"$src"/}
        (cd "$src" && find "$rel" -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.toml' \) \
            ! -path '*/checkpoints/*' ! -path '*/eval.run/*' ! -name checkpoint.json -print0 | xargs -0 cp --parents -t "$dst")
    done
    if [ -d "$src/fcn" ]; then
        (cd "$src" && find fcn -maxdepth 1 -type f \( -name '*.json' -o -name '*.jsonl' \) -print0 | xargs -0 -r cp --parents -t "$dst")
    fi
}

expand_all() {
    local entry block
    for entry in "${PLAN[@]}"; do
        block=${entry%% *}
        [ -f "$work/$block/sweep.toml" ] || "$bin" sweep expand "$specs/$block.toml" --out "$work/$block" >/dev/null
        # The kept spec must still be the repository's: a changed spec is a new campaign block.
        cmp -s "$specs/$block.toml" "$work/$block/sweep.toml" || die "$work/$block/sweep.toml differs from $specs/$block.toml (a changed spec needs a new block name)"
    done
}

run_all() {
    # `nice` acts only within a scheduler autogroup (one per session where the kernel groups
    # them): a campaign started with setsid would otherwise take a full share of the CPU from the
    # builds beside it. The group's own nice value makes it yield there too.
    if [ -w /proc/self/autogroup ]; then echo 19 >/proc/self/autogroup 2>/dev/null || true; fi
    [ -x "$bin" ] || die "no campaign binary at $bin: run 'scripts/campaign.sh install-binary' first"
    expand_all
    local entry block seed i
    for entry in "${PLAN[@]}"; do
        read -r block seeds <<<"$entry"
        for seed in $seeds; do
            for i in $(indices "$work/$block" "$seed"); do
                finished "$work/$block/points/$(printf %04d "$i")/run" && continue
                echo "== $(date -u +%FT%TZ) $block point $i (seed $seed), binary $(cat "$work/bin/COMMIT" 2>/dev/null || echo '?')"
                nice -n 19 "$bin" sweep run "$work/$block" --index "$i"
                copy_block "$block"
                echo "== $(date -u +%FT%TZ) $block point $i finished"
            done
        done
    done
    echo "== $(date -u +%FT%TZ) every point of the plan is finished"
}

cmd=${1:-status}
mkdir -p "$work"
case "$cmd" in
install-binary)
    (cd "$repo" && cargo build --release --quiet)
    mkdir -p "$work/bin"
    cp "$repo/target/release/nc-vqvae" "$bin.tmp" && mv "$bin.tmp" "$bin"
    commit=$(cd "$repo" && git rev-parse --short HEAD)
    (cd "$repo" && git diff --quiet HEAD -- crates src Cargo.toml Cargo.lock) || commit="$commit+dirty"
    echo "$commit" > "$work/bin/COMMIT"
    echo "campaign binary: $bin ($commit)"
    ;;
run)
    run_all
    ;;
start)
    if [ -f "$work/campaign.pid" ] && kill -0 "$(cat "$work/campaign.pid")" 2>/dev/null; then
        echo "campaign already running (pid $(cat "$work/campaign.pid")); log: $work/campaign.log"
        exit 0
    fi
    [ -x "$bin" ] || die "no campaign binary at $bin: run 'scripts/campaign.sh install-binary' first"
    # A copy of this script runs, so editing the repository's copy cannot change a running campaign.
    cp "$0" "$work/campaign-running.sh"
    NC_VQVAE_CAMPAIGN_REPO=$repo nohup nice -n 19 setsid bash "$work/campaign-running.sh" run >>"$work/campaign.log" 2>&1 </dev/null &
    echo $! > "$work/campaign.pid"
    echo "campaign started (pid $!, nice 19); log: $work/campaign.log"
    ;;
stop)
    if [ -f "$work/campaign.pid" ] && kill -0 "$(cat "$work/campaign.pid")" 2>/dev/null; then
        kill -- -"$(cat "$work/campaign.pid")" 2>/dev/null || kill "$(cat "$work/campaign.pid")"
        echo "campaign stopped"
    else
        echo "no campaign running"
    fi
    rm -f "$work/campaign.pid"
    ;;
copy)
    for entry in "${PLAN[@]}"; do copy_block "${entry%% *}"; done
    echo "copied into $results"
    ;;
status)
    for entry in "${PLAN[@]}"; do
        read -r block seeds <<<"$entry"
        [ -d "$work/$block/points" ] || { echo "$block (seeds $seeds): not expanded"; continue; }
        done_n=0 left=0
        for seed in $seeds; do
            for i in $(indices "$work/$block" "$seed"); do
                if finished "$work/$block/points/$(printf %04d "$i")/run"; then done_n=$((done_n + 1)); else left=$((left + 1)); fi
            done
        done
        echo "$block (seeds $seeds): $done_n finished, $left left"
    done
    if [ -f "$work/campaign.pid" ] && kill -0 "$(cat "$work/campaign.pid")" 2>/dev/null; then
        echo "running (pid $(cat "$work/campaign.pid")): $(grep '^== ' "$work/campaign.log" | tail -1)"
    else
        echo "not running"
    fi
    ;;
*)
    die "unknown command '$cmd' (start, run, stop, status, install-binary, copy)"
    ;;
esac
