#!/usr/bin/env python3
"""Reference outputs from torchvision, for ferroconv's parity check (docs/zoo.md).

Usage (in a venv outside the repo holding torch, torchvision and safetensors):

    python3 -m venv ~/.cache/ferroconv-torch-venv
    ~/.cache/ferroconv-torch-venv/bin/pip install torch torchvision safetensors
    ~/.cache/ferroconv-torch-venv/bin/python tools/parity/export.py OUT_DIR [ARCH ...]
    cargo run --release --example parity -- OUT_DIR [ARCH ...]

For each architecture (all ten by default) it writes, under OUT_DIR:

- ARCH.safetensors: the model's state_dict() exactly as torchvision names it, saved with
  safetensors.torch.save_file (num_batches_tracked included, as I64);
- ARCH.ref.safetensors: a fixed input batch `input` [2, 3, S, S] (S = 224, 299 for
  inception_v3) and the eval-mode logits `logits` [2, CLASSES];
- for resnet18 and vgg11_bn also ARCH.train.safetensors: training-mode `loss` [1] of
  cross-entropy on fixed `labels` [2] (as F32), the training-mode `logits`, and
  `grad.NAME` for every parameter NAME (dropout set to p = 0, so the pass is
  deterministic; batch norms use the batch's statistics), on a separate `input` batch of
  side TRAIN_SIZES[ARCH] (or PARITY_TRAIN_SIZE; see docs/zoo.md for why not 224), the first batch
  drawn whose ReLU and max-pool decisions are all at least MIN_MARGIN from flipping;
  `grad64.NAME`, the same gradients computed by PyTorch in float64 (stored as F32), and
  `torch_f32_err.NAME` [1]: ||grad - grad64|| / ||grad64||.

Weights are torchvision's random initialisation with a fixed seed; then every batch norm
gets a random scale and shift and running statistics taken from one training-mode pass
over a random batch (so eval mode uses real, non-trivial statistics). GoogLeNet and
Inception v3 are built with aux_logits=False (the auxiliary heads run only in training
and torchvision's ImageNet models drop them) and transform_input=False (their default
without pretrained weights).
"""

import copy
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

CLASSES = 100
SEED = 1234
ARCHS = {
    "alexnet": lambda: torchvision.models.alexnet(num_classes=CLASSES),
    "vgg11": lambda: torchvision.models.vgg11(num_classes=CLASSES),
    "vgg11_bn": lambda: torchvision.models.vgg11_bn(num_classes=CLASSES),
    "vgg16": lambda: torchvision.models.vgg16(num_classes=CLASSES),
    "vgg16_bn": lambda: torchvision.models.vgg16_bn(num_classes=CLASSES),
    "resnet18": lambda: torchvision.models.resnet18(num_classes=CLASSES),
    "resnet34": lambda: torchvision.models.resnet34(num_classes=CLASSES),
    "resnet50": lambda: torchvision.models.resnet50(num_classes=CLASSES),
    "googlenet": lambda: torchvision.models.googlenet(
        num_classes=CLASSES, aux_logits=False, transform_input=False, init_weights=True
    ),
    "inception_v3": lambda: torchvision.models.inception_v3(
        num_classes=CLASSES, aux_logits=False, transform_input=False, init_weights=True
    ),
}
TRAIN = {"resnet18", "vgg11_bn"}
# Side of the training check's input (see docs/zoo.md: at 224 a few max-pool and ReLU
# decisions flip with rounding, in any float32 implementation).
# Per architecture: ResNet-18's last stage must keep more than 1×1 per image (a batch
# norm over two values is degenerate: PyTorch's float32 gradients are then 0.6 relative
# from float64); VGG's last max-pool sees 2×2 at 32.
TRAIN_SIZES = {"resnet18": 64, "vgg11_bn": 32}
# Smallest decision margin accepted for the training batch (see decision_margin), and how
# many batches to draw looking for one.
MIN_MARGIN = 1e-5
MAX_TRIES = 100


def calibrate(model, size, gen):
    """Random batch-norm scales/shifts; running statistics from one training pass."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
            bn.bias.copy_((torch.rand(bn.bias.shape, generator=gen) - 0.5) * 0.4)
            bn.momentum = None  # cumulative average: after one pass, that pass's statistics
        model.train()
        model(torch.randn(4, 3, size, size, generator=gen))
        for bn in bns:
            bn.momentum = 0.1


def decision_margin(model, x):
    """The smallest decision margin of a forward pass, relative to each input's standard
    deviation: |ReLU input| and the gap between a max-pool window's two largest values
    (windows whose maximum is positive).
    Inputs closer than float32 rounding (~1e-6) to a decision flip it in any float32
    implementation, which changes gradients by ~1e-2 (docs/zoo.md)."""
    margins = []

    def relu_hook(mod, inp, out):
        v = inp[0]
        margins.append((v.abs().min() / v.std()).item())

    def pool_hook(mod, inp, out):
        v, k, s, p = inp[0], mod.kernel_size, mod.stride, mod.padding
        cols = F.unfold(F.pad(v, (p, p, p, p), value=float("-inf")), k, stride=s)
        cols = cols.reshape(v.shape[0], v.shape[1], k * k, -1)
        top = cols.topk(2, dim=2).values
        # Ties at zero (after a ReLU) send the gradient to a zero ReLU output either way.
        win = top[:, :, 0] > 0
        if win.any():
            gap = (top[:, :, 0] - top[:, :, 1])[win]
            margins.append((gap.min() / v.std()).item())

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
            hooks.append(m.register_forward_hook(relu_hook))
        if isinstance(m, nn.MaxPool2d) and not m.ceil_mode and isinstance(m.kernel_size, int):
            hooks.append(m.register_forward_hook(pool_hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return min(margins)


def export(arch, out):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = ARCHS[arch]()
    size = 299 if arch == "inception_v3" else 224
    calibrate(model, size, gen)
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{arch}.safetensors"))
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        logits = model(x)
    save_file({"input": x, "logits": logits.contiguous()}, str(out / f"{arch}.ref.safetensors"))
    line = f"{arch}: {sum(p.numel() for p in model.parameters())} parameters, max |logit| {logits.abs().max():.4g}"
    if arch in TRAIN:
        # PyTorch's float32 gradients are the reference; its float64 ones are saved too,
        # to show how far any float32 computation is from exact arithmetic here.
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        labels = torch.tensor([3, 71])
        # Draw training batches until one has every decision at least MIN_MARGIN from
        # flipping (judged in float64 by PyTorch alone, so the choice does not depend on
        # ferroconv's results).
        size = int(os.environ.get("PARITY_TRAIN_SIZE", TRAIN_SIZES[arch]))
        probe = copy.deepcopy(model).double().train()
        for tries in range(1, MAX_TRIES + 1):
            xt = torch.randn(2, 3, size, size, generator=gen)
            margin = decision_margin(probe, xt.double())
            if margin >= MIN_MARGIN:
                break
        else:
            sys.exit(
                f"{arch}: no training batch among {MAX_TRIES} has every ReLU and max-pool "
                f"decision {MIN_MARGIN:g} (relative) from flipping; float32 results would "
                "depend on rounding: change SEED or PARITY_TRAIN_SIZE"
            )
        grads = {}
        for dtype in (torch.float32, torch.float64):
            model = model.to(dtype).train()
            model.load_state_dict(state)
            model.zero_grad()
            train_logits = model(xt.to(dtype))
            loss = F.cross_entropy(train_logits, labels)
            loss.backward()
            grads[dtype] = {n: p.grad.double() for n, p in model.named_parameters()}
        tensors = {
            "loss": loss.detach().reshape(1).float(),
            "labels": labels.to(torch.float32),
            "input": xt,
            "logits": train_logits.detach().float().contiguous(),
        }
        for name, g in grads[torch.float64].items():
            g32 = grads[torch.float32][name]
            tensors[f"grad.{name}"] = g32.float().contiguous()
            tensors[f"grad64.{name}"] = g.float().contiguous()
            err = (g32 - g).norm() / g.norm().clamp_min(1e-30)
            tensors[f"torch_f32_err.{name}"] = err.reshape(1).float()
        save_file(tensors, str(out / f"{arch}.train.safetensors"))
        line += f", training loss {loss.item():.9f} (float64), batch {size}x{size}, decision margin {margin:.1e} (batch {tries})"
    print(line, flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    archs = sys.argv[2:] or list(ARCHS)
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        sys.exit(f"unknown architecture(s) {unknown}; known: {list(ARCHS)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}", flush=True)
    for arch in archs:
        export(arch, out)


if __name__ == "__main__":
    main()
