#!/usr/bin/env python3
"""The transfer experiment's protocol in PyTorch, to check that our numbers are what the methods
give (`cnn experiment transfer`, README "Transfer with few labels").

It trains on exactly the labelled images our experiment used (its `subsets.json`), from the
same pretrained backbone (our pretraining run exported with `cnn weights export`), with the same
methods, rates, epochs and batch size, and evaluates on the same test images:

    cnn weights export --run runs/transfer-fashion/pretrain --out /tmp/pre.pth
    python scripts/transfer_pytorch.py --exp runs/transfer-fashion --weights /tmp/pre.pth \
        --data-dir /usr/share/datasets --threads 2 --out docs/transfer-fashion-split-pytorch.csv

Needs torch (in a venv outside the repository); never run in CI. What differs by nature: the
initial heads and the scratch networks' initial weights come from PyTorch's generator, and the
shuffling of batches from numpy's; the images and labels are ours.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_twins import CifarResNet, LeNet5  # noqa: E402

METHODS = ["scratch", "frozen-cached", "finetune-top", "finetune-all", "discriminative"]
CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(data_dir, dataset, split, classes):
    """Images (N, 28, 28) and labels 0.. of `classes`, in the data set's order."""
    prefix = "train" if split == "train" else "t10k"
    folder = os.path.join(data_dir, dataset)
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    if classes is None:
        return images, labels.astype(np.int64)
    keep = np.isin(labels, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return images[keep], np.array([relabel[int(l)] for l in labels[keep]], dtype=np.int64)


def to_tensor(images, pre):
    """Our preprocessing: centred on a `size` canvas of 0, scaled to [0, 1], normalised."""
    n, h, w = images.shape
    size = pre["size"]
    canvas = np.zeros((n, size, size), dtype=np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[:, top : top + h, left : left + w] = images / 255.0
    x = torch.from_numpy(canvas).unsqueeze(1)
    mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def build(model, classes, channels):
    if model in CIFAR_DEPTHS:
        return CifarResNet(CIFAR_DEPTHS[model], classes, channels)
    if model in ("lenet5", "lenet5_relu"):
        return LeNet5(classes, channels, torch.tanh if model == "lenet5" else F.relu)
    raise SystemExit(f"{model}: only the CIFAR ResNets and LeNet-5 have twins here")


def stages(model, net):
    """The stages in depth order, as `cnn_transfer::stages` names them, and the head's name."""
    if model in CIFAR_DEPTHS:
        return [("conv1", [net.conv1, net.bn1]), ("layer1", [net.layer1]), ("layer2", [net.layer2]), ("layer3", [net.layer3])], "fc"
    return [("conv1", [net.conv1]), ("conv2", [net.conv2]), ("fc1", [net.fc1]), ("fc2", [net.fc2])], "fc3"


def backbone_features(model, net, x):
    """What the frozen backbone hands the head."""
    if model in CIFAR_DEPTHS:
        h = F.relu(net.bn1(net.conv1(x)))
        h = net.layer3(net.layer2(net.layer1(h)))
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
    h = F.avg_pool2d(net.act(net.conv1(x)), 2)
    h = F.avg_pool2d(net.act(net.conv2(h)), 2)
    return net.act(net.fc2(net.act(net.fc1(torch.flatten(h, 1)))))


def param_groups(method, model, net, args):
    """(parameters, rate) groups and the modules frozen in place, per method."""
    named, head = stages(model, net)
    head_params = list(getattr(net, head).parameters())
    if method == "scratch":
        return [{"params": list(net.parameters()), "lr": args.scratch_lr}], []
    if method == "finetune-top":
        frozen = [m for _, ms in named[:-1] for m in ms]
        for m in frozen:
            m.requires_grad_(False)
        top = [p for m in named[-1][1] for p in m.parameters()]
        return [{"params": top + head_params, "lr": args.lr}], frozen
    decay = args.stage_lr_decay if method == "discriminative" else 1.0
    groups = [{"params": head_params, "lr": args.lr}]
    for depth, (_, ms) in enumerate(reversed(named)):
        rate = args.lr * args.backbone_lr_scale * decay**depth
        groups.append({"params": [p for m in ms for p in m.parameters()], "lr": rate})
    return groups, []


def run(method, cell, data, pre_weights, args, info, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    (train_x, train_y), (test_x, test_y) = data
    x, y = train_x[cell["train"]], train_y[cell["train"]]
    net = build(info["model"], info["classes"], info["channels"])
    if method != "scratch":
        state = torch.load(pre_weights, map_location="cpu")
        state = {k: v for k, v in state.items() if not k.startswith(stages(info["model"], net)[1] + ".")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith(stages(info["model"], net)[1]) for k in missing), missing
    if method == "frozen-cached":
        # As ours: the features are computed once, outside the training time.
        net.eval()
        with torch.no_grad():
            feats, test_feats = backbone_features(info["model"], net, x), backbone_features(info["model"], net, test_x)
    started = time.perf_counter()
    if method == "frozen-cached":
        head = getattr(net, stages(info["model"], net)[1])
        opt = torch.optim.Adam(head.parameters(), lr=args.head_only_lr)
        forward, inputs, test_inputs = head, feats, test_feats
    else:
        groups, frozen = param_groups(method, info["model"], net, args)
        opt = torch.optim.Adam(groups)
        forward, inputs, test_inputs = net, x, test_x
    base = [g["lr"] for g in opt.param_groups]
    batches = -(-len(y) // args.batch_size)
    step, total = 0, args.epochs * batches
    for _ in range(args.epochs):
        forward.train()
        if method != "frozen-cached":
            for m in frozen:
                m.eval()
        order = rng.permutation(len(y))
        for first in range(0, len(y), args.batch_size):
            idx = order[first : first + args.batch_size]
            # Our schedule: cosine annealing per batch from the peak rate to 0 (or constant).
            factor = 0.5 * (1 + math.cos(math.pi * step / total)) if args.schedule == "cosine" else 1.0
            for g, rate in zip(opt.param_groups, base):
                g["lr"] = rate * factor
            step += 1
            loss = F.cross_entropy(forward(inputs[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - started
    forward.eval()
    with torch.no_grad():
        correct = sum(
            (forward(test_inputs[i : i + 500]).argmax(1) == test_y[i : i + 500]).sum().item()
            for i in range(0, len(test_y), 500)
        )
    return correct / len(test_y), seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exp", required=True, help="our experiment folder (subsets.json, pretrain/)")
    p.add_argument("--weights", required=True, help="the pretrained run exported as .pth")
    p.add_argument("--data-dir", default="/usr/share/datasets")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--scratch-lr", type=float, default=3e-3)
    p.add_argument("--head-only-lr", type=float, default=0.3, help="frozen-cached's rate")
    p.add_argument("--backbone-lr-scale", type=float, default=0.3)
    p.add_argument("--stage-lr-decay", type=float, default=0.5)
    p.add_argument("--per-class", default=None, help="only these sizes, comma-separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="CSV: per_class,method,seed,test_accuracy,train_seconds")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    subsets = json.load(open(os.path.join(args.exp, "subsets.json")))
    pretrain = os.path.join(args.exp, "pretrain")
    pre = json.load(open(os.path.join(pretrain, "preprocess.json")))
    config = json.load(open(os.path.join(pretrain, "config.json")))
    classes = subsets["classes"]
    info = {"model": config["model"], "classes": len(classes) if classes else 10, "channels": pre["channels"]}
    dataset = subsets["dataset"]
    train_x, train_y = load_split(args.data_dir, dataset, "train", classes)
    test_x, test_y = load_split(args.data_dir, dataset, "test", classes)
    data = ((to_tensor(train_x, pre), torch.from_numpy(train_y)), (to_tensor(test_x, pre), torch.from_numpy(test_y)))
    rows = ["per_class,method,seed,test_accuracy,train_seconds"]
    sizes = None if args.per_class is None else {int(n) for n in args.per_class.split(",")}
    for cell in subsets["cells"]:
        if sizes is not None and cell["per_class"] not in sizes:
            continue
        for method in args.methods.split(","):
            acc, secs = run(method, cell, data, args.weights, args, info, cell["seed"])
            rows.append(f"{cell['per_class']},{method},{cell['seed']},{acc:.6f},{secs:.3f}")
            print(rows[-1], flush=True)
            with open(args.out, "w") as f:
                f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
