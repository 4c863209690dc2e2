#!/usr/bin/env python3
"""The torchvision.transforms.v2 equivalents of our `imagenet` and `cifar` augmentation presets,
timed on the same images on one core, so that `cnn augment bench` can be compared in one run.

    pip install torch torchvision pillow          # in a venv outside the repository
    python3 scripts/bench_torchvision_augment.py [--images datasets/photos] [--n 200] [--reps 5]
    cargo run -p cnn-cli -- augment bench --augment imagenet
    cargo run -p cnn-cli -- augment bench --augment cifar --input-size 32 --n 5000

Both sides start from decoded 8-bit images held in memory and produce 8-bit images (no
normalisation), one image at a time, on one thread.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

try:
    import torch
    from PIL import Image
    from torchvision.transforms import v2
except ImportError as e:  # pragma: no cover
    sys.exit(f"needs torch, torchvision and pillow: {e}")

# The eigenpairs our `pca_color` op uses by default (ImageNet, 0-1 scale).
EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
EIGVEC = torch.tensor([[-0.5675, -0.5808, -0.5836], [0.7192, -0.0045, -0.6948], [0.4009, -0.8140, 0.4203]])


class PcaLighting(torch.nn.Module):
    """AlexNet PCA colour augmentation on a uint8 CHW tensor."""

    def __init__(self, sigma=0.1):
        super().__init__()
        self.sigma = sigma

    def forward(self, img):
        alpha = torch.randn(3) * self.sigma
        offset = (EIGVEC * (alpha * EIGVAL)[:, None]).sum(0) * 255.0
        return (img.float() + offset[:, None, None]).round().clamp(0, 255).to(torch.uint8)


def pipelines():
    return {
        "imagenet": v2.Compose([
            v2.RandomResizedCrop(224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
            PcaLighting(0.1),
        ]),
        "cifar": v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(0.5)]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default="datasets/photos")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    photos = [v2.functional.pil_to_tensor(Image.open(f).convert("RGB")) for f in files]
    small = [v2.functional.resize(p, [32, 32], antialias=False) for p in photos]
    for name, inputs, n in (("imagenet", photos, args.n), ("cifar", small, args.n * 25)):
        pipe = pipelines()[name]
        rates = []
        for rep in range(args.reps + 1):
            start = time.perf_counter()
            for i in range(n):
                pipe(inputs[i % len(inputs)])
            if rep:
                rates.append(n / (time.perf_counter() - start))
        print(f"torchvision {name}: {statistics.median(rates):.0f} images/s on one core "
              f"(median of {len(rates)}, min {min(rates):.0f}, max {max(rates):.0f})")


if __name__ == "__main__":
    main()
