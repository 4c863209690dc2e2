"""The PyTorch twin of `cargo xtask speedrun`: the same network (`resnet9_w16`, Page's ResNet-9 at
width 16, under our state_dict keys), the same recipe (the `speedrun` preset: 13 epochs, batch
256, SGD with momentum 0.9 and L2 weight decay 5e-4 on every parameter, PyTorch's OneCycleLR
peaking at 0.2, label smoothing 0.1, pad-2 crops and alternating flips, gray images repeated to three
channels and normalised with MNIST's statistics as `cnn train` does, 2% of the training images
held out to validate each epoch, validation and test on each image and its mirror) and the same
data, timed the same way: from reading the data to the end of the final test. The data order and
the draws of the augmentation are PyTorch's own.

    python scripts/speedrun_pytorch.py --data-dir /usr/share/datasets/fashion-mnist --seed 1

Threads follow --threads (default: every core), as `cnn` does. With --no-test the final test is
skipped (exploring recipes on validation only). Prints one JSON line per epoch and a summary line.
"""

import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081  # the normalisation `cnn train` gives gray data sets


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    find = lambda stem: next(
        os.path.join(data_dir, stem + ext) for ext in (".gz", "") if os.path.exists(os.path.join(data_dir, stem + ext))
    )
    images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    x = (torch.from_numpy(images.copy()).float().div_(255.0).sub_(MEAN).div_(STD)).unsqueeze(1)
    return x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels.astype(np.int64))


class ConvBn(nn.Module):
    """conv 3x3 (no bias), batch norm, ReLU: our `ConvBn` (keys conv.*, bn.*)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    """x + res2(res1(x)), added after the second ReLU."""

    def __init__(self, c):
        super().__init__()
        self.res1, self.res2 = ConvBn(c, c), ConvBn(c, c)

    def forward(self, x):
        return x + self.res2(self.res1(x))


class Layer9(nn.Module):
    def __init__(self, cin, cout, residual):
        super().__init__()
        self.conv, self.pool = ConvBn(cin, cout), nn.MaxPool2d(2)
        self.residual = Residual(cout) if residual else None

    def forward(self, x):
        x = self.pool(self.conv(x))
        return x if self.residual is None else self.residual(x)


class ResNet9(nn.Module):
    """prep (c) -> [conv 2c, pool, residual] -> [conv 4c, pool] -> [conv 8c, pool, residual] -> global max -> fc."""

    def __init__(self, width, num_classes=10, in_channels=3):
        super().__init__()
        c = width
        self.prep = ConvBn(in_channels, c)
        self.layer1 = Layer9(c, 2 * c, True)
        self.layer2 = Layer9(2 * c, 4 * c, False)
        self.layer3 = Layer9(4 * c, 8 * c, True)
        self.fc = nn.Linear(8 * c, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


def augment(x, gen, padding, flips=None):
    """Random crop with zero padding (per image) and a horizontal flip with p = 0.5, or where
    `flips` is given (the alternating flip), exactly those images mirrored."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, value=-MEAN / STD)  # black in normalised units
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, c, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, c, h, w)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5 if flips is None else flips
    out[flip] = out[flip].flip(3)
    return out


def shift(x, by):
    """`x` moved `by` pixels down-right (by > 0) or up-left, the edge rows and columns repeated
    (our `shift_images`)."""
    s = abs(by)
    padded = F.pad(x, (s,) * 4, mode="replicate")
    h, w = x.shape[2:]
    return padded[:, :, :h, :w] if by > 0 else padded[:, :, 2 * s : 2 * s + h, 2 * s : 2 * s + w]


def onecycle_lr(step, total, peak, pct=0.3, div=25.0, final_div=1e4):
    """PyTorch's OneCycleLR with cosine annealing (the same rates as our `onecycle`)."""
    up = pct * total - 1
    start, end = peak / div, peak / div / final_div
    if step <= up:
        t = step / up
        return start + (peak - start) * (1 - math.cos(math.pi * t)) / 2
    t = (step - up) / (total - 1 - up)
    return peak + (end - peak) * (1 - math.cos(math.pi * t)) / 2


def evaluate(model, x, y, tta, shift_px=0):
    """Accuracy with the class probabilities averaged over the views: the image, with `shift_px`
    also shifted both ways, and with `tta` each of those mirrored (our `TestViews`)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            xb = x[i : i + 1000]
            views = [xb] + ([shift(xb, shift_px), shift(xb, -shift_px)] if shift_px else [])
            if tta:
                views += [v.flip(3) for v in views]
            probs = sum(F.softmax(model(v), 1) for v in views) / len(views)
            correct += (probs.argmax(1) == y[i : i + 1000]).sum().item()
    model.train()
    return correct / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=13)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--padding", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--valid", type=float, default=0.02)
    p.add_argument("--no-test", action="store_true")
    p.add_argument("--no-tta", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--flip", choices=["alternating", "random"], default="alternating",
                   help="alternating: each image mirrored by its own coin in the first epoch, then the "
                        "other way each epoch (the preset's `fashion-alternating`); random: a coin per epoch")
    p.add_argument("--test-shift", type=int, default=0,
                   help="also test each image shifted this many pixels down-right and up-left")
    p.add_argument("--decay-weights-only", action="store_true",
                   help="weight decay on convolution and linear weights only (not biases, batch norm)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    start = time.time()
    x, y = load(a.data_dir, "train")
    xt, yt = load(a.data_dir, "test")
    held = torch.randperm(len(x), generator=gen)
    cut = int(len(x) * a.valid)
    xv, yv, x, y = x[held[:cut]], y[held[:cut]], x[held[cut:]], y[held[cut:]]
    tta = not a.no_tta

    model = ResNet9(a.width)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if a.decay_weights_only:
        weights = [p for p in model.parameters() if p.ndim > 1]
        rest = [p for p in model.parameters() if p.ndim <= 1]
        groups = [{"params": weights, "weight_decay": a.wd}, {"params": rest, "weight_decay": 0.0}]
    else:
        groups = [{"params": list(model.parameters()), "weight_decay": a.wd}]
    opt = torch.optim.SGD(groups, lr=a.lr, momentum=0.9, nesterov=a.nesterov)
    steps_per_epoch = math.ceil(len(x) / a.batch)
    total = steps_per_epoch * a.epochs
    step = 0
    first_flips = torch.rand(len(x), generator=gen) < 0.5
    for epoch in range(a.epochs):
        order = torch.randperm(len(x), generator=gen)
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * a.batch : (i + 1) * a.batch]
            flips = (first_flips[idx] ^ bool(epoch % 2)) if a.flip == "alternating" else None
            xb = augment(x[idx], gen, a.padding, flips)
            if a.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            for group in opt.param_groups:
                group["lr"] = onecycle_lr(step, total, a.lr)
            loss = F.cross_entropy(model(xb), y[idx], label_smoothing=a.smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            step += 1
        valid = evaluate(model, xv, yv, tta, a.test_shift) if cut > 0 else None
        print(json.dumps({"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "valid_accuracy": valid,
                          "seconds": round(time.time() - start, 1)}), flush=True)
    test = None if a.no_test else evaluate(model, xt, yt, tta, a.test_shift)
    print(json.dumps({"summary": True, "test_accuracy": test, "valid_accuracy": valid,
                      "seconds": round(time.time() - start, 1), "width": a.width, "epochs": a.epochs,
                      "seed": a.seed, "test_flip": tta, "nesterov": a.nesterov,
                      "decay_weights_only": a.decay_weights_only,
                      "flip": a.flip, "test_shift": a.test_shift, "torch": torch.__version__,
                      "params": sum(p.numel() for p in model.parameters()), "threads": a.threads}), flush=True)


if __name__ == "__main__":
    main()
