#!/usr/bin/env python3
"""Writes crates/data-augment/tests/data/autoaugment_torchvision.json: torchvision's magnitude
tables of RandAugment and TrivialAugmentWide (31 bins, a 28x28 image) and what each of their 14
ops does to two fixed uint8 images (gray 9x7 and RGB 6x5) at a few magnitudes, through the same
function the policies call (`_apply_op`, nearest interpolation, no fill). Reproducible: the
images are a fixed formula.

    python scripts/make_autoaugment_reference.py   # needs torch and torchvision
"""
import json
import pathlib

import torch
from torchvision.transforms import InterpolationMode, RandAugment, TrivialAugmentWide
from torchvision.transforms.autoaugment import _apply_op


def image(channels, height, width):
    values = [(i * 37 + (i // 5) * 11) % 256 for i in range(channels * height * width)]
    return torch.tensor(values, dtype=torch.uint8).reshape(channels, height, width)


def table(space):
    return {name: {"values": [float(v) for v in mags.flatten().tolist()], "signed": signed}
            for name, (mags, signed) in space.items()}


def main():
    out = {
        "tables": {
            "rand_augment": table(RandAugment()._augmentation_space(31, (28, 28))),
            "trivial_augment_wide": table(TrivialAugmentWide()._augmentation_space(31)),
        },
        "cases": [],
    }
    magnitudes = {
        "Identity": [0.0], "AutoContrast": [0.0], "Equalize": [0.0],
        "ShearX": [0.3, -0.51], "ShearY": [0.3, -0.51], "TranslateX": [3.0, -2.6], "TranslateY": [3.0, -2.6],
        "Rotate": [30.0, -135.0], "Brightness": [0.5, -0.33], "Color": [0.5, -0.33], "Contrast": [0.5, -0.33],
        "Sharpness": [0.9, -0.6], "Posterize": [7.0, 2.0], "Solarize": [127.5, 8.5],
    }
    for name, (c, h, w) in [("gray", (1, 9, 7)), ("rgb", (3, 6, 5))]:
        img = image(c, h, w)
        for op, mags in magnitudes.items():
            for m in mags:
                result = _apply_op(img, op, m, interpolation=InterpolationMode.NEAREST, fill=None)
                out["cases"].append({
                    "image": name, "channels": c, "height": h, "width": w, "op": op, "magnitude": m,
                    # HWC order, as our images
                    "input": img.permute(1, 2, 0).flatten().tolist(),
                    "output": result.permute(1, 2, 0).flatten().tolist(),
                })
    path = pathlib.Path(__file__).resolve().parent.parent / "crates/data-augment/tests/data/autoaugment_torchvision.json"
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path} ({len(out['cases'])} cases)")


if __name__ == "__main__":
    main()
