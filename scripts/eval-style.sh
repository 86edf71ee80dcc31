#!/usr/bin/env bash
# eval-style.sh MODEL.nstm PAINTING PHOTO... - how good is a trained style network?
# For each photo (ideally one it was not trained on: nst train holds out the last
# --holdout files of its folder), it measures with the training loss (the defaults of
# nst train: content relu4_2 x7.5, style relu1_1..relu5_1 x100, TV x200, at 256 px, the
# painting at 512 px):
#   fast:  the network's output (nst apply), scored by one evaluation of that loss
#   optim: the optimization-based result for the same photo and the same loss
#          (nst transfer, L-BFGS, $STEPS steps from the photo, default 300)
# and prints both, weighted, as content / style / tv / total. Needs a built nst.
set -euo pipefail
cd "$(dirname "$0")/.."
NST=${NST:-build/nst}
MODEL=$1
PAINTING=$2
shift 2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
LOSS=(--size 256 --style-scale 2 --content-layers relu4_2 --content-weight 7.5
      --style-layers relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 --style-weight 100 --tv-weight 200
      --gram normalized -q)
printf '%-14s %-6s %12s %12s %12s %12s %8s\n' photo method content style tv total seconds
for photo in "$@"; do
    name=$(basename "$photo")
    # the photo as the network and the transfer see it: 256 px on the longer side
    "$NST" apply --model "$MODEL" "$photo" --size 256 -o "$T/fast.png" -q
    "$NST" transfer --content "$photo" --style "$PAINTING" "${LOSS[@]}" --init "$T/fast.png" \
        --optimizer adam --steps 1 -o "$T/scored.png" --log "$T/fast.csv"
    start=$(date +%s.%N)
    "$NST" transfer --content "$photo" --style "$PAINTING" "${LOSS[@]}" --steps "${STEPS:-300}" -o "$T/optim.png" \
        --log "$T/optim.csv"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b - a}')
    # fast: the loss at its output (row 1 of an Adam run is the loss before any update);
    # optim: the loss at its last step
    awk -F, -v n="$name" 'NR==2{printf "%-14s %-6s %12.5g %12.5g %12.5g %12.5g %8s\n", n, "fast", $3, $4, $5, $6, "-"}' "$T/fast.csv"
    tail -1 "$T/optim.csv" | awk -F, -v n="$name" -v s="$secs" '{printf "%-14s %-6s %12.5g %12.5g %12.5g %12.5g %8.1f\n", n, "optim", $3, $4, $5, $6, s}'
done
