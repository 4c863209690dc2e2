#!/usr/bin/env python3
"""Writes a LeNet-5 state_dict in PyTorch's *legacy* (pre-1.6, non-zip) `torch.save` format, and
the same tensors as `.safetensors`, without needing torch: the test fixture of the legacy-format
import path (crates/transfer/tests/data/).

The legacy format (torch/serialization.py, `_legacy_save`): five pickles in a row — the magic
number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys-info dict, the object itself
(tensors pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, OrderedDict())` with storages as persistent ids `('storage', torch.FloatStorage,
key, 'cpu', numel, None)`), the list of storage keys — then every storage as a little-endian
int64 element count followed by its bytes.

Usage: scripts/make_legacy_pth.py OUT_DIR      (writes lenet5_legacy.pth, lenet5.safetensors)
Values: a fixed linear-congruential sequence, so the files are byte-reproducible.
"""
import collections
import io
import json
import pickle
import struct
import sys
import types

# Stand-ins with torch's names, so that pickle writes `torch.FloatStorage` and
# `torch._utils._rebuild_tensor_v2` as the real torch.save does.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise RuntimeError("only for pickling")


FloatStorage.__module__ = "torch"
_rebuild_tensor_v2.__module__ = "torch._utils"
torch.FloatStorage = FloatStorage
torch._utils = torch_utils
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils

SHAPES = [
    ("conv1.weight", [6, 1, 5, 5]),
    ("conv1.bias", [6]),
    ("conv2.weight", [16, 6, 5, 5]),
    ("conv2.bias", [16]),
    ("fc1.weight", [120, 400]),
    ("fc1.bias", [120]),
    ("fc2.weight", [84, 120]),
    ("fc2.bias", [84]),
    ("fc3.weight", [10, 84]),
    ("fc3.bias", [10]),
]


def values(n, state):
    out = []
    for _ in range(n):
        state = (state * 1103515245 + 12345) % (2 ** 31)
        out.append((state / 2 ** 31 - 0.5) * 0.2)
    return out, state


class Storage:
    def __init__(self, key, data):
        self.key, self.data = key, data


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (_rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.data), None)
        return None


def main(out_dir):
    state, tensors, storages = 12345, collections.OrderedDict(), []
    for i, (name, shape) in enumerate(SHAPES):
        n = 1
        for d in shape:
            n *= d
        data, state = values(n, state)
        storage = Storage(str(i), data)
        storages.append(storage)
        tensors[name] = Tensor(storage, shape)

    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf, protocol=2)
    LegacyPickler(buf, protocol=2).dump(tensors)
    pickle.dump([s.key for s in storages], buf, protocol=2)
    for s in storages:
        buf.write(struct.pack("<q", len(s.data)))
        buf.write(struct.pack("<%df" % len(s.data), *s.data))
    with open(f"{out_dir}/lenet5_legacy.pth", "wb") as f:
        f.write(buf.getvalue())

    header, blobs, offset = {}, [], 0
    for s, (name, shape) in zip(storages, SHAPES):
        blob = struct.pack("<%df" % len(s.data), *s.data)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(f"{out_dir}/lenet5.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
