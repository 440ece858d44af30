#!/usr/bin/env bash
# Bytes moved per training step, counted by valgrind's cachegrind on a simulated cache of
# this machine's CPU (for guests without hardware performance counters; issue 13 §2).
#
# Runs `examples/step_traffic` twice under cachegrind, with S1 and S2 measured steps (same
# warm-up), and divides the difference of the two runs' counts by S2 − S1: set-up,
# first-touch allocation and warm-up cancel, leaving the cost of one steady-state step.
# Printed per step: data reads and writes (Dr, Dw, instructions' memory accesses), D1
# misses (D1mr + D1mw) × 64 B = bytes filled into L1d from the level below, and LL misses
# (DLmr + DLmw) × 64 B = bytes filled from beyond the simulated last level.
#
# The simulated caches default to AMD Zen 5 (per core): L1i 32 KiB 8-way, L1d 48 KiB
# 12-way, L2 1 MiB 16-way as the last level (`--ll l2`); `--ll l3` takes the 32 MiB
# 16-way L3 as the last level instead, `--ll both` runs each. 64-byte lines throughout.
#
# Caveats: cachegrind counts line fills (misses), not write-backs of dirty lines, nor
# hardware prefetches; it simulates one core's private caches with LRU replacement and
# inclusive levels, and counts every thread of the process together (step_traffic runs
# one). Valgrind 3.19 reports no AVX-512 in its CPUID, so the AVX2 (or portable) builds run.
# Valgrind runs each FMA lane through a slow helper: under it a step of seed@4 takes about
# 0.5 s, one of airbench@8 25 s (Winograd) to 55 s (im2col); choose the step counts to suit.
#
# Usage: tools/bytes_moved.sh [--s1 N] [--s2 N] [--ll l2|l3|both] [--bin PATH] [--no-build]
#            [--top N] [--out DIR] [-- step_traffic options...]
# e.g.   FERROCONV_CONV_ALGO=im2col tools/bytes_moved.sh --s1 10 --s2 60 -- --model seed --batch 4
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: tools/bytes_moved.sh [options] [-- step_traffic options...]

Runs examples/step_traffic under valgrind --tool=cachegrind with S1 and then S2 measured
training steps and prints the per-step difference: data reads/writes, D1 misses and LL
misses (as bytes, 64 B per miss).

Options:
  --s1 N          measured steps of the first run  (default 5)
  --s2 N          measured steps of the second run (default 25; must exceed --s1)
  --ll l2|l3|both last simulated level: Zen 5's 1 MiB 16-way L2 (default), its 32 MiB
                  16-way L3, or one pair of runs with each
  --bin PATH      the step_traffic binary (default: target/release/examples/step_traffic,
                  built first with cargo unless --no-build)
  --no-build      do not run cargo build
  --top N         also print the N functions with the most D1 misses per step (cg_diff of
                  the two runs, divided by S2 − S1; default 0: none)
  --out DIR       where the cachegrind files and logs go (default: a new /tmp/bytes_moved.XXXXXX)
  -h, --help      this message
Everything after `--` goes to step_traffic (e.g. --model seed --batch 4 --warmup 2).
The environment passes through (FERROCONV_CONV_ALGO, FERROCONV_GEMM_KERNEL).
EOF
}

die() {
    echo "bytes_moved.sh: $*" >&2
    exit 2
}

s1=5 s2=25 ll=l2 bin= build=1 top=0 out=
while (($#)); do
    case "$1" in
        --s1) s1=${2:?--s1 needs a value}; shift 2 ;;
        --s2) s2=${2:?--s2 needs a value}; shift 2 ;;
        --ll) ll=${2:?--ll needs a value}; shift 2 ;;
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        --no-build) build=0; shift ;;
        --top) top=${2:?--top needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done
for v in "$s1" "$s2" "$top"; do
    [[ $v =~ ^[0-9]+$ ]] || die "'$v' is not a non-negative integer"
done
((s2 > s1)) || die "--s2 ($s2) must be larger than --s1 ($s1)"
case "$ll" in
    l2) lls=(l2) ;;
    l3) lls=(l3) ;;
    both) lls=(l2 l3) ;;
    *) die "--ll '$ll': expected l2, l3 or both" ;;
esac
for tool in valgrind cg_diff cg_annotate awk; do
    command -v "$tool" >/dev/null || die "$tool not found (install valgrind)"
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z $bin ]]; then
    bin=$root/target/release/examples/step_traffic
    if ((build)); then
        (cd "$root" && cargo build --release --example step_traffic) >&2
    fi
fi
[[ -x $bin ]] || die "no executable at $bin (build it: cargo build --release --example step_traffic)"
if [[ -z $out ]]; then
    out=$(mktemp -d /tmp/bytes_moved.XXXXXX)
else
    mkdir -p "$out"
fi

# Zen 5, per core.
I1=32768,8,64
D1=49152,12,64
declare -A LL=([l2]=1048576,16,64 [l3]=33554432,16,64)

# run LEVEL STEPS: one cachegrind run; prints the path of its output file.
run() {
    local level=$1 steps=$2
    shift 2
    local file=$out/cg.$level.$steps.out log=$out/cg.$level.$steps.log
    if ! valgrind --tool=cachegrind --cache-sim=yes --I1=$I1 --D1=$D1 --LL="${LL[$level]}" \
        --cachegrind-out-file="$file" "$bin" --steps "$steps" "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "the run with $steps steps failed (log: $log)"
    fi
    if grep -Eqi 'unhandled instruction|illegal instruction|SIGILL|unrecognised instruction' "$log"; then
        grep -Ei -m5 'unhandled instruction|illegal instruction|SIGILL|unrecognised instruction' "$log" >&2
        die "valgrind met an instruction it cannot run (log: $log)"
    fi
    echo "$file"
}

# summary FILE: the `summary:` counts as NAME=VALUE words, in the `events:` order.
summary() {
    awk '/^events:/ { n = split(substr($0, 9), ev, " ") }
         /^summary:/ { for (i = 1; i <= n; i++) printf "%s=%s ", ev[i], $(i + 1); print "" }' "$1"
}

echo "binary: $bin"
echo "args: ${*:-(defaults)}; FERROCONV_CONV_ALGO=${FERROCONV_CONV_ALGO:-} FERROCONV_GEMM_KERNEL=${FERROCONV_GEMM_KERNEL:-}"
echo "caches: I1 $I1  D1 $D1  steps $s1 and $s2; files in $out"
for level in "${lls[@]}"; do
    # The two runs are independent single-threaded simulations: run them side by side.
    run "$level" "$s1" "$@" >"$out/.f1" &
    p1=$!
    run "$level" "$s2" "$@" >"$out/.f2" &
    p2=$!
    st=0
    wait "$p1" || st=$?
    wait "$p2" || st=$?
    ((st == 0)) || exit "$st"
    f1=$(<"$out/.f1") f2=$(<"$out/.f2")
    grep -m1 '^isa:' "$out/cg.$level.$s2.log" | sed 's/^/step_traffic: /'
    grep -m1 'measured steps' "$out/cg.$level.$s2.log" | sed 's/^/step_traffic (under valgrind): /'
    a=$(summary "$f1") b=$(summary "$f2")
    awk -v a="$a" -v b="$b" -v d=$((s2 - s1)) -v ll="$level (${LL[$level]})" '
        function parse(s, arr,   n, w, i, kv) {
            n = split(s, w, " ")
            for (i = 1; i <= n; i++) { split(w[i], kv, "="); arr[kv[1]] = kv[2] }
        }
        function per(e) { return (B[e] - A[e]) / d }
        BEGIN {
            parse(a, A); parse(b, B)
            if (!("D1mr" in A) || !("DLmr" in A)) { print "no cache counts in the summary" > "/dev/stderr"; exit 1 }
            ir = per("Ir"); dr = per("Dr"); dw = per("Dw")
            d1 = per("D1mr") + per("D1mw"); dl = per("DLmr") + per("DLmw")
            printf "LL = %s, per step (%d steps of difference):\n", ll, d
            printf "  Ir  %14.0f instructions\n", ir
            printf "  Dr  %14.0f data reads  (loads of any width)\n", dr
            printf "  Dw  %14.0f data writes (stores of any width)\n", dw
            printf "  D1 misses %8.0f (rd %.0f + wr %.0f) = %9.3f MB filled into L1d\n", d1, per("D1mr"), per("D1mw"), d1 * 64 / 1e6
            printf "  LL misses %8.0f (rd %.0f + wr %.0f) = %9.3f MB from beyond LL\n", dl, per("DLmr"), per("DLmw"), dl * 64 / 1e6
            printf "  I1 misses %8.0f, LLi misses %.0f\n", per("I1mr"), per("ILmr")
            printf "CSV,%s,%d,%.0f,%.0f,%.0f,%.0f,%.0f,%.3f,%.3f\n", ll, d, ir, dr, dw, d1, dl, d1 * 64 / 1e6, dl * 64 / 1e6
        }'
    if ((top > 0)); then
        diff=$out/cg.$level.diff
        cg_diff "$f1" "$f2" >"$diff"
        echo "  top $top functions by D1 misses per step (LL = $level; counts ÷ $((s2 - s1))):"
        cg_annotate --auto=no --show=Dr,Dw,D1mr,D1mw,DLmr,DLmw --sort=D1mr,D1mw --show-percs=no "$diff" 2>/dev/null |
            awk -v d=$((s2 - s1)) -v top="$top" '
                /^-+$/ { dashes++; next }
                dashes >= 4 && NF >= 7 && n < top {
                    name = $7; for (i = 8; i <= NF; i++) name = name " " $i
                    for (i = 1; i <= 6; i++) { gsub(",", "", $i); v[i] = $i / d }
                    if (name ~ /PROGRAM TOTALS/ || name == "file:function") next
                    printf "    D1 %8.0f rd %8.0f wr  LL %7.0f rd %7.0f wr  %s\n", v[3], v[4], v[5], v[6], name
                    n++
                }'
    fi
done
