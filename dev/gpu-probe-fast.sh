#!/bin/bash
# gpu-probe-fast.sh BUILD_DIR SHARED_DIR - a short look at the fast-style (Johnson) CUDA
# path on a GPU machine: about 3 minutes, under 160 lines on stdout; every step's whole
# output in $OUT/probe/ (the device tool's folder) or else in a fresh /tmp folder.
#   test     BUILD_DIR/test_cuda_johnson: FAIL lines, the whole network's parameter-gradient
#            lines (with the CPU's own sensitivity), its fp16 inference lines, the
#            training lines, the count (the layers' and apply's lines: in its log)
#   nst      bench_fast_cuda with NST_CUDA_PROFILE=1: each network layer's time (conv,
#            the rest; backward: norm, weight gradient, input gradient, the rest) for
#            apply 1024x1024 fp16; one training step's phases (upload, network
#            forward, VGG19 losses, network backward, Adam), one photo's VGG19 per conv layer
#            and the network per layer, fp32
#            (profiling runs the step without its CUDA graph: its step time is the eager
#            one, the comparison's is with the graph)
#   cudnn_out  bench_fast_cuda with NST_CUDA_OWN_CONV=0 (the output layer on cuDNN, not the
#            own 9x9 kernels): apply 1024x1024 fp32, tf32, fp16; the fp32 and tf32 training steps
#   precision  scripts/cuda-precision-check-fast.sh with 150 steps: nst train fp32 vs tf32,
#            the same data, the mean loss of the last 15 steps (the 1% bar)
#   compare  compare_fast_cuda_pytorch.py --torch-profile 4 --no-search --iters 5: the table
#            (apply 1024x1024 and 3840x2160 in fp32, tf32, fp16; train step in fp32, tf32;
#            nst without the profiling events) and PyTorch's top CUDA kernels for apply
#            1024 and the step
# Exit status: 0 if every step passed, else 1.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SHARED_DIR" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd) || exit 2
SHARED=$(cd "$2" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then LOGS=$OUT/probe; else LOGS=$(mktemp -d /tmp/nst-probe-XXXXXX); fi
mkdir -p "$LOGS" || exit 2
export NST_SHARED_DIR=$SHARED NST_WEIGHTS=$SHARED/models/vgg19 NST_MODELS=$ROOT/models
WEIGHTS=$SHARED/models/vgg19
failed=0
T0=$SECONDS

# run NAME LIMIT_S COMMAND...: the whole output into $LOGS/NAME.log; a status line
run() {
    local name=$1 limit=$2 t=$SECONDS
    shift 2
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    local verdict=ok
    [ $rc -ne 0 ] && verdict=FAILED && failed=1
    [ $rc -eq 77 ] && verdict=skipped
    [ $rc -eq 124 ] && verdict="TIMED OUT after ${limit}s" && failed=1
    echo "== $name: $verdict (status $rc, $((SECONDS - t)) s)"
}

echo "gpu-probe-fast: $(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-80); logs in $LOGS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 2

run test 150 "$BUILD/test_cuda_johnson"
grep -E "FAIL|CPU's gradients|gradients \(batch sum\)|fp16|first step|first training step|tiny training|graph|passed, .* failed|SKIP" \
    "$LOGS/test.log" | grep -vE "^  (apply starry_night|fp16 )" | cut -c1-160 | head -n 24

run nst_apply 40 env NST_CUDA_PROFILE=1 "$BUILD/bench_fast_cuda" --no-train --sizes 1024x1024 --precisions fp16 \
    --iters 3 --warmup 2
grep -vE "^(apply_|bench_fast_cuda:|best of|$)" "$LOGS/nst_apply.log" | cut -c1-160 | head -n 26
run nst_train 40 env NST_CUDA_PROFILE=1 "$BUILD/bench_fast_cuda" --no-apply --precisions fp32,tf32 --iters 3 --warmup 2 \
    --weights "$WEIGHTS"
grep -vE "^(train_|bench_fast_cuda:|best of|$)" "$LOGS/nst_train.log" | cut -c1-160 | head -n 44

# the output layer on cuDNN instead of the own 9x9 kernels, for comparison with the table below
run cudnn_out 50 bash -c "NST_CUDA_OWN_CONV=0 '$BUILD/bench_fast_cuda' --no-train --sizes 1024x1024 --precisions fp32,tf32,fp16 \
    --iters 3 --warmup 2 && NST_CUDA_OWN_CONV=0 '$BUILD/bench_fast_cuda' --no-apply --precisions fp32,tf32 --iters 3 --warmup 2 \
    --weights '$WEIGHTS'"
grep -E "^(apply_ms|train_step_ms)" "$LOGS/cudnn_out.log" | sed 's/^/NST_CUDA_OWN_CONV=0: /' | head -n 5

run precision 60 bash "$ROOT/scripts/cuda-precision-check-fast.sh" "$BUILD" "$SHARED" 150 "$LOGS/precision"
grep -E "^precision check" "$LOGS/precision.log" | cut -c1-160

run compare 100 python3 "$ROOT/bench/compare_fast_cuda_pytorch.py" --bench "$BUILD/bench_fast_cuda" --weights "$WEIGHTS" \
    --iters 5 --no-search --torch-profile 4 --precisions fp32,tf32,fp16
grep -E "^torch [0-9]|^torch profile|^  +[0-9.]+ ms|failed|warning|Error" "$LOGS/compare.log" | cut -c1-150 | head -n 26
sed -n '/^width [0-9]*, best of/,$p' "$LOGS/compare.log" | cut -c1-150 | head -n 16

grep -h "could not be captured" "$LOGS"/*.log | sort | uniq -c | head -n 3
echo "gpu-probe-fast: $((SECONDS - T0)) s, $([ $failed = 0 ] && echo 'all steps ok' || echo 'SOME STEPS FAILED')"
exit $failed
