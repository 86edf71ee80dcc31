#!/usr/bin/env bash
# gallery.sh - stylises the gallery photos with every shipped style (models/*.nstm) into
# docs/gallery/STYLE_PHOTO.jpg (512 px on the longer side), the pictures the README shows.
# The photos and paintings themselves stay in ../shared (never copied into the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
NST=${NST:-build/nst}
PHOTOS=${PHOTOS:-"tubingen golden_gate"}
mkdir -p docs/gallery
for model in models/*.nstm; do
    style=$(basename "$model" .nstm)
    for photo in $PHOTOS; do
        "$NST" apply --model "$model" "../shared/images/content/$photo.jpg" --size 512 \
            -o "docs/gallery/${style}_$photo.jpg"
    done
done
