#!/usr/bin/env bash
# cuda-check.sh BUILD_DIR SHARED_DIR OUT_DIR - the checks of the CUDA Gatys path on a
# machine with a GPU (about 4 minutes on an H100), logs in OUT_DIR:
#   devices.txt     nvidia-smi and `nst info --devices`
#   tests.log       test_cuda_gatys (oracle, GPU vs CPU, finite differences, TF32) and
#                   test_cli_cuda.sh, run directly (ctest's files hold the paths of the
#                   machine that built them); the fast-style tests are cuda-check-fast.sh's
#   bench.log       nst bench --device cuda at 1024 px, fp32 and tf32
#   compare.log     bench/compare_cuda_pytorch.py: nst vs PyTorch eager on this GPU
#   transfer_512.*  a real transfer (gatys preset, 512 px, 500 L-BFGS steps): image,
#                   loss log, stderr and its wall time
#   summary.txt     one line per stage: ok / FAILED and seconds
# BUILD_DIR holds nst and the tests built with CUDA; SHARED_DIR the shared data (weights
# in models/vgg19, the oracle, images). Runtime libraries (cuDNN, cuBLAS, libpng, ...)
# come from LD_LIBRARY_PATH. Exit status: 0 if every stage passed.
set -u
if [ $# -ne 3 ]; then
    echo "usage: scripts/cuda-check.sh BUILD_DIR SHARED_DIR OUT_DIR" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd) SHARED=$(cd "$2" && pwd)
mkdir -p "$3"
OUT=$(cd "$3" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NST=$BUILD/nst
export NST_SHARED_DIR=$SHARED NST_WEIGHTS=$SHARED/models/vgg19
PY=${PYTHON:-python3}
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
