#!/usr/bin/env python3
"""Writes crates/data-augment/tests/data/resize_torchvision.json: torchvision's bilinear resize
with antialias=True (its default) of a few windows of datasets/photos/chelsea.png, shrinking and
enlarging, as HWC uint8 values, for the resize tolerance test.

    python scripts/make_resize_reference.py   # needs torch, torchvision, pillow
"""
import json
import pathlib

import torch
import torchvision
from PIL import Image
from torchvision.transforms.v2 import functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
# (top, left, height, width) -> (out_height, out_width)
CASES = [
    ((0, 0, 300, 451), (40, 61)),     # whole photo, 7.4x smaller
    ((37, 120, 180, 150), (48, 40)),  # a resized crop, 3.75x smaller
    ((100, 200, 24, 18), (40, 30)),   # enlarged 1.67x
    ((10, 10, 90, 120), (64, 32)),    # squeezed in one direction, stretched in the other
]


def main():
    img = F.pil_to_tensor(Image.open(ROOT / "datasets/photos/chelsea.png").convert("RGB"))
    cases = []
    for (top, left, h, w), (oh, ow) in CASES:
        out = F.resized_crop(img, top, left, h, w, [oh, ow], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
        cases.append({
            "top": top, "left": left, "height": h, "width": w, "out_height": oh, "out_width": ow,
            "hwc": out.permute(1, 2, 0).flatten().tolist(),
        })
    doc = {"source": f"torchvision {torchvision.__version__} (torch {torch.__version__}) resized_crop, bilinear, antialias=True; scripts/make_resize_reference.py",
           "cases": cases}
    path = ROOT / "crates/data-augment/tests/data/resize_torchvision.json"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
