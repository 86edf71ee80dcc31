#!/bin/bash
# cuda-check-fast.sh BUILD_DIR SHARED_DIR OUT_DIR - the fast-style (Johnson) CUDA checks on
# a machine with a GPU, in about 3 minutes (at most 8), each step's output in OUT_DIR/<step>.log and
# one line per step in OUT_DIR/summary.txt:
#   gpu        nvidia-smi and nst's own description of the GPU
#   test       BUILD_DIR/test_cuda_johnson (layers vs CPU and finite differences, network,
#              apply, training); exit 77 = skipped (no GPU); if it fails, its layer
#              tests again under compute-sanitizer (sanitizer.log)
#   apply      nst apply --device cuda (fp32, tf32, fp16) and --device cpu on a shared
#              photo (images kept), and a 4K apply on CUDA (fp32, tf32, fp16)
#   train      nst train --device cuda: 30 steps, batch 4 at 256 px, width 32, a checkpoint
#              every 10 (loss log and preview kept), then --resume to 40
#   bench      bench/compare_fast_cuda_pytorch.py: apply 1024x1024 and 3840x2160, a
#              training step (batch 4, 256 px), nst vs PyTorch eager, fp32 and tf32
# The build must have CUDA (cmake found nvcc and cuDNN). LD_LIBRARY_PATH etc. come from
# the caller's environment. Exit status: 0 if every step passed, else 1.
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 BUILD_DIR SHARED_DIR OUT_DIR" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd) || exit 2
SHARED=$(cd "$2" && pwd) || exit 2
mkdir -p "$3" && OUT=$(cd "$3" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NST=$BUILD/nst
export NST_SHARED_DIR=$SHARED NST_WEIGHTS=$SHARED/models/vgg19 NST_MODELS=$ROOT/models
: > "$OUT/summary.txt"
failed=0

# step NAME TIMEOUT_S COMMAND...: runs it, logs it, records its status and time
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name: $*" | tee "$OUT/$name.log"
    timeout "$limit" bash -c '"$@"' step "$@" >> "$OUT/$name.log" 2>&1
    local rc=$?
    local verdict=ok
    [ $rc -ne 0 ] && verdict=FAILED && failed=1
    [ $rc -eq 77 ] && verdict=skipped
    [ $rc -eq 124 ] && verdict="TIMED OUT after ${limit}s"
    echo "$name: $verdict (status $rc, $((SECONDS - t0)) s)" | tee -a "$OUT/summary.txt"
    grep -m 30 "FAIL" "$OUT/$name.log" | tee -a "$OUT/summary.txt"
    tail -n 20 "$OUT/$name.log"
    return $rc
}

export NST OUT SHARED ROOT BUILD

gpu() {
    nvidia-smi || true
    "$NST" apply --help | grep -E "device|precision"
}
export -f gpu
step gpu 30 gpu

if ! step test 200 "$BUILD/test_cuda_johnson"; then
    # a diagnosis for the one-shot run: the layers alone under compute-sanitizer (memcheck)
    SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    [ -x "$SAN" ] && step sanitizer 90 "$SAN" --print-limit 20 "$BUILD/test_cuda_johnson" --layers
fi

apply_check() {
    local photo=$SHARED/images/content/tubingen.jpg
    "$NST" apply --model starry_night --device cuda "$photo" -o "$OUT/tubingen_cuda.png" || return 1
    "$NST" apply --model starry_night --device cuda --precision tf32 "$photo" -o "$OUT/tubingen_cuda_tf32.png" || return 1
    "$NST" apply --model starry_night --device cuda --precision fp16 "$photo" -o "$OUT/tubingen_cuda_fp16.png" || return 1
    "$NST" apply --model starry_night --device cpu "$photo" -o "$OUT/tubingen_cpu.png" || return 1
    "$NST" apply --model starry_night --device cuda --size 3840 "$photo" -o "$OUT/tubingen_4k_cuda.jpg" || return 1
    "$NST" apply --model starry_night --device cuda --precision tf32 --size 3840 "$photo" -o "$OUT/tubingen_4k_tf32.jpg" || return 1
    "$NST" apply --model starry_night --device cuda --precision fp16 --size 3840 "$photo" -o "$OUT/tubingen_4k_fp16.jpg" || return 1
    # several photos through one network (buffers resized between sizes)
    "$NST" apply --model udnie --device cuda --out-dir "$OUT/apply_dir" "$SHARED/images/content" || return 1
    ls -l "$OUT"/*.png "$OUT"/*.jpg "$OUT/apply_dir"
    # CPU vs CUDA on the same PNG: the largest pixel difference (8-bit, so rounding can differ by 1)
    python3 - "$OUT/tubingen_cuda.png" "$OUT/tubingen_cpu.png" "$OUT/tubingen_cuda_tf32.png" "$OUT/tubingen_cuda_fp16.png" <<'EOF' || true
import sys
try:
    from PIL import Image
    import numpy as np
except ImportError:
    sys.exit(0)
a, b, c, d = (np.asarray(Image.open(p), dtype=np.int32) for p in sys.argv[1:5])
print(f"CPU vs CUDA fp32 (8-bit): max |diff| {abs(a - b).max()}, mean {abs(a - b).mean():.4f}")
print(f"CPU vs CUDA tf32 (8-bit): max |diff| {abs(c - b).max()}, mean {abs(c - b).mean():.4f}")
print(f"CPU vs CUDA fp16 (8-bit): max |diff| {abs(d - b).max()}, mean {abs(d - b).mean():.4f}")
EOF
}
export -f apply_check
step apply 40 apply_check

train_check() {
    local dir=$OUT/train
    mkdir -p "$dir"
    "$NST" train --device cuda --style "$SHARED/images/style/starry_night.jpg" --data "$SHARED/datasets/photos256" \
        -o "$dir/m.nstm" --steps 30 --checkpoint-every 10 --log "$dir/loss.csv" || return 1
    "$NST" train --device cuda --style "$SHARED/images/style/starry_night.jpg" --data "$SHARED/datasets/photos256" \
        -o "$dir/m.nstm" --steps 40 --checkpoint-every 10 --resume "$dir/m.nstm.ckpt" --log "$dir/loss.csv" || return 1
    cat "$dir/loss.csv"
    "$NST" info "$dir/m.nstm"
    ls -l "$dir"
}
export -f train_check
step train 50 train_check

step bench 120 python3 "$ROOT/bench/compare_fast_cuda_pytorch.py" --bench "$BUILD/bench_fast_cuda" \
    --weights "$SHARED/models/vgg19" --iters 10

echo "---- summary"
cat "$OUT/summary.txt"
exit $failed
