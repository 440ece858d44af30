#!/usr/bin/env bash
# Fuzzes the CIFAR-10 reader and the checkpoint reader for SECONDS each (default 60).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1
# unlocks the sanitizer flags it uses. Seeds the corpora with valid files first.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/cifar10_reader corpus/checkpoint_reader
# Seeds: one valid CIFAR-10 record, and a valid checkpoint.
python3 - <<'PY'
import struct, json
rec = bytes([3]) + bytes(range(256)) * 12
open("corpus/cifar10_reader/one_record.bin", "wb").write(rec)
hdr = json.dumps({"__metadata__": {"epoch": "1"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open("corpus/checkpoint_reader/small.safetensors", "wb").write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<2f", 1.0, -2.0))
PY
for target in cifar10_reader checkpoint_reader; do
  echo "== fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=20000 2>&1 | tail -n 12
done
