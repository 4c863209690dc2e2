#!/usr/bin/env python3
"""PyTorch's twin of `crates/kernels/examples/linear_products.rs`: the three products of a fully
connected layer at the zoo's classifier shapes, fastest and median of 7 runs (ms).

    python3 scripts/linear_products_pytorch.py [--threads 2]

PyTorch keeps the weight as [outputs, inputs]; the products are those its autograd runs.
"""

import argparse
import time

import torch


def timed(f):
    f()
    ms = []
    for _ in range(7):
        started = time.perf_counter()
        f()
        ms.append((time.perf_counter() - started) * 1e3)
    ms.sort()
    return ms[0], ms[3]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads [default: CPU count]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    print("[batch, inputs, outputs]   product   best / median ms")
    for batch, inputs, outputs in [(16, 25088, 4096), (16, 4096, 4096), (8, 9216, 4096)]:
        x, w, dy = torch.randn(batch, inputs), torch.randn(outputs, inputs), torch.randn(batch, outputs)
        for name, f in [
            ("X·W", lambda: torch.nn.functional.linear(x, w)),
            ("dY·Wᵀ", lambda: dy @ w),
            ("Xᵀ·dY", lambda: dy.t() @ x),
        ]:
            best, median = timed(f)
            print(f"{str([batch, inputs, outputs]):<26} {name:<9} {best:>6.1f} / {median:.1f}")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
