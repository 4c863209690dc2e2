#!/usr/bin/env python3
"""PyTorch reference for `cargo xtask bench`: the same models, sizes and steps, the same JSON.

    python3 scripts/bench_pytorch.py --out target/bench-pytorch.json [--threads 2] [--cuda]
    python3 scripts/bench_pytorch.py --variant channels_last --out target/bench-pytorch-cl.json
    python3 scripts/bench_pytorch.py --variant compile --out target/bench-pytorch-compile.json
    python3 scripts/bench_pytorch.py --variant channels_last --bf16 --out target/bench-pytorch-cl-bf16.json
    cargo xtask bench --compare target/bench-pytorch.json --compare target/bench-pytorch-cl.json

`--variant` picks how PyTorch runs: `eager` (NCHW tensors, its default), `channels_last` (model
and input in channels-last memory format, oneDNN's preferred layout on CPUs) or `compile`
(`torch.compile` with its default inductor backend; compiling happens in the warm-up steps,
which are not timed). The JSON's `backend` names the variant (`pytorch-cpu`,
`pytorch-cpu-channels_last`, `pytorch-cpu-compile`), so a comparison says which one was fastest.
`--bf16` runs every forward pass (and a training step's loss) under `torch.autocast` in bf16, the
reference for `cnn bench --precision bf16`; the backend's name ends in `-bf16`.

Needs `torch` and `torchvision` (install them in a virtual environment outside the repository:
`python3 -m venv ~/torch && ~/torch/bin/pip install torch torchvision`). Never run in CI.

What is timed matches `cnn_trainer::bench::run_bench`: inference is a forward pass in eval mode
under `torch.inference_mode()`; a training step is forward, cross-entropy (plus 0.3 x each
GoogLeNet auxiliary loss), backward and an SGD-with-momentum update; every step ends by reading a
value back (so CUDA work is counted). The AlexNet case times the convolutional part only
(`features` + `avgpool`, loss = mean of the features), as the Rust suite does.
"""

import argparse
import json
import platform
import statistics
import sys
import time


def build(name, num_classes, torch, nn, tv):
    """The PyTorch twin of one of our registry models."""
    from torch_twins import CifarResNet, LeNet5

    if name == "lenet5":
        # LeCun et al. 1998 as in crates/models/src/lenet.rs: tanh, 2x2 average pooling.
        return LeNet5(num_classes, 1, torch.tanh), 1
    if name == "resnet20":
        return CifarResNet(3, num_classes, 3), 3
    if name == "resnet18":
        return tv.resnet18(num_classes=num_classes), 3
    if name == "vgg16":
        return tv.vgg16(num_classes=num_classes), 3
    if name == "googlenet":
        return tv.googlenet(num_classes=num_classes, aux_logits=True, init_weights=False), 3
    if name == "alexnet":
        return tv.alexnet(num_classes=num_classes), 3
    raise SystemExit(f"unknown model {name}")


# The suite of issue #8, mirrored by `cnn_trainer::bench::perf_suite`: (model, px, batch, part).
SUITE = [
    ("lenet5", 32, 64, "whole"),
    ("resnet20", 32, 128, "whole"),
    ("resnet18", 64, 32, "whole"),
    ("vgg16", 64, 16, "whole"),
    ("googlenet", 96, 16, "whole"),
    ("alexnet", 224, 8, "features"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--threads", type=int, default=None, help="torch threads [default: CPU count]")
    ap.add_argument("--cuda", action="store_true", help="run on the first CUDA device")
    ap.add_argument("--model", action="append", help="only these models (repeatable)")
    ap.add_argument("--phase", choices=["infer", "train", "both"], default="both")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size", type=int, help="override the input size of every case")
    ap.add_argument("--batch", type=int, help="override the batch of every case")
    ap.add_argument("--bf16", action="store_true", help="forward passes under bf16 autocast")
    ap.add_argument("--variant", choices=["eager", "channels_last", "compile"], default="eager",
                    help="how PyTorch runs the models [default: eager]")
    args = ap.parse_args()

    import torch
    import torch.nn as nn
    import torchvision.models as tv

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.cuda else "cpu")
    if args.cuda and not torch.cuda.is_available():
        sys.exit("--cuda: this PyTorch sees no CUDA device")
    torch.manual_seed(0)
    phases = ["infer", "train"] if args.phase == "both" else [args.phase]
    results = []
    print(f"{'model':<12} {'phase':<6} {'px':>5} {'batch':>6} {'median':>10} {'min':>10} {'max':>10}"
          f"  (pytorch {torch.__version__} {args.variant}{' bf16' if args.bf16 else ''} on {device}, {torch.get_num_threads()} threads)")
    for name, size, batch, part in SUITE:
        if args.model and name not in args.model:
            continue
        size, batch = args.size or size, args.batch or batch
        for phase in phases:
            model, channels = build(name, 10, torch, nn, tv)
            model = model.to(device)
            x = torch.randn(batch, channels, size, size, device=device)
            if args.variant == "channels_last":
                model = model.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.arange(batch, device=device) % 10
            # A compiled model compiles on its first calls: at least two untimed steps.
            warmup = max(args.warmup, 2) if args.variant == "compile" else args.warmup
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                times = run(model, x, y, part, phase, warmup, args.reps, torch, nn, device, args.variant)
            results.append(case_result(name, size, batch, phase, part, times))
    backend = "pytorch-cuda" if args.cuda else "pytorch-cpu"
    backend = backend if args.variant == "eager" else f"{backend}-{args.variant}"
    backend = f"{backend}-bf16" if args.bf16 else backend
    write_report(args.out, backend, torch.get_num_threads(), results, variant=args.variant, torch=torch.__version__)


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (as `cnn bench --json` records it), else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_report(path, backend, threads, results, **versions):
    """The JSON that `cnn bench --compare` and `cnn bench-compare` read."""
    doc = {"backend": backend, **versions, "threads": threads, "cpu": cpu_name(),
           "date": time.strftime("%Y-%m-%d"), "results": results}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"wrote {path}")


def case_result(name, size, batch, phase, part, times):
    """The suite's JSON entry of one case from its steps' seconds, printed as a table row."""
    times = sorted(times)
    rate = lambda t: batch / max(t, 1e-12)
    result = {
        "case": {"model": name, "size": size, "batch": batch, "num_classes": 10, "phase": phase, "part": part},
        "median_img_s": rate(times[len(times) // 2]),
        "min_img_s": rate(times[-1]),
        "max_img_s": rate(times[0]),
        "repetitions": len(times),
    }
    print(f"{name:<12} {phase:<6} {size:>5} {batch:>6} {result['median_img_s']:>10.1f} "
          f"{result['min_img_s']:>10.1f} {result['max_img_s']:>10.1f}", flush=True)
    return result


def run(model, x, y, part, phase, warmup, reps, torch, nn, device, variant="eager"):
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    times = []
    # What is timed: the whole model, or AlexNet's convolutional part; compiled as one graph.
    forward = (lambda inp: features(model, inp)) if part == "features" else model
    if variant == "compile":
        forward = torch.compile(forward)
    if phase == "infer":
        model.eval()
        with torch.inference_mode():
            for step in range(warmup + reps):
                start = time.perf_counter()
                out = forward(x)
                out.sum().item()
                sync()
                if step >= warmup:
                    times.append(time.perf_counter() - start)
        return times
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for step in range(warmup + reps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if part == "features":
            loss = forward(x).mean()
        else:
            out = forward(x)
            if hasattr(out, "aux_logits1"):  # GoogLeNet's training outputs
                loss = loss_fn(out.logits, y) + 0.3 * (loss_fn(out.aux_logits1, y) + loss_fn(out.aux_logits2, y))
            else:
                loss = loss_fn(out, y)
        loss.backward()
        opt.step()
        loss.item()
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def features(model, x):
    return model.avgpool(model.features(x)).flatten(1)


if __name__ == "__main__":
    main()
