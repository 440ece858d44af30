#!/usr/bin/env bash
# Inference images/s of ferroconv (examples/infer_bench.rs, batch norm folded and ReLUs
# fused) and PyTorch (tools/infer_pytorch.py, eval + torch.inference_mode()), 2 threads
# each, resnet50 and vgg16 at 224×224, batch 1 and 32, run alternately PAIRS times; then a
# table of medians and ours/PyTorch ratios (median of the per-pair ratios, with the range).
#
#   tools/infer_side_by_side.sh [PYTHON] [PAIRS]
#
# PYTHON defaults to ~/.cache/ferroconv-torch-venv/bin/python, PAIRS to 2 (estimated 4–5
# minutes on a quiet 2-core Xeon, building excluded: one warm-up and 2 timed passes per
# batch-32 point, at least 1.5 s of passes per batch-1 point). Writes runs/infer_side_by_side/.
# Run it alone: on two cores any other busy process skews both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-$HOME/.cache/ferroconv-torch-venv/bin/python}"
pairs="${2:-2}"
configs="resnet50@1 resnet50@32 vgg16@1 vgg16@32"
out=runs/infer_side_by_side; mkdir -p "$out"
cargo build --release --example infer_bench --quiet
lscpu | grep -E "Model name" || true
grep -o -w -E "avx512f|avx2|fma" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
uptime
for i in $(seq 1 "$pairs"); do
  for cfg in $configs; do
    arch="${cfg%@*}"; batch="${cfg#*@}"
    # Fewer timed passes at batch 32 (each takes seconds); both sides alike.
    iters=5; [ "$batch" -gt 1 ] && iters=2
    target/release/examples/infer_bench --arch "$arch" --batch "$batch" --threads 2 \
      --iters "$iters" --json "$out/ours-$cfg-$i.json"
    "$py" tools/infer_pytorch.py --arch "$arch" --batch "$batch" --threads 2 \
      --iters "$iters" --json "$out/torch-$cfg-$i.json"
  done
  echo "pair $i done ($(uptime | sed 's/.*load/load/'))"
done
"$py" - "$out" "$pairs" "$configs" <<'PY'
import json, statistics, sys
out, pairs, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
print(f"{'config':<13} {'ours img/s':>10} {'torch img/s':>11} {'ratio':>6} {'range':>11}"
      f"   (medians of {pairs} pairs; ratio = ours / PyTorch, median of per-pair ratios)")
for cfg in configs:
    o = [json.load(open(f"{out}/ours-{cfg}-{i}.json"))["images_per_sec"] for i in range(1, pairs + 1)]
    t = [json.load(open(f"{out}/torch-{cfg}-{i}.json"))["images_per_sec"] for i in range(1, pairs + 1)]
    r = [a / b for a, b in zip(o, t)]
    print(f"{cfg:<13} {statistics.median(o):10.2f} {statistics.median(t):11.2f} "
          f"{statistics.median(r):6.2f} {min(r):5.2f}-{max(r):.2f}")
PY
