#!/usr/bin/env python3
"""Check a `cnn weights export --format onnx` file with the ONNX checker and ONNX Runtime.

    cnn weights export --run runs/r18 --out r18.onnx --dynamic-batch --io r18.io.safetensors
    python scripts/check_onnx.py r18.onnx r18.io.safetensors

Runs the ONNX checker (full check, with shape inference), prints the file's opset, input and
output shapes and metadata, runs the `input` tensor of the --io file through ONNX Runtime's CPU
provider and compares the logits with the file's `logits` (ours): prints the largest absolute
difference and the largest relative to the largest logit, and exits non-zero when the relative
one is above --tolerance (1e-4). Needs `pip install onnx onnxruntime safetensors numpy`.
"""

import argparse
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="the .onnx file")
    ap.add_argument("io", help="the --io file of cnn weights export (safetensors input, logits)")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    import onnx
    import onnxruntime as ort
    from safetensors.numpy import load_file

    proto = onnx.load(args.model)
    onnx.checker.check_model(proto, full_check=True)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    print(f"{args.model}: ONNX checker passed (full check); opset {opsets}; producer {proto.producer_name}")
    for entry in proto.metadata_props:
        print(f"  {entry.key}: {entry.value}")

    io = load_file(args.io)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    print(f"input {inp.name} {inp.shape}, output {out.name} {out.shape}")
    logits = session.run([out.name], {inp.name: io["input"].astype(np.float32)})[0]
    ours = io["logits"]
    if logits.shape != ours.shape:
        raise SystemExit(f"ONNX Runtime gave logits {logits.shape}, the file has {ours.shape}")
    gap = float(np.abs(logits - ours).max())
    relative = gap / max(float(np.abs(ours).max()), 1e-6)
    print(f"ONNX Runtime {ort.__version__}: logits {logits.shape}, max abs diff {gap:.3e}, "
          f"relative to the largest logit {relative:.3e} (tolerance {args.tolerance:g})")
    sys.exit(0 if relative <= args.tolerance else 1)


if __name__ == "__main__":
    main()
