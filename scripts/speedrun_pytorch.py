"""The PyTorch twin of `cargo xtask speedrun`: the same network (`speednet`, a narrow ResNet-9 in
the spirit of the fast CIFAR-10 records), the same recipe and the same data, timed the same way
(from the first training step to the end of the final test; data import excluded).

    python scripts/speedrun_pytorch.py --data-dir /usr/share/datasets/fashion-mnist --seed 1

Threads follow --threads (default: every core), as `cnn` does. With --valid F the last F of the
training images are held out and the script reports validation accuracy instead of touching the
test set (how the recipe was chosen). Prints one JSON line per epoch and a final summary line.
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

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training-set statistics (our `fashion` preprocessing)


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
    return x, torch.from_numpy(labels.astype(np.int64))


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(c, c), conv_bn(c, c)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class SpeedNet(nn.Module):
    """prep (c) -> [conv 2c, pool, residual] -> [conv 4c, pool] -> [conv 8c, pool, residual] -> global max -> linear."""

    def __init__(self, width, num_classes=10, in_channels=1):
        super().__init__()
        c = width
        self.prep = conv_bn(in_channels, c)
        self.layer1 = nn.Sequential(conv_bn(c, 2 * c), nn.MaxPool2d(2), Residual(2 * c))
        self.layer2 = nn.Sequential(conv_bn(2 * c, 4 * c), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(conv_bn(4 * c, 8 * c), nn.MaxPool2d(2), Residual(8 * c))
        self.fc = nn.Linear(8 * c, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


def augment(x, gen, padding):
    """Random crop with zero padding (per image) and a horizontal flip with p = 0.5."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, value=-MEAN / STD)  # black in normalised units
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 1, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def onecycle_lr(step, total, peak, pct=0.25, div=25.0, final_div=1e4):
    """PyTorch's OneCycleLR with cosine annealing (the same rates as our `onecycle`)."""
    up = pct * total - 1
    start, end = peak / div, peak / div / final_div
    if step <= up:
        t = step / up
        return start + (peak - start) * (1 - math.cos(math.pi * t)) / 2
    t = (step - up) / (total - 1 - up)
    return peak + (end - peak) * (1 - math.cos(math.pi * t)) / 2


def evaluate(model, x, y, tta):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            xb = x[i : i + 1000]
            logits = model(xb)
            if tta:
                logits = logits + model(xb.flip(3))
            correct += (logits.argmax(1) == y[i : i + 1000]).sum().item()
    model.train()
    return correct / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--padding", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--valid", type=float, default=0.0)
    p.add_argument("--tta", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    t0 = time.time()
    x, y = load(a.data_dir, "train")
    if a.valid > 0:
        keep = len(x) - int(len(x) * a.valid)
        x, y, xt, yt = x[:keep], y[:keep], x[keep:], y[keep:]
    else:
        xt, yt = load(a.data_dir, "test")
    import_s = time.time() - t0

    model = SpeedNet(a.width)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": a.wd}, {"params": rest, "weight_decay": 0.0}],
        lr=a.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = math.ceil(len(x) / a.batch)
    total = steps_per_epoch * a.epochs
    step = 0
    start = time.time()
    for epoch in range(a.epochs):
        order = torch.randperm(len(x), generator=gen)
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * a.batch : (i + 1) * a.batch]
            xb = augment(x[idx], gen, a.padding)
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
        acc = evaluate(model, xt, yt, a.tta) if (a.valid > 0 or epoch == a.epochs - 1) else None
        print(json.dumps({"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "accuracy": acc,
                          "seconds": round(time.time() - start, 1)}), flush=True)
    print(json.dumps({"summary": True, "split": "valid" if a.valid > 0 else "test", "accuracy": acc,
                      "train_seconds": round(time.time() - start, 1), "import_seconds": round(import_s, 1),
                      "width": a.width, "epochs": a.epochs, "seed": a.seed, "tta": a.tta,
                      "params": sum(p.numel() for p in model.parameters()), "threads": a.threads}), flush=True)


if __name__ == "__main__":
    main()
