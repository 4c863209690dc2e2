#!/usr/bin/env python3
"""PyTorch's three convolution passes (forward, input gradient, weight gradient) at the shapes
of `crates/kernels/examples/conv_passes.rs`, timed the same way (fastest of 7 after a warm-up),
so each of our passes can be compared with PyTorch's in one run:

    python scripts/conv_passes_pytorch.py --threads 2 resnet18
"""
import argparse
import time

import torch

SHAPES = {  # (batch, c_in, hw, c_out, k, stride, pad), count per step: as in conv_passes.rs
    "resnet18": [((32, 3, 64, 64, 7, 2, 3), 1), ((32, 64, 16, 64, 3, 1, 1), 4),
                 ((32, 64, 16, 128, 3, 2, 1), 1), ((32, 128, 8, 128, 3, 1, 1), 3),
                 ((32, 128, 8, 256, 3, 2, 1), 1), ((32, 256, 4, 256, 3, 1, 1), 3),
                 ((32, 256, 4, 512, 3, 2, 1), 1), ((32, 512, 2, 512, 3, 1, 1), 3)],
    "resnet20": [((128, 3, 32, 16, 3, 1, 1), 1), ((128, 16, 32, 16, 3, 1, 1), 6),
                 ((128, 16, 32, 32, 3, 2, 1), 1), ((128, 32, 16, 32, 3, 1, 1), 5),
                 ((128, 32, 16, 64, 3, 2, 1), 1), ((128, 64, 8, 64, 3, 1, 1), 5)],
    "vgg16": [((16, 3, 64, 64, 3, 1, 1), 1), ((16, 64, 64, 64, 3, 1, 1), 1),
              ((16, 64, 32, 128, 3, 1, 1), 1), ((16, 128, 32, 128, 3, 1, 1), 1),
              ((16, 128, 16, 256, 3, 1, 1), 1), ((16, 256, 16, 256, 3, 1, 1), 2),
              ((16, 256, 8, 512, 3, 1, 1), 1), ((16, 512, 8, 512, 3, 1, 1), 2),
              ((16, 512, 4, 512, 3, 1, 1), 3)],
    "alexnet": [((8, 3, 224, 64, 11, 4, 2), 1), ((8, 64, 27, 192, 5, 1, 2), 1),
                ((8, 192, 13, 384, 3, 1, 1), 1), ((8, 384, 13, 256, 3, 1, 1), 1),
                ((8, 256, 13, 256, 3, 1, 1), 1)],
    "resnet9": [((256, 1, 28, 16, 3, 1, 1), 1), ((256, 16, 28, 32, 3, 1, 1), 1),
                ((256, 32, 14, 32, 3, 1, 1), 2), ((256, 32, 14, 64, 3, 1, 1), 1),
                ((256, 64, 7, 128, 3, 1, 1), 1), ((256, 128, 3, 128, 3, 1, 1), 2)],
}


def fastest_ms(f, reps=7):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="resnet20", choices=sorted(SHAPES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.model}: PyTorch {torch.__version__}, {args.threads} threads; fastest ms of 7 runs")
    print(f"{'shape':<24} {'count':>5} {'forward':>9} {'d input':>9} {'d weight':>9} {'GFLOP/s':>8}")
    totals = [0.0, 0.0, 0.0]
    with torch.no_grad():
        for (n, c, hw, o, k, s, p), count in SHAPES[args.model]:
            x = torch.randn(n, c, hw, hw)
            w = torch.randn(o, c, k, k) / 10
            y = torch.nn.functional.conv2d(x, w, stride=s, padding=p)
            dy = torch.randn_like(y)

            def backward(mask):
                return torch.ops.aten.convolution_backward(
                    dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

            f = fastest_ms(lambda: torch.nn.functional.conv2d(x, w, stride=s, padding=p))
            di = fastest_ms(lambda: backward([True, False, False]))
            dw = fastest_ms(lambda: backward([False, True, False]))
            flops = 2.0 * n * o * y.shape[2] * y.shape[3] * c * k * k
            rate = 3.0 * flops / ((f + di + dw) * 1e-3) / 1e9
            label = f"{c}→{o} {hw}×{hw} k{k} s{s}"
            print(f"{label:<24} {count:>5} {f:>9.2f} {di:>9.2f} {dw:>9.2f} {rate:>8.1f}")
            for i, t in enumerate((f, di, dw)):
                totals[i] += t * count
    print(f"{'total':<24} {'':>5} {totals[0]:>9.2f} {totals[1]:>9.2f} {totals[2]:>9.2f}")


if __name__ == "__main__":
    main()
