#!/usr/bin/env python3
"""Writes crates/models/tests/data/batchnorm_pytorch.json: what PyTorch's BatchNorm2d does with
two training batches (running statistics, which average the unbiased batch variance) and then
in eval mode. The inputs are a fixed formula, so the file is reproducible.

    python scripts/make_batchnorm_reference.py   # needs torch
"""
import json
import math
import pathlib

import torch


def batch(seed, shape):
    n = math.prod(shape)
    values = [2.0 * math.sin(0.37 * i + seed) + 0.5 * math.cos(1.3 * i * (seed + 1)) + seed * 0.25 for i in range(n)]
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def main():
    momentum = 0.1
    bn = torch.nn.BatchNorm2d(3, momentum=momentum, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.8, 1.2, -0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.3, 0.2]))
    train1, train2, evalb = batch(1, (4, 3, 5, 5)), batch(2, (2, 3, 4, 6)), batch(3, (2, 3, 3, 3))
    bn.train()
    bn(train1)
    bn(train2)
    bn.eval()
    with torch.no_grad():
        out = bn(evalb)

    def t(x):
        return {"shape": list(x.shape), "values": [float(v) for v in x.flatten()]}

    doc = {
        "source": f"PyTorch {torch.__version__} BatchNorm2d(3, momentum={momentum}, eps=1e-5), scripts/make_batchnorm_reference.py",
        "momentum": momentum,
        "gamma": bn.weight.tolist(),
        "beta": bn.bias.tolist(),
        "train1": t(train1),
        "train2": t(train2),
        "eval": t(evalb),
        "running_mean": bn.running_mean.tolist(),
        "running_var": bn.running_var.tolist(),
        "eval_output": t(out),
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "crates/models/tests/data/batchnorm_pytorch.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
