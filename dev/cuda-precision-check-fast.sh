#!/bin/bash
# cuda-precision-check-fast.sh BUILD_DIR SHARED_DIR [STEPS] [OUT_DIR] - does the faster
# training mode (TF32) end where fp32 does? Trains the standard network (batch 4, 256 px,
# starry_night, the shared photos, seed 1) for STEPS steps (default 2000) in fp32 and in
# tf32 on CUDA, the same data in the same order, and compares the mean total loss over
# the last tenth of the steps: the issue's bar is 1%. One line per run and a verdict line;
# the loss logs (CSV) stay in OUT_DIR (default: a fresh /tmp folder).
# Exit status: 0 within 1%, 1 not (or a run failed), 2 usage.
set -u
if [ $# -lt 2 ] || [ $# -gt 4 ]; then
    echo "usage: dev/cuda-precision-check-fast.sh BUILD_DIR SHARED_DIR [STEPS] [OUT_DIR]" >&2
    exit 2
fi
NST=$(cd "$1" && pwd)/nst || exit 2
SHARED=$(cd "$2" && pwd) || exit 2
STEPS=${3:-2000}
OUT=${4:-$(mktemp -d /tmp/nst-precision-XXXXXX)}
mkdir -p "$OUT" || exit 2
export NST_WEIGHTS=$SHARED/models/vgg19
last=$((STEPS / 10))
[ "$last" -lt 1 ] && last=1
for p in fp32 tf32; do
    t0=$SECONDS
    if ! "$NST" train --device cuda --precision "$p" --style "$SHARED/images/style/starry_night.jpg" \
        --data "$SHARED/datasets/photos256" -o "$OUT/$p.nstm" --steps "$STEPS" --checkpoint-every 0 \
        --log "$OUT/$p.csv" -q > "$OUT/$p.log" 2>&1; then
        echo "precision check: the $p run failed: $(tail -n 1 "$OUT/$p.log")"
        exit 1
    fi
    # the mean total loss (last column) over the last $last steps
    mean=$(awk -F, -v n="$STEPS" -v k="$last" 'NR > 1 && $1 > n - k { s += $NF; c++ } END { if (c) printf "%.6g", s / c }' "$OUT/$p.csv")
    first=$(awk -F, 'NR == 2 { printf "%.6g", $NF }' "$OUT/$p.csv")
    eval "mean_$p=\$mean"
    echo "precision check: $p: $STEPS steps in $((SECONDS - t0)) s, total loss $first at step 1, mean $mean over the last $last"
done
awk -v a="$mean_fp32" -v b="$mean_tf32" 'BEGIN {
    d = (b - a) / a * 100; ok = (d < 1 && d > -1)
    printf "precision check: tf32 vs fp32 final loss %+.2f%% (bar: within 1%%): %s\n", d, ok ? "ok" : "NOT WITHIN 1%"
    exit !ok }'
