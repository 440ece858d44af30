#!/usr/bin/env bash
# Training and inference images/s of ferroconv and PyTorch on the same configurations,
# alternately, PAIRS times, then the median ratio (ours / PyTorch) per configuration.
#
#   tools/side_by_side.sh PYTHON [PAIRS] [CONFIGS]
#
# PYTHON: a Python with torch (e.g. ~/.cache/ferroconv-torch-venv/bin/python); the
# reference script is ../shared/reference/throughput_pytorch.py. Both sides use 2 threads.
# Writes runs/side_by_side/{ours,torch}-N.json and prints a table. Run it alone: on two
# cores any other busy process skews both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:?usage: tools/side_by_side.sh PYTHON [PAIRS] [CONFIGS]}"
pairs="${2:-3}"
configs="${3:-seed@4,seed@64,tfcnn@64,resnet@128,airbench@512,airbench94@512}"
out=runs/side_by_side; mkdir -p "$out"
cargo build --release --example throughput --quiet
lscpu | grep -E "Model name|Flags" | sed 's/Flags:.*\(avx512f\).*/Flags: ... avx512f .../' | head -2
for i in $(seq 1 "$pairs"); do
  target/release/examples/throughput --threads 2 --configs "$configs" --json "$out/ours-$i.json" >/dev/null
  "$py" ../shared/reference/throughput_pytorch.py --threads 2 --configs "$configs" \
    --skip-matmul --json-out "$out/torch-$i.json" >/dev/null
  echo "pair $i done"
done
"$py" - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
rows = {}
for i in range(1, pairs + 1):
    ours = {}
    for line in open(f"{out}/ours-{i}.json"):
        r = json.loads(line)
        ours[r["config"]] = (r["train_images_per_sec"], r["infer_images_per_sec"])
    torch = json.loads(open(f"{out}/torch-{i}.json").read())
    for m in torch["models"]:
        cfg = f"{m['model']}@{m['batch']}"
        if cfg in ours:
            t, f = ours[cfg]
            rows.setdefault(cfg, []).append((t, f, m["train_img_per_s"], m["infer_img_per_s"]))
print(f"{'config':<15} {'ours train':>10} {'torch train':>11} {'ratio':>6} {'ours infer':>10} {'torch infer':>11} {'ratio':>6}  (medians of {pairs} pairs; ratio = median of per-pair ratios)")
for cfg, rs in rows.items():
    med = lambda k: statistics.median(r[k] for r in rs)
    rt = statistics.median(r[0] / r[2] for r in rs)
    ri = statistics.median(r[1] / r[3] for r in rs)
    lo_t, hi_t = min(r[0] / r[2] for r in rs), max(r[0] / r[2] for r in rs)
    print(f"{cfg:<15} {med(0):10.1f} {med(2):11.1f} {rt:6.2f} {med(1):10.1f} {med(3):11.1f} {ri:6.2f}  train {lo_t:.2f}-{hi_t:.2f}")
PY
