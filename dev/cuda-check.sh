#!/usr/bin/env bash
# cuda-check.sh BUILD_DIR SHARED_DIR OUT_DIR [gatys|fast|all] - the checks of the CUDA
# backend on a machine with a GPU, with a verdict: exit status 0 if every stage passed,
# else 1 (2: usage). `gatys` is the optimization-based path (about 4 minutes on an H100),
# `fast` the style network's (about 3, at most 8); `all` (the default) runs both, their
# logs in OUT_DIR/gatys/ and OUT_DIR/fast/ (one part alone: in OUT_DIR itself).
# gatys, logs in its folder:
#   devices.txt     nvidia-smi and `nst info --devices`
#   tests.log       test_cuda_gatys (oracle, GPU vs CPU, finite differences, TF32) and
#                   test_cli_cuda.sh, run directly (ctest's files hold the paths of the
#                   machine that built them)
#   bench.log       nst bench --device cuda at 1024 px, fp32 and tf32
#   compare.log     bench/compare_cuda_pytorch.py: nst vs PyTorch eager on this GPU
#   transfer_512.*  a real transfer (gatys preset, 512 px, 500 L-BFGS steps): image,
#                   loss log, stderr and its wall time
#   summary.txt     one line per stage: ok / FAILED and seconds
# fast, each step's output in <step>.log and one line per step in summary.txt:
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
# BUILD_DIR holds nst, the tests and bench_fast_cuda built with CUDA (cmake found nvcc and
# cuDNN); SHARED_DIR the shared data (weights in models/vgg19, the oracle, images).
# Runtime libraries (cuDNN, cuBLAS, libpng, ...) come from LD_LIBRARY_PATH, else from the
# CUDA wheels of this machine's PyTorch.
set -u
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: dev/cuda-check.sh BUILD_DIR SHARED_DIR OUT_DIR [gatys|fast|all]" >&2
    exit 2
fi
WHAT=${4:-all}
case $WHAT in gatys|fast|all) ;; *) echo "dev/cuda-check.sh: '$WHAT': say gatys, fast or all" >&2; exit 2 ;; esac
BUILD=$(cd "$1" && pwd) || exit 2
SHARED=$(cd "$2" && pwd) || exit 2
mkdir -p "$3" && TOP=$(cd "$3" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NST=$BUILD/nst
export NST_SHARED_DIR=$SHARED NST_WEIGHTS=$SHARED/models/vgg19 NST_MODELS=$ROOT/models
PY=${PYTHON:-python3}

# libraries that the loader cannot find: try the CUDA wheels of this machine's PyTorch
# (site-packages/nvidia/*/lib: cuBLAS, cuDNN) before giving up
if ldd "$NST" 2>/dev/null | grep -q "not found"; then
    for d in $("$PY" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null); do
        for lib in $(find "$d" -maxdepth 3 -type d -name lib 2>/dev/null); do
            LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        done
    done
    export LD_LIBRARY_PATH
    ldd "$NST" | grep "not found" && echo "cuda-check: libraries missing (above); set LD_LIBRARY_PATH" >&2
fi

# ---- the optimization-based (Gatys) path; runs in a subshell, OUT is its folder
check_gatys() {
failed=0
: >"$OUT/summary.txt"

# stage NAME LOG TIMEOUT_S COMMAND...: runs it with a time limit, appends to LOG, notes
# the result in summary.txt
stage() {
    local name=$1 log=$2 limit=$3
    shift 3
    local t0=$SECONDS
    echo "== $name: $*" >>"$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    local result=ok
    if [ $rc = 77 ]; then result="SKIPPED (no usable GPU)"
    elif [ $rc = 124 ]; then result="FAILED (timed out after $limit s)"
    elif [ $rc != 0 ]; then result="FAILED (exit $rc)"
    fi
    echo "$name: $result in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    [ $rc = 0 ] || failed=1
}

{ nvidia-smi; echo; "$NST" info --devices; } >"$OUT/devices.txt" 2>&1
grep '^cuda:' "$OUT/devices.txt"

stage test_cuda_gatys "$OUT/tests.log" 240 "$BUILD/test_cuda_gatys"
stage test_cli_cuda "$OUT/tests.log" 120 bash "$ROOT/tests/test_cli_cuda.sh" "$NST" "$SHARED"
grep -E "^(GPU|features|gradient|loss|layer|adam|network|gradcheck|transfer|cpu/cuda|tf32) |FAIL|SKIP|passed" \
    "$OUT/tests.log" | head -80

stage bench_fp32 "$OUT/bench.log" 60 "$NST" bench --device cuda --size 1024 --iters 5
stage bench_tf32 "$OUT/bench.log" 60 "$NST" bench --device cuda --precision tf32 --size 1024 --iters 5
cat "$OUT/bench.log"

stage transfer_512 "$OUT/transfer_512.stderr" 120 "$NST" transfer --device cuda \
    --content "$SHARED/images/content/tubingen.jpg" --style "$SHARED/images/style/starry_night.jpg" \
    -o "$OUT/transfer_512.jpg" --log "$OUT/transfer_512.csv"
tail -3 "$OUT/transfer_512.stderr"
[ -s "$OUT/transfer_512.csv" ] && echo "transfer_512 loss: $(sed -n '2p' "$OUT/transfer_512.csv") -> $(tail -1 "$OUT/transfer_512.csv")"

stage compare_pytorch "$OUT/compare.log" 300 "$PY" "$ROOT/bench/compare_cuda_pytorch.py" --nst "$NST" \
    --weights "$SHARED/models/vgg19" --sizes 512,1024,2048 --try-sizes 4096 --tf32-sizes 2048 --search-sizes 2048 --iters 5
cat "$OUT/compare.log"

echo "---"
cat "$OUT/summary.txt"
exit $failed
}

# ---- the style network (fast style transfer, Johnson); runs in a subshell, OUT is its folder
check_fast() {
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
    python3 - "$OUT/tubingen_cuda.png" "$OUT/tubingen_cpu.png" "$OUT/tubingen_cuda_tf32.png" "$OUT/tubingen_cuda_fp16.png" <<'PYEOF' || true
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
PYEOF
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

step bench 120 "$PY" "$ROOT/bench/compare_fast_cuda_pytorch.py" --bench "$BUILD/bench_fast_cuda" \
    --weights "$SHARED/models/vgg19" --iters 10

echo "---- summary"
cat "$OUT/summary.txt"
exit $failed
}

rc=0
for part in gatys fast; do
    [ "$WHAT" = all ] || [ "$WHAT" = "$part" ] || continue
    OUT=$TOP
    [ "$WHAT" = all ] && OUT=$TOP/$part && mkdir -p "$OUT"
    echo "==== cuda-check $part: logs in $OUT"
    ( "check_$part" ) || rc=1
done
[ "$WHAT" = all ] && { echo "==== cuda-check: both parts"; cat "$TOP/gatys/summary.txt" "$TOP/fast/summary.txt"; }
exit $rc
