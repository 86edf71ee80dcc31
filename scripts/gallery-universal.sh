#!/usr/bin/env bash
# gallery-universal.sh - the pictures of docs/universal.md: photo/painting pairs from
# ../shared that the decoders never saw, stylised in one pass (nst apply --style, 512 px),
# and for the first COMPARE pairs also by optimisation (the gatys preset: 100 L-BFGS
# iterations from the photo, and 30 from the one-pass result, --init universal) and by
# AdaIN, into docs/gallery/universal/PHOTO_PAINTING{,_lbfgs100,_uni30,_adain}.jpg.
# The photos and paintings themselves stay in ../shared (never copied into the repo).
# Environment: NST (build/nst), SIZE (512), COMPARE (4), PAIRS (PHOTO:PAINTING stems).
set -euo pipefail
cd "$(dirname "$0")/.."
NST=${NST:-build/nst}
SIZE=${SIZE:-512}
COMPARE=${COMPARE:-4}
PAIRS=${PAIRS:-"tubingen:starry_night golden_gate:great_wave brad_pitt:the_scream woman_smiling:the_kiss
chicago:composition_vii lake_pier:hiroshige_toyokawa_bridge stata:udnie flowers:water_lilies"}
OUT=docs/gallery/universal
mkdir -p "$OUT"
i=0
for pair in $PAIRS; do
    photo=../shared/images/content/${pair%%:*}.jpg painting=../shared/images/style/${pair#*:}.jpg
    name=${pair%%:*}_${pair#*:}
    "$NST" apply --style "$painting" "$photo" --size "$SIZE" -o "$OUT/$name.jpg" -q
    if [ "$i" -lt "$COMPARE" ]; then
        "$NST" apply --style "$painting" --method adain "$photo" --size "$SIZE" -o "$OUT/${name}_adain.jpg" -q
        "$NST" transfer --content "$photo" --style "$painting" --size "$SIZE" --steps 100 -o "$OUT/${name}_lbfgs100.jpg" -q
        "$NST" transfer --content "$photo" --style "$painting" --size "$SIZE" --steps 30 --init universal \
            -o "$OUT/${name}_uni30.jpg" -q
    fi
    i=$((i + 1))
    echo "gallery-universal.sh: $name"
done
