#!/usr/bin/env bash
# The whole GPU check in one script, for a machine with no network (docs/benchmarks.md, "GPU").
#
# Here (with network-free cargo and the repository):
#   scripts/gpu-check.sh --pack DIR
#       builds a stripped release binary with the cpu, wgpu and cuda backends and copies it, this
#       script, bench/pytorch_reference.py and FordA (from ../shared/data/ucr) into DIR, at most
#       64 MiB together.
# There (or anywhere, for the CPU form CI runs):
#   scripts/gpu-check.sh [--backend cuda|cpu] --out DIR [--bundle DIR] [--bin PATH] [--python PY]
#                        [--data-dir DIR] [--train-seconds N]
#       1. `bench --check` on each backend (cuda: cuda and wgpu; cpu: cpu): the tiny stage-1 steps
#          agree with the CPU's, then median step times at the reference shapes (cpu: tiny shapes);
#       2. bench/pytorch_reference.py on the same device and shapes (skipped without torch);
#       3. a real stage 1 (cuda: FordA NC-VQVAE with the thesis settings; cpu: the bundled
#          SyntheticControl) killed after --train-seconds, and its seconds per epoch, projected
#          to the thesis' 1000 epochs;
#       4. DIR/gpu-check.json (every number above, ratios, goals) and DIR/gpu-check.log.
#   On cuda the parts stop after 120 s each (three bench calls) and 120 s of training: 8 minutes at
#   most.
#   Exit status: 0 when every backend agreed with the CPU and the training run made progress,
#   1 otherwise, 2 on bad arguments.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
backend=cuda out="" bundle="" bin="" python=${PYTHON:-python3} data_dir="" train_seconds="" pack=""
usage() { echo "gpu-check.sh: $1 (see the header of $0)" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=${2:-}; shift 2 ;;
        --out) out=${2:-}; shift 2 ;;
        --bundle) bundle=${2:-}; shift 2 ;;
        --bin) bin=${2:-}; shift 2 ;;
        --python) python=${2:-}; shift 2 ;;
        --data-dir) data_dir=${2:-}; shift 2 ;;
        --train-seconds) train_seconds=${2:-}; shift 2 ;;
        --pack) pack=${2:-}; shift 2 ;;
        *) usage "unknown argument '$1'" ;;
    esac
done

if [ -n "$pack" ]; then
    repo=$(cd "$here/.." && pwd)
    forda=$repo/../shared/data/ucr/FordA
    [ -f "$forda/FordA_TRAIN.tsv.gz" ] || { echo "gpu-check.sh --pack: $forda/FordA_TRAIN.tsv.gz not found" >&2; exit 2; }
    (cd "$repo" && cargo build --release --quiet --features wgpu,cuda --bin nc-vqvae) || exit 1
    mkdir -p "$pack/bin" "$pack/bench" "$pack/data/FordA" || exit 1
    # Stripped (symbols and line tables are most of the 500 MB) and compressed (68 MB -> ~20).
    strip -o "$pack/bin/nc-vqvae" "$repo/target/release/nc-vqvae" && gzip -f -6 "$pack/bin/nc-vqvae" || exit 1
    cp "$here/gpu-check.sh" "$pack/" && cp "$repo/bench/pytorch_reference.py" "$pack/bench/" \
        && cp "$forda"/FordA_TRAIN.tsv.gz "$forda"/FordA_TEST.tsv.gz "$pack/data/FordA/" || exit 1
    # The Vulkan loader, which the GPU machine's image may lack (wgpu needs it; the driver's
    # Vulkan ICD comes with the NVIDIA driver there).
    mkdir -p "$pack/gl" && (cd "$pack/gl" && apt-get download libvulkan1 >/dev/null 2>&1) \
        || echo "gpu-check.sh --pack: could not download Debian's libvulkan1; wgpu will need the machine's own loader" >&2
    size=$(du -sm "$pack" | cut -f1)
    echo "packed $pack: ${size} MiB"
    [ "$size" -le 64 ] || { echo "gpu-check.sh --pack: $pack is ${size} MiB, over the 64 MiB a device call carries" >&2; exit 1; }
    exit 0
fi

[ -n "$out" ] || usage "--out DIR is required"
case "$backend" in cuda | cpu) ;; *) usage "--backend must be cuda or cpu, not '$backend'" ;; esac
command -v "$python" >/dev/null 2>&1 || usage "'$python' not found: the summary is written by Python 3 (--python)"
if [ -z "$bin" ]; then
    if [ -n "$bundle" ]; then
        bin=${TMPDIR:-/tmp}/nc-vqvae-gpu-check.$$
        gzip -dc "$bundle/bin/nc-vqvae.gz" >"$bin" && chmod +x "$bin" || usage "cannot unpack $bundle/bin/nc-vqvae.gz"
    else
        bin=$here/../target/release/nc-vqvae
    fi
fi
[ -x "$bin" ] || usage "no nc-vqvae binary at '$bin' (--bin, --bundle, or cargo build --release)"
reference=$here/../bench/pytorch_reference.py
[ -n "$bundle" ] && reference=$bundle/bench/pytorch_reference.py
if [ -z "$data_dir" ] && [ -n "$bundle" ]; then data_dir=$bundle/data; fi
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
log=$out/gpu-check.log
: >"$log"
say() { printf '%s\n' "$*" | tee -a "$log" >&2; }
started=$SECONDS

if [ "$backend" = cuda ]; then
    backends=(cuda wgpu)
    bench_args=(--warmup 2 --steps 6)
    torch_device=cuda
    dataset=FordA
    train_args=(--ssl barlow-twins)
    : "${train_seconds:=120}"
    bench_timeout=120
    # NVRTC and the driver come from the machine; the CUDA image keeps NVRTC beside the toolkit
    # or in PyTorch's wheels, which the loader does not search by default.
    nvrtc_dirs=$("$python" - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
roots += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
found = []
for r in roots:
    for f in glob.glob(os.path.join(r, "**", "libnvrtc.so*"), recursive=True):
        d = os.path.dirname(f)
        if d not in found:
            found.append(d)
print(":".join(found))
PY
)
    [ -n "$nvrtc_dirs" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$nvrtc_dirs
    if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && [ -n "$bundle" ] && ls "$bundle"/gl/*.deb >/dev/null 2>&1; then
        for f in "$bundle"/gl/*.deb; do dpkg -x "$f" / 2>>"$log"; done
        ldconfig 2>>"$log"
    fi
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>&1 | tee -a "$log" >&2
else
    backends=(cpu)
    bench_args=(--shapes 4x128 --warmup 1 --steps 2 --projector-dim 64)
    torch_device=cpu
    dataset=SyntheticControl
    train_args=(--ssl barlow-twins --set stage1.projector_dim=64)
    : "${train_seconds:=40}"
    bench_timeout=300
fi
say "gpu-check: backend $backend, binary $bin, output $out${LD_LIBRARY_PATH:+, LD_LIBRARY_PATH $LD_LIBRARY_PATH}"

for b in "${backends[@]}"; do
    say "== bench --check on $b"
    timeout "$bench_timeout" "$bin" --backend "$b" bench --check --json "${bench_args[@]}" >"$out/bench_$b.json" 2>>"$log"
    rc=$?
    say "   exit $rc after $((SECONDS - started)) s"
    [ $rc -eq 0 ] || echo "$rc" >"$out/bench_$b.failed"
done

say "== PyTorch reference on $torch_device"
if "$python" -c "import torch, sys; sys.exit(0 if '$torch_device' == 'cpu' or torch.cuda.is_available() else 1)" 2>>"$log"; then
    timeout "$bench_timeout" "$python" "$reference" --device "$torch_device" --json "${bench_args[@]}" >"$out/pytorch_$torch_device.json" 2>>"$log"
    say "   exit $? after $((SECONDS - started)) s"
else
    say "   skipped: $python has no torch (or no CUDA device)"
    rm -f "$out/pytorch_$torch_device.json"
fi

say "== stage 1 on $dataset, ${train_seconds} s on ${backends[0]}"
run_dir=$out/stage1_$dataset
rm -rf "$run_dir"
data_args=()
[ -n "$data_dir" ] && data_args=(--data-dir "$data_dir")
timeout --signal=KILL "$train_seconds" "$bin" --backend "${backends[0]}" stage1 "$dataset" "${data_args[@]}" \
    "${train_args[@]}" --epochs 1000 --out "$run_dir" >>"$log" 2>&1
say "   stopped with exit $? after $((SECONDS - started)) s"
[ -f "$run_dir/metrics.jsonl" ] && cp "$run_dir/metrics.jsonl" "$out/stage1_metrics.jsonl"

"$python" - "$out" "$backend" "$dataset" "$train_seconds" "${backends[@]}" <<'PY' 2>&1 | tee -a "$log" >&2
import json, os, statistics, sys
out, backend, dataset, train_seconds, backends = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
summary = {"backend": backend, "backends": {}, "pytorch": None, "training": None, "ok": True}
torch = load(f"pytorch_{'cuda' if backend == 'cuda' else 'cpu'}.json")
theirs = {(t["case"], t["batch"], t["length"]): t["median_ms"] for t in (torch or {}).get("results", [])}
if torch:
    summary["pytorch"] = {"device": torch.get("backend"), "results": torch["results"]}
goal = {"stage1_baseline": 1.0, "stage1_nc_vqvae": 0.6, "stage2_prior": 1.0, "sampling": 1.0}
lines = []
for b in backends:
    report = load(f"bench_{b}.json")
    if report is None:
        summary["backends"][b] = {"error": f"bench failed, see gpu-check.log"}
        summary["ok"] = False
        lines.append(f"{b}: bench failed (see gpu-check.log)")
        continue
    agreement = report.get("agreement")
    rows = []
    for t in report["results"]:
        p = theirs.get((t["case"], t["batch"], t["length"]))
        rows.append({**t, "pytorch_ms": p, "ratio": t["median_ms"] / p if p else None})
    summary["backends"][b] = {"agreement": agreement, "results": rows}
    if not agreement or not agreement.get("agrees"):
        summary["ok"] = False
    a = agreement or {}
    lines.append(f"{b}: agrees with the CPU: {a.get('agrees')} (loss difference {a.get('max_loss_difference', float('nan')):.2e}, gradient {a.get('max_gradient_difference', float('nan')):.2e})")
    lines.append("| case | batch × length | nc-vqvae ms | PyTorch ms | ratio | goal |")
    lines.append("|---|---|---|---|---|---|")
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        p = "-" if r["pytorch_ms"] is None else f"{r['pytorch_ms']:.2f}"
        lines.append(f"| {r['case']} | {r['batch']} × {r['length']} | {r['median_ms']:.2f} | {p} | {ratio} | <= {goal.get(r['case'], '-')} |")
epochs = []
try:
    with open(os.path.join(out, "stage1_metrics.jsonl")) as f:
        epochs = [json.loads(l) for l in f if l.strip()]
except OSError:
    pass
seconds = [e["seconds"] for e in epochs if "seconds" in e]
training = {"dataset": dataset, "budget_seconds": train_seconds, "epochs_done": len(seconds)}
if seconds:
    # The first epoch also compiles the kernels (GPU) and fills caches; the rest is the steady state.
    steady = seconds[1:] or seconds
    per_epoch = statistics.median(steady)
    training.update(first_epoch_seconds=seconds[0], seconds_per_epoch=per_epoch,
                    projected_1000_epochs_minutes=(seconds[0] + per_epoch * 999) / 60)
    lines.append(f"stage 1 on {dataset}: {len(seconds)} epochs in {train_seconds} s, first {seconds[0]:.1f} s, then median {per_epoch:.2f} s per epoch: 1000 epochs ≈ {training['projected_1000_epochs_minutes']:.1f} min")
else:
    summary["ok"] = False
    lines.append(f"stage 1 on {dataset}: no epoch finished in {train_seconds} s (see gpu-check.log)")
summary["training"] = training
tmp = os.path.join(out, f".gpu-check.json.{os.getpid()}")
with open(tmp, "w") as f:
    json.dump(summary, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, os.path.join(out, "gpu-check.json"))
print("\n".join(lines))
print("gpu-check: " + ("ok" if summary["ok"] else "FAILED") + f" ({os.path.join(out, 'gpu-check.json')})")
sys.exit(0 if summary["ok"] else 1)
PY
rc=$?
say "gpu-check: done in $((SECONDS - started)) s"
exit $rc
