#!/usr/bin/env bash
# GPU check (issue #9), one prepared script for a machine with a real GPU; under 8 minutes on a
# 16-core machine including the build. Writes its results to $OUT (or target/gpu-check):
#   tests.log            the wgpu test suite (every test whose name contains "wgpu")
#   bench-*.json/.log    `cnn bench` on wgpu: ResNet-18 224px batch 64, ResNet-20 32px batch 256
#   pytorch-*.json       the same with scripts/bench_pytorch.py --cuda, if PyTorch with CUDA is here
#   compare-*.log        ours vs PyTorch CUDA per case
# Usage: scripts/gpu_check.sh   (from the repository root)
# QUICK=1 scripts/gpu_check.sh: a plumbing check anywhere (no test suite, tiny benchmark sizes).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/gpu-check}"
mkdir -p "$out"
export CARGO_TERM_COLOR=never XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/summary.txt"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName"
  nproc; } > "$out/machine.txt"
stamp "machine: $(head -1 "$out/machine.txt")"

stamp "building (dev profile, dependencies optimised) with --features wgpu"
cargo build --workspace --features wgpu --tests --bins > "$out/build.log" 2>&1 || { stamp "build FAILED (see build.log)"; exit 1; }
stamp "build done"

if [ -z "${QUICK:-}" ]; then
  stamp "wgpu test suite"
  timeout 240 cargo test --workspace --features wgpu wgpu > "$out/tests.log" 2>&1
  stamp "tests: exit $? — $(grep -E '^test result' "$out/tests.log" | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')"
fi

cnn="$(ls -t target/debug/cnn "${CARGO_TARGET_DIR:-target}/debug/cnn" 2>/dev/null | head -1)"
bench() { # name model size batch
  [ -n "${QUICK:-}" ] && set -- "$1" "$2" 32 4
  timeout 120 "$cnn" --device wgpu bench --model "$2" --size "$3" --batch "$4" --phase both \
    --warmup 3 --reps 10 --json "$out/bench-$1.json" > "$out/bench-$1.log" 2>&1
  stamp "cnn bench $1: exit $?"; cat "$out/bench-$1.log" | tee -a "$out/summary.txt"
}
bench resnet18-224-b64 resnet18 224 64
bench resnet20-32-b256 resnet20 32 256

if python3 -c "import torch, torchvision, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  for spec in "resnet18-224-b64 resnet18 224 64" "resnet20-32-b256 resnet20 32 256"; do
    set -- $spec
    timeout 120 python3 scripts/bench_pytorch.py --cuda --model "$2" --size "$3" --batch "$4" \
      --warmup 3 --reps 10 --out "$out/pytorch-$1.json" > "$out/pytorch-$1.log" 2>&1
    stamp "pytorch cuda $1: exit $?"
    python3 - "$out/bench-$1.json" "$out/pytorch-$1.json" <<'PY' | tee "$out/compare-$1.log" | tee -a "$out/summary.txt"
import json, sys
ours, ref = (json.load(open(p)) for p in sys.argv[1:3])
for r in ours["results"]:
    c = r["case"]
    for x in ref["results"]:
        if all(x["case"][k] == c[k] for k in ("model", "size", "batch", "phase")):
            print(f'{c["model"]} {c["phase"]} {r["median_img_s"]:.1f} img/s vs {x["median_img_s"]:.1f} img/s = {r["median_img_s"] / x["median_img_s"]:.2f}x')
PY
  done
else
  stamp "no PyTorch with CUDA on this machine: no reference figures"
fi
stamp "done"
