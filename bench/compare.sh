#!/usr/bin/env bash
# Runs `nc-vqvae bench` and bench/pytorch_reference.py at the same shapes and thread count and
# prints, per case and shape, both median step times and the ratio nc-vqvae / PyTorch, next to
# the goals of the speed issue (stage-1 baseline, stage-2 prior and sampling <= 1.0, stage-1
# NC-VQVAE <= 0.6), with each side's CPU utilisation (CPU time / wall time over the timed steps) and
# peak resident memory per case, and our side's GEMM work per step with its share of our CPU time
# (thread time in the kernels' products over median step × CPU / wall; an estimate, as the median
# step and the mean utilisation come from the same steps).
#
#   bench/compare.sh [--threads N] [--python PYTHON] [--backend cpu|wgpu|cuda] [-- extra bench args]
#
# Extra arguments after `--` go to both programs (e.g. --cases stage1_baseline --shapes 32x140 --steps 3).
# PYTHON must have torch installed (pip install -r bench/requirements.txt). Outputs are kept in
# bench/out/ (rust.json, pytorch.json).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${RAYON_NUM_THREADS:-$(nproc)}
python=${PYTHON:-python3}
backend=cpu
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "compare.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done
if ! "$python" -c 'import torch' 2>/dev/null; then
    echo "compare.sh: '$python' has no torch; pip install -r bench/requirements.txt, or pass --python" >&2
    exit 2
fi
features=()
[ "$backend" != cpu ] && features=(--features "$backend")
mkdir -p bench/out
cargo build --release --quiet "${features[@]}"
RAYON_NUM_THREADS=$threads ./target/release/nc-vqvae --backend "$backend" bench --json "$@" > bench/out/rust.json
torch_device=cpu
[ "$backend" = cuda ] && torch_device=cuda
"$python" bench/pytorch_reference.py --threads "$threads" --device "$torch_device" --json "$@" > bench/out/pytorch.json
"$python" - bench/out/rust.json bench/out/pytorch.json <<'PY'
import json, sys
rust, torch = (json.load(open(p)) for p in sys.argv[1:3])
goal = {"stage1_baseline": 1.0, "stage1_nc_vqvae": 0.6, "stage2_prior": 1.0, "sampling": 1.0}
print(f"nc-vqvae ({rust['backend']}, {rust['threads']} threads) vs PyTorch ({torch['backend']}, {torch['threads']} threads)\n")
print("| case | batch × length | nc-vqvae ms | PyTorch ms | ratio | goal | CPU / wall (ours, PyTorch) | peak RSS MiB (ours, PyTorch) | our GEMMs: GFLOP / step, share of CPU time |")
print("|---|---|---|---|---|---|---|---|---|")
def fmt(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"
others = {(t["case"], t["batch"], t["length"]): t for t in torch["results"]}
for t in rust["results"]:
    key = (t["case"], t["batch"], t["length"])
    o = others.get(key)
    p = o["median_ms"] if o else None
    ratio = f"{t['median_ms'] / p:.2f}" if p else "-"
    g = goal.get(t["case"])
    verdict = "-" if g is None or p is None else (f"<= {g} met" if t["median_ms"] / p <= g else f"<= {g} not met")
    cpu = f"{fmt(t.get('cpu_utilisation'), 2)}, {fmt(o.get('cpu_utilisation') if o else None, 2)}"
    rss = f"{fmt(t.get('peak_rss_mib'), 0)}, {fmt(o.get('peak_rss_mib') if o else None, 0)}"
    gflop, gemm_ms, util = t.get("gemm_gflop_per_step"), t.get("gemm_thread_ms_per_step"), t.get("cpu_utilisation")
    gemm = "-" if gflop is None else f"{gflop:.1f}" + ("" if not (gemm_ms and util) else f", {100 * gemm_ms / (t['median_ms'] * util):.0f} %")
    print(f"| {t['case']} | {t['batch']} × {t['length']} | {t['median_ms']:.1f} | {fmt(p, 1)} | {ratio} | {verdict} | {cpu} | {rss} | {gemm} |")
PY
