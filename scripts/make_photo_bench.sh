#!/bin/sh
# Builds an image folder for the data-pipeline benchmark on RGB photos: the three photos of
# datasets/photos, each copied N times into its own class folder, so that every sample is a real
# PNG/JPEG decoded from disk (random-resized crops make every epoch's samples differ).
#   scripts/make_photo_bench.sh [DIR] [N]      default: target/photo-bench, 64 copies each
set -eu
dir=${1:-target/photo-bench}
n=${2:-64}
here=$(dirname "$0")/..
for photo in "$here"/datasets/photos/*; do
    file=$(basename "$photo")
    class=${file%.*}
    ext=${file##*.}
    mkdir -p "$dir/$class"
    i=0
    while [ "$i" -lt "$n" ]; do
        cp "$photo" "$dir/$class/$(printf %03d "$i").$ext"
        i=$((i + 1))
    done
done
echo "$dir: $(find "$dir" -type f | wc -l) images in $(ls "$dir" | wc -l) classes"
