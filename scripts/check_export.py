#!/usr/bin/env python3
"""Load a `cnn weights export` file in PyTorch, strictly, and compare its logits with ours.

    cnn weights export --run runs/r18 --out r18.pth --io r18.io.safetensors
    python scripts/check_export.py --model resnet18 --weights r18.pth --io r18.io.safetensors

--model is a torchvision model name (resnet18, alexnet, vgg16_bn, googlenet, ...) or one of the
networks torchvision does not have, defined here with the keys the README documents:
resnet20/32/44/56/110 (CIFAR ResNets, option A shortcuts), lenet5 (tanh) and lenet5_relu.
The number of classes and input channels come from the files. Prints the largest absolute
difference of the logits and exits non-zero above --tolerance (1e-4).
"""

import argparse
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class CifarBlock(nn.Module):
    """A basic block with option A's shortcut: subsample and zero-pad the new channels."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:
            before = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, before, self.extra - before))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """He et al. (2016) §4.2: 6n+2 layers, 16-32-64 filters."""

    def __init__(self, n, num_classes, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(CifarBlock(cin, cout, 2 if (i > 0 and b == 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LeNet5(nn.Module):
    """LeNet-5: conv 5x5 -> 6, avg-pool 2, conv 5x5 -> 16, avg-pool 2, 400 -> 120 -> 84 -> classes."""

    def __init__(self, num_classes, in_channels, act):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, num_classes)
        self.act = act

    def forward(self, x):
        x = F.avg_pool2d(self.act(self.conv1(x)), 2)
        x = F.avg_pool2d(self.act(self.conv2(x)), 2)
        x = self.act(self.fc1(torch.flatten(x, 1)))
        return self.fc3(self.act(self.fc2(x)))


CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}


def build(name, num_classes, in_channels, aux=False):
    if name in CIFAR_DEPTHS:
        return CifarResNet(CIFAR_DEPTHS[name], num_classes, in_channels)
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
