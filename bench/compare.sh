#!/usr/bin/env bash
# Runs `nc-vqvae bench` and bench/pytorch_reference.py at the same shapes and thread count and
# prints, per case and shape, both median step times and the ratio nc-vqvae / PyTorch, next to
# the goals of the speed issue (stage-1 baseline, stage-2 prior and sampling <= 1.0, stage-1
# NC-VQVAE <= 0.6), with each side's CPU utilisation (CPU time / wall time over the timed steps) and
# peak resident memory per case, and our side's GEMM work per step with its share of our CPU time
# (thread time in the kernels' products over median step × CPU / wall; an estimate, as the median
# step and the mean utilisation come from the same steps).
#
#   bench/compare.sh [--threads N] [--python PYTHON] [--backend cpu|wgpu|cuda] [--cases LIST]
#                    [--rounds R] [-- extra bench args]
#
# --cases LIST (comma-separated) limits both programs to those cases. --rounds R (R > 1) runs each
# case R times, ours and PyTorch's one after the other (ours first in odd rounds, PyTorch's first in
# even ones), and reports per shape the median of the R per-round ratios with all of them: on a host
# whose speed drifts over minutes a ratio of two runs seconds apart is steadier than one of two
# runs a whole table apart (times and CPU / wall are then medians over the rounds, memory the
# largest). Extra arguments after `--` go to both programs (e.g. --shapes 32x140 --steps 3).
# PYTHON must have torch installed (pip install -r bench/requirements.txt). Outputs are kept in
# bench/out/ (rust.json, pytorch.json; with --rounds, bench/out/rounds/).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${RAYON_NUM_THREADS:-$(nproc)}
python=${PYTHON:-python3}
backend=cpu
cases=""
rounds=1
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --cases) cases=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "compare.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "compare.sh: --rounds wants a positive whole number, not '$rounds'" >&2
    exit 2
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
    echo "compare.sh: '$python' has no torch; pip install -r bench/requirements.txt, or pass --python" >&2
    exit 2
fi
features=()
[ "$backend" != cpu ] && features=(--features "$backend")
torch_device=cpu
[ "$backend" = cuda ] && torch_device=cuda
mkdir -p bench/out
cargo build --release --quiet "${features[@]}"
ours() { RAYON_NUM_THREADS=$threads ./target/release/nc-vqvae --backend "$backend" bench --json "$@"; }
theirs() { "$python" bench/pytorch_reference.py --threads "$threads" --device "$torch_device" --json "$@"; }
pairs=()
if [ "$rounds" = 1 ]; then
    case_args=()
    [ -n "$cases" ] && case_args=(--cases "$cases")
    ours "${case_args[@]}" "$@" > bench/out/rust.json
    theirs "${case_args[@]}" "$@" > bench/out/pytorch.json
    pairs=("bench/out/rust.json::bench/out/pytorch.json")
else
    rm -rf bench/out/rounds
    mkdir -p bench/out/rounds
    IFS=, read -ra list <<< "${cases:-stage1_baseline,stage1_nc_vqvae,stage2_prior,sampling}"
    for r in $(seq 1 "$rounds"); do
        for c in "${list[@]}"; do
            rust=bench/out/rounds/rust-$c-$r.json
            torch=bench/out/rounds/pytorch-$c-$r.json
            if [ $((r % 2)) = 1 ]; then
                ours --cases "$c" "$@" > "$rust"
                theirs --cases "$c" "$@" > "$torch"
            else
                theirs --cases "$c" "$@" > "$torch"
                ours --cases "$c" "$@" > "$rust"
            fi
            pairs+=("$rust::$torch")
        done
    done
fi
"$python" - "${pairs[@]}" <<'PY'
import json, statistics, sys
goal = {"stage1_baseline": 1.0, "stage1_nc_vqvae": 0.6, "stage2_prior": 1.0, "sampling": 1.0}
rows, order, first = {}, [], None
for pair in sys.argv[1:]:
    rust_path, torch_path = pair.split("::")
    rust, torch = json.load(open(rust_path)), json.load(open(torch_path))
    first = first or (rust, torch)
    others = {(t["case"], t["batch"], t["length"]): t for t in torch["results"]}
    for t in rust["results"]:
        key = (t["case"], t["batch"], t["length"])
        if key not in rows:
            rows[key] = []
            order.append(key)
        rows[key].append((t, others.get(key)))
rust, torch = first
rounds = max(len(v) for v in rows.values())
print(f"nc-vqvae ({rust['backend']}, {rust['threads']} threads) vs PyTorch ({torch['backend']}, {torch['threads']} threads)"
      + (f", median of {rounds} rounds" if rounds > 1 else "") + "\n")
per_round = " ratio per round |" if rounds > 1 else ""
print(f"| case | batch × length | nc-vqvae ms | PyTorch ms | ratio |{per_round} goal | CPU / wall (ours, PyTorch) | peak RSS MiB (ours, PyTorch) | our GEMMs: GFLOP / step, share of CPU time |")
print("|---|---|---|---|---|" + ("---|" if rounds > 1 else "") + "---|---|---|---|")
def fmt(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
for key in order:
    runs = rows[key]
    ours = median(t["median_ms"] for t, _ in runs)
    theirs = median(o["median_ms"] for _, o in runs if o)
    ratios = [t["median_ms"] / o["median_ms"] for t, o in runs if o]
    ratio = median(ratios)
    g = goal.get(key[0])
    verdict = "-" if g is None or ratio is None else (f"<= {g} met" if ratio <= g else f"<= {g} not met")
    spin = median(t.get('spin_utilisation') for t, _ in runs)
    cpu = f"{fmt(median(t.get('cpu_utilisation') for t, _ in runs), 2)}" + (f" ({spin:.2f} spinning)" if spin else "") + f", {fmt(median(o.get('cpu_utilisation') for _, o in runs if o), 2)}"
    peak = lambda values: max((v for v in values if v is not None), default=None)
    rss = f"{fmt(peak(t.get('peak_rss_mib') for t, _ in runs), 0)}, {fmt(peak(o.get('peak_rss_mib') for _, o in runs if o), 0)}"
    gflop = runs[0][0].get("gemm_gflop_per_step")
    # Against the CPU time that was work (the spinning workers' idle time taken out).
    shares = [100 * t["gemm_thread_ms_per_step"] / (t["median_ms"] * (t["cpu_utilisation"] - (t.get("spin_utilisation") or 0))) for t, _ in runs if t.get("gemm_thread_ms_per_step") and t.get("cpu_utilisation")]
    gemm = "-" if gflop is None else f"{gflop:.1f}" + (f", {median(shares):.0f} %" if shares else "")
    all_ratios = f" {', '.join(f'{r:.2f}' for r in ratios)} |" if rounds > 1 else ""
    print(f"| {key[0]} | {key[1]} × {key[2]} | {fmt(ours, 1)} | {fmt(theirs, 1)} | {fmt(ratio, 2)} |{all_ratios} {verdict} | {cpu} | {rss} | {gemm} |")
PY
