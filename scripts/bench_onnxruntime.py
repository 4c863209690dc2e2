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

Needs `torch`, `torchvision`, `onnx` and `onnxruntime` in a virtual environment outside the
repository (`pip install torch torchvision onnx onnxscript onnxruntime`). Never run in CI.
"""

import argparse
import os
import tempfile
import time

import torch

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
    args = ap.parse_args()

    import onnxruntime as ort
    import torch.nn as nn
    import torchvision.models as tv

    torch.manual_seed(0)
    results = []
    print(f"{'model':<12} {'phase':<6} {'px':>5} {'batch':>6} {'median':>10} {'min':>10} {'max':>10}"
          f"  (onnxruntime {ort.__version__}, {args.threads} threads)")
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
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            feed = {"input": x.numpy()}
            times = []
            for step in range(args.warmup + args.reps):
                start = time.perf_counter()
                out = session.run(None, feed)[0]
                float(out.sum())
                if step >= args.warmup:
                    times.append(time.perf_counter() - start)
            results.append(case_result(name, size, batch, "infer", part, times))
    write_report(args.out, "onnxruntime-cpu", args.threads, results, onnxruntime=ort.__version__)


class Features(torch.nn.Module):
    """AlexNet's timed part as a module, so that it exports as one graph."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return features(self.model, x)


if __name__ == "__main__":
    main()
