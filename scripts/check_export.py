#!/usr/bin/env python3
"""Load a `cnn weights export` file in PyTorch, strictly, and compare its logits with ours.

    cnn weights export --run runs/r18 --out r18.pth --io r18.io.safetensors
    python scripts/check_export.py --model resnet18 --weights r18.pth --io r18.io.safetensors

--model is a torchvision model name (resnet18, alexnet, vgg16_bn, googlenet, ...) or one of the
networks torchvision does not have, defined here with the keys the README documents:
resnet20/32/44/56/110 (CIFAR ResNets, option A shortcuts), lenet5 (tanh) and lenet5_relu, and
resnet9/resnet9_w32/resnet9_w16 (the speedrun's network, from speedrun_pytorch.py).
The number of classes and input channels come from the files. Prints the largest absolute
difference of the logits and exits non-zero above --tolerance (1e-4).
"""

import argparse
import sys

import torch
import torch.nn.functional as F

from speedrun_pytorch import ResNet9
from torch_twins import CifarResNet, LeNet5


CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}
RESNET9_WIDTHS = {"resnet9": 64, "resnet9_w32": 32, "resnet9_w16": 16}


def build(name, num_classes, in_channels, aux=False):
    if name in CIFAR_DEPTHS:
        return CifarResNet(CIFAR_DEPTHS[name], num_classes, in_channels)
    if name in RESNET9_WIDTHS:
        return ResNet9(RESNET9_WIDTHS[name], num_classes, in_channels)
    if name in ("lenet5", "lenet5_relu"):
        return LeNet5(num_classes, in_channels, torch.tanh if name == "lenet5" else F.relu)
    import torchvision

    kwargs = {"num_classes": num_classes}
    if name == "googlenet":
        kwargs.update(aux_logits=aux, init_weights=False)
    model = getattr(torchvision.models, name)(**kwargs)
    if in_channels != 3:
        raise SystemExit(f"{name} takes 3 channels; the export has {in_channels}")
    return model


def load(path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--weights", required=True, help="the export (.pth or .safetensors)")
    ap.add_argument("--io", required=True, help="the --io file of cnn weights export")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    from safetensors.torch import load_file

    io = load_file(args.io)
    state = load(args.weights)
    aux = any(k.startswith("aux") for k in state)
    model = build(args.model, io["logits"].shape[1], io["input"].shape[1], aux)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(io["input"])
    diff = (logits - io["logits"]).abs().max().item()
    print(f"{args.model}: {len(state)} tensors loaded strictly from {args.weights}; "
          f"logits {tuple(logits.shape)}, max abs diff {diff:.3e}")
    sys.exit(0 if diff <= args.tolerance else 1)


if __name__ == "__main__":
    main()
