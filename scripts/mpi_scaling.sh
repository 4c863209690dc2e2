#!/bin/bash
# Throughput of one process with 2 threads against 2 MPI processes with 1 thread each, for
# LeNet-5 and ResNet-20 (images/s of the second epoch, from each run's metrics.csv), two rounds:
#   cargo build -p cnn-cli --features mpi && scripts/mpi_scaling.sh [path/to/cnn]
# Needs Open MPI (Debian: openmpi-bin) and Fashion-MNIST in /usr/share/datasets
# (dataset-fashion-mnist). `--allow-run-as-root` only matters where you run as root.
set -eu
N=${1:-${CARGO_TARGET_DIR:-target}/debug/cnn}
O=$(mktemp -d)
lenet="--model lenet5 --dataset mnist-5k --epochs 2 --batch-size 64 --optimizer sgd --lr 0.05 --workers 1"
resnet="--model resnet20 --dataset fashion-mnist --data-dir /usr/share/datasets --subset 2048 --epochs 2 --batch-size 128 --optimizer sgd --lr 0.05 --workers 1"
for r in 1 2; do
  for m in lenet resnet; do
    args=${!m}
    RAYON_NUM_THREADS=2 $N --device flex train $args --out $O/$m-one-$r > $O/$m-one-$r.log 2>&1
    mpirun --allow-run-as-root --oversubscribe -n 2 -x RAYON_NUM_THREADS=1 \
      $N --device flex train $args --distributed --out $O/$m-two-$r > $O/$m-two-$r.log 2>&1
    echo "$m round $r: 1 process x 2 threads $(tail -1 $O/$m-one-$r/metrics.csv | cut -d, -f10) img/s," \
      "2 processes x 1 thread $(tail -1 $O/$m-two-$r/metrics.csv | cut -d, -f10) img/s"
  done
done
rm -rf "$O"
