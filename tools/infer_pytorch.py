#!/usr/bin/env python3
"""PyTorch's inference images/s for a torchvision network, to set beside ferroconv's
`examples/infer_bench.rs` (tools/infer_side_by_side.sh runs both alternately).

    infer_pytorch.py --arch resnet50 --batch 32 [--side 224] [--threads 2] [--iters 5]
                     [--json PATH]

Eval mode under torch.inference_mode(), the torchvision architecture with its random
initialisation (weights=None), random inputs; one warm-up pass, then --iters timed passes
(at least 1.5 s in all when a pass is short, as the Rust side does); the median pass gives
images/s. Prints one line and, with --json, writes one JSON object.

Denormals: torchvision's randomly initialised networks may produce subnormal floats, which
x86 handles slowly. One measurement here (a shared 2-core Xeon, load ~4) gave resnet50 at
batch 1 3.8 s per pass as is and 0.38 s after torch.set_flush_denormal(True); repeated runs
under heavier load (~9) could not separate the effect from the machine's noise. Flushing can
only help PyTorch, so the script flushes denormals to zero by default; --keep-denormals
measures without.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json", default="")
    ap.add_argument("--keep-denormals", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    flushed = torch.set_flush_denormal(not args.keep_denormals) and not args.keep_denormals
    model = getattr(torchvision.models, args.arch)(weights=None).eval()
    x = torch.rand(args.batch, 3, args.side, args.side) * 2 - 1
    with torch.inference_mode():
        t = time.perf_counter()
        model(x)
        warm = time.perf_counter() - t
        iters = min(200, max(args.iters, math.ceil(1.5 / max(warm, 1e-6))))
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    med, best = statistics.median(times), min(times)
    ips = args.batch / med
    print(f"{args.arch}@{args.batch} {args.side}x{args.side}: {ips:.2f} images/s (median of "
          f"{iters} passes, {med * 1e3:.1f} ms; best {best * 1e3:.1f} ms; warm-up {warm * 1e3:.1f} ms; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}; denormals "
          f"{'flushed' if flushed else 'kept'})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arch": args.arch, "batch": args.batch, "side": args.side,
                       "threads": torch.get_num_threads(), "images_per_sec": ips,
                       "median_ms": med * 1e3, "best_ms": best * 1e3, "iters": iters, "torch": torch.__version__,
                       "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "flush_denormal": flushed}, f)
            f.write("\n")


if __name__ == "__main__":
    main()
