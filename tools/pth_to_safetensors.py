#!/usr/bin/env python3
"""Convert a PyTorch .pth checkpoint (a state_dict) to safetensors, for ferroconv.

Usage:
    python tools/pth_to_safetensors.py IN.pth OUT.safetensors [--drop-prefix P ...]

Needs torch and safetensors (pip install torch safetensors, in a venv). The file may
hold a bare state_dict, or a dict with the state_dict under "state_dict" or "model"
(common training-script layouts). Tensors are saved under their names, unchanged
(made contiguous; safetensors needs that). --drop-prefix removes every tensor whose
name starts with P: torchvision's ImageNet files for GoogLeNet and Inception v3 carry
the auxiliary classifiers (aux1., aux2., AuxLogits.), which ferroconv does not build:

    python tools/pth_to_safetensors.py googlenet-1378be20.pth googlenet.safetensors \\
        --drop-prefix aux1. --drop-prefix aux2.

A "module." prefix (from nn.DataParallel) is stripped. Prints what it wrote.
"""

import argparse
import sys

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="the .pth file")
    ap.add_argument("dst", help="the .safetensors file to write")
    ap.add_argument("--drop-prefix", action="append", default=[], help="drop tensors whose name starts with this")
    args = ap.parse_args()

    obj = torch.load(args.src, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        sys.exit(f"{args.src}: not a state_dict (a {type(obj).__name__}); save model.state_dict()")
    out, dropped = {}, []
    for name, t in obj.items():
        if not torch.is_tensor(t):
            sys.exit(f"{args.src}: {name!r} is a {type(t).__name__}, not a tensor")
        if name.startswith("module."):
            name = name[len("module."):]
        if any(name.startswith(p) for p in args.drop_prefix):
            dropped.append(name)
            continue
        out[name] = t.detach().contiguous()
    save_file(out, args.dst)
    print(f"{args.dst}: {len(out)} tensors written, {len(dropped)} dropped")


if __name__ == "__main__":
    main()
