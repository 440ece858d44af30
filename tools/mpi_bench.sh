#!/usr/bin/env bash
# Data-parallel overhead on one machine: 2 MPI ranks × 1 thread against 1 process ×
# 2 threads (and 1 × 1 for reference), training images/s of one epoch, for the article's
# net (`--model seed`, batch 64) and the fast preset (`--model fast`, batch 512).
# Run on a quiet machine with ≥ 2 cores: tools/mpi_bench.sh   (about 3 minutes)
# Needs Open MPI (apt-get install libopenmpi-dev openmpi-bin libclang-dev) and CIFAR-10
# in $CIFAR10_DIR (default ./data/cifar-10-batches-bin). REPEAT=N runs each N times
# (default 2) and keeps the best. YIELD=1 makes waiting ranks yield their core
# (--mca mpi_yield_when_idle 1: for a machine whose cores other work shares).
set -euo pipefail
cd "$(dirname "$0")/.."
export CIFAR10_DIR="${CIFAR10_DIR:-data/cifar-10-batches-bin}"
repeat="${REPEAT:-2}"
cargo build --release --quiet --features mpi --example cifar10
bin=target/release/examples/cifar10
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mpi=(mpirun --oversubscribe --bind-to none -np 2)
[ "$(id -u)" = 0 ] && mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)
[ "${YIELD:-0}" = 1 ] && mpi+=(--mca mpi_yield_when_idle 1)

# images/s of the epoch: best of $repeat runs of "$@".
rate() {
  local best=0 r
  for _ in $(seq "$repeat"); do
    rm -f "$tmp/j"
    "$@" --limit-test 100 --epochs 1 --json "$tmp/j" >/dev/null 2>"$tmp/err" \
      || { cat "$tmp/err" >&2; exit 1; }
    r=$(sed 's/.*"images_per_sec":\([0-9.e+-]*\).*/\1/' "$tmp/j")
    best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$best"
}

echo "$(date -u +%FT%TZ)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-24s %12s %12s %12s %10s\n' preset "1×1 img/s" "1×2 img/s" "2 ranks×1" overhead
for spec in "seed 64 16384" "fast 512 4096"; do
  set -- $spec
  flags=(--model "$1" --batch-size "$2" --limit-train "$3")
  one=$(rate "$bin" "${flags[@]}" --threads 1)
  two=$(rate "$bin" "${flags[@]}" --threads 2)
  ranks=$(rate "${mpi[@]}" "$bin" "${flags[@]}" --threads 1)
  over=$(awk -v t="$two" -v r="$ranks" 'BEGIN { printf "%+.1f%%", 100 * (t / r - 1) }')
  printf '%-24s %12.0f %12.0f %12.0f %10s\n' "$1 (batch $2, $3 img)" "$one" "$two" "$ranks" "$over"
done
echo "overhead = (1 process × 2 threads) / (2 ranks × 1 thread) − 1: the time 2 ranks lose"
