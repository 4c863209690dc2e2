#!/usr/bin/env python3
"""ONNX Runtime reference for `cargo xtask bench`: inference of the suite's models, the same JSON.

    python3 scripts/bench_onnxruntime.py --out target/bench-ort.json [--threads 2]
    cargo xtask bench --compare target/bench-ort.json --compare target/bench-pytorch.json

Each model of the suite (the PyTorch twins of `scripts/bench_pytorch.py`, same sizes and
batches) is exported with `torch.onnx.export` in eval mode at its batch and run by ONNX
Runtime's CPU execution provider with all graph optimisations, `--threads` intra-op threads
(default: every core) and one inter-op thread. What is timed matches `cnn bench`'s inference
step: one `run` of the batch, the output read back. Training is not measured (ONNX Runtime
does not train these models); the AlexNet case is the convolutional part only (`features` +
`avgpool`), as everywhere in the suite.

    python3 scripts/bench_onnxruntime.py --onnx resnet18=r18.onnx --out target/bench-ort-ours.json

times files exported by `cnn weights export --format onnx` instead (repeatable; the case is
named before `=`, its input shape is the file's, `--batch` fixes a dynamic batch axis, 1 if
not given): ONNX Runtime on our export, for comparing with `cnn bench` and with ONNX Runtime
on PyTorch's export of the same network (its backend is `onnxruntime-cpu (cnn export)`). Only
`onnxruntime` and `numpy` are needed for it.

Needs `torch`, `torchvision`, `onnx` and `onnxruntime` in a virtual environment outside the
repository (`pip install torch torchvision onnx onnxscript onnxruntime`). Never run in CI.
"""

import argparse
import os
import tempfile
import time

from bench_pytorch import SUITE, build, case_result, features, write_report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads [default: CPU count]")
    ap.add_argument("--model", action="append", help="only these models (repeatable)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size", type=int, help="override the input size of every case")
    ap.add_argument("--batch", type=int, help="override the batch of every case")
    ap.add_argument("--onnx", action="append", metavar="NAME=FILE",
                    help="time this ONNX file as case NAME instead of exporting the suite (repeatable)")
    args = ap.parse_args()

    import onnxruntime as ort

    results = []
    print(f"{'model':<12} {'phase':<6} {'px':>5} {'batch':>6} {'median':>10} {'min':>10} {'max':>10}"
          f"  (onnxruntime {ort.__version__}, {args.threads} threads)")
    if args.onnx:
        results = [time_file(spec, args, ort) for spec in args.onnx]
    else:
        results = export_and_time_suite(args, ort)
    backend = "onnxruntime-cpu (cnn export)" if args.onnx else "onnxruntime-cpu"
    write_report(args.out, backend, args.threads, results, onnxruntime=ort.__version__)


def export_and_time_suite(args, ort):
    """The suite's PyTorch models, exported by torch.onnx and timed."""
    import torch
    import torch.nn as nn
    import torchvision.models as tv

    torch.manual_seed(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, batch, part in SUITE:
            if args.model and name not in args.model:
                continue
            size, batch = args.size or size, args.batch or batch
            model, channels = build(name, 10, torch, nn, tv)
            model.eval()
            module = Features(model) if part == "features" else model
            x = torch.randn(batch, channels, size, size)
            path = os.path.join(tmp, f"{name}.onnx")
            torch.onnx.export(module, (x,), path, input_names=["input"], output_names=["output"],
                              opset_version=18, dynamo=True)
            times = time_session(path, x.numpy(), args, ort)
            results.append(case_result(name, size, batch, "infer", part, times))
    return results


def time_file(spec, args, ort):
    """One `NAME=FILE` of --onnx: the file's own input shape, a dynamic batch set by --batch."""
    import numpy as np

    name, _, path = spec.partition("=")
    if not path:
        raise SystemExit(f"--onnx {spec}: give NAME=FILE")
    shape = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    batch = shape[0] if isinstance(shape[0], int) else (args.batch or 1)
    if args.batch and args.batch != batch:
        raise SystemExit(f"--onnx {spec}: the file takes batches of {batch}, not --batch {args.batch}")
    x = np.random.default_rng(0).standard_normal((batch, *shape[1:]), dtype=np.float32)
    times = time_session(path, x, args, ort)
    return case_result(name, shape[2], batch, "infer", "whole", times)


def time_session(path, x, args, ort):
    """Seconds of each timed `run` of `x` (after the warm-up runs), all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    times = []
    for step in range(args.warmup + args.reps):
        start = time.perf_counter()
        out = session.run(None, feed)[0]
        float(out.sum())
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return times


def Features(model):
    """AlexNet's timed part as a module, so that it exports as one graph."""
    import torch

    class Part(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return features(self.model, x)

    return Part(model)


if __name__ == "__main__":
    main()
