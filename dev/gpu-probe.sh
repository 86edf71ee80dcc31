#!/usr/bin/env bash
# gpu-probe.sh BUILD_DIR SHARED_DIR [gatys|fast|all] - a short look at where the CUDA
# backend's time goes, on a machine with a GPU (profiles, not a verdict: dev/cuda-check.sh
# is the check). `all` (the default) runs both parts, gatys first.
# gatys: about a minute, under 150 lines, all on stdout:
#   1. NST_CUDA_PROFILE=1 nst bench --device cuda --size 512: per conv layer (with its ReLU
#      and pool) the forward, backward and loss times of one seed step and the algorithms
#      chosen; with cuDNN's heuristics, measured (NST_CUDNN_SEARCH=1: each conv's time
#      and its heuristic choice's), and in tf32
#   2. PyTorch's kernel profile of the same step at 512 (bench/compare_cuda_pytorch.py
#      --torch-profile), fp32 with TF32 off
#   3. nst bench --device cuda at 512 and 1024, heuristics and measured (skipped
#      once the probe has run for PROBE_BUDGET_S seconds, default 80)
# fast (the style network, Johnson): about 3 minutes, under 160 lines on stdout; every
# step's whole output in $OUT/probe/ (the device tool's folder) or else in a fresh /tmp folder.
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
#   precision  dev/cuda-precision-check-fast.sh with 150 steps: nst train fp32 vs tf32,
#            the same data, the mean loss of the last 15 steps (the 1% bar)
#   compare  compare_fast_cuda_pytorch.py --torch-profile 4 --no-search --iters 5: the table
#            (apply 1024x1024 and 3840x2160 in fp32, tf32, fp16; train step in fp32, tf32;
#            nst without the profiling events) and PyTorch's top CUDA kernels for apply
#            1024 and the step
# BUILD_DIR holds nst and bench_fast_cuda built with CUDA; SHARED_DIR the shared data
# (weights in models/vgg19). Runtime libraries come from LD_LIBRARY_PATH or PyTorch's CUDA
# wheels. Exit status: 0 if every step of the fast part passed (the gatys part prints
# its failures and does not fail the run), else 1; 2: usage.
set -u
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: dev/gpu-probe.sh BUILD_DIR SHARED_DIR [gatys|fast|all]" >&2
    exit 2
fi
WHAT=${3:-all}
case $WHAT in gatys|fast|all) ;; *) echo "dev/gpu-probe.sh: '$WHAT': say gatys, fast or all" >&2; exit 2 ;; esac
BUILD=$(cd "$1" && pwd) || exit 2
SHARED=$(cd "$2" && pwd) || exit 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NST=$BUILD/nst
WEIGHTS=$SHARED/models/vgg19
PY=${PYTHON:-python3}
export NST_SHARED_DIR=$SHARED NST_WEIGHTS=$SHARED/models/vgg19 NST_MODELS=$ROOT/models

if ldd "$NST" 2>/dev/null | grep -q "not found"; then
    for d in $("$PY" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null); do
        for lib in $(find "$d" -maxdepth 3 -type d -name lib 2>/dev/null); do
            LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        done
    done
    export LD_LIBRARY_PATH
fi

# ---- the optimization-based (Gatys) step; runs in a subshell
probe_gatys() {
T0=$SECONDS
"$NST" info --devices 2>&1 | grep '^cuda:'

# bench SECONDS LABEL [ENV=V...] -- ARGS...: nst bench with a time limit, the summary
# lines; skipped once the probe has run for BUDGET seconds
BUDGET=${PROBE_BUDGET_S:-80}
bench() {
    local limit=$1 label=$2
    shift 2
    if [ $((SECONDS - T0)) -ge "$BUDGET" ]; then
        echo "== $label: skipped (the probe has used its ${BUDGET} s)"
        return
    fi
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local t=$SECONDS out
    echo "== $label"
    out=$(env "${envs[@]}" timeout "$limit" "$NST" bench --device cuda --weights "$WEIGHTS" "$@" 2>&1)
    local rc=$?
    echo "$out" | grep -E "^(profile|layer |conv[0-9]|sum |nst bench|GPU memory|forward|transfer step|nst:)"
    [ $rc = 0 ] || echo "   FAILED: exit $rc$([ $rc = 124 ] && echo " (timed out after $limit s)")"
    echo "   ($((SECONDS - t)) s)"
}

# the measured runs share a fresh algorithm cache: the first at each size measures, the
# next reads it
CACHE=$(mktemp /tmp/nst-probe-algos-XXXXXX)
trap 'rm -f "$CACHE"' EXIT
M="NST_CUDNN_SEARCH=1 NST_CUDNN_CACHE=$CACHE"
bench 20 "profile 512 fp32, heuristics" NST_CUDA_PROFILE=1 NST_CUDNN_SEARCH=0 -- --size 512 --iters 5 --warmup 2
bench 30 "profile 512 fp32, measured (NST_CUDNN_SEARCH=1)" NST_CUDA_PROFILE=1 $M -- --size 512 --iters 5 --warmup 2
bench 20 "profile 512 tf32, heuristics" NST_CUDA_PROFILE=1 NST_CUDNN_SEARCH=0 -- --size 512 --precision tf32 --iters 5 --warmup 2

echo "== PyTorch profile 512 fp32 (TF32 off, cudnn.benchmark off)"
t=$SECONDS
timeout 40 "$PY" "$ROOT/bench/compare_cuda_pytorch.py" --weights "$WEIGHTS" --torch-profile 512 --iters 3 2>&1 |
    grep -v -i "warn" | head -30
echo "   ($((SECONDS - t)) s)"

for size in 512 1024; do
    bench 20 "bench $size fp32, heuristics" NST_CUDNN_SEARCH=0 -- --size $size --iters 5 --warmup 2
    bench 30 "bench $size fp32, measured (NST_CUDNN_SEARCH=1$([ $size = 512 ] && echo ", from the cache"))" $M -- \
        --size $size --iters 5 --warmup 2
done
echo "gpu-probe-gatys: $((SECONDS - T0)) s in all"
}

# ---- the style network (fast style transfer); runs in a subshell
probe_fast() {
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then LOGS=$OUT/probe; else LOGS=$(mktemp -d /tmp/nst-probe-XXXXXX); fi
mkdir -p "$LOGS" || exit 2
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

run precision 60 bash "$ROOT/dev/cuda-precision-check-fast.sh" "$BUILD" "$SHARED" 150 "$LOGS/precision"
grep -E "^precision check" "$LOGS/precision.log" | cut -c1-160

run compare 100 "$PY" "$ROOT/bench/compare_fast_cuda_pytorch.py" --bench "$BUILD/bench_fast_cuda" --weights "$WEIGHTS" \
    --iters 5 --no-search --torch-profile 4 --precisions fp32,tf32,fp16
grep -E "^torch [0-9]|^torch profile|^  +[0-9.]+ ms|failed|warning|Error" "$LOGS/compare.log" | cut -c1-150 | head -n 26
sed -n '/^width [0-9]*, best of/,$p' "$LOGS/compare.log" | cut -c1-150 | head -n 16

grep -h "could not be captured" "$LOGS"/*.log | sort | uniq -c | head -n 3
echo "gpu-probe-fast: $((SECONDS - T0)) s, $([ $failed = 0 ] && echo 'all steps ok' || echo 'SOME STEPS FAILED')"
exit $failed
}

rc=0
[ "$WHAT" = fast ] || ( probe_gatys )
[ "$WHAT" = gatys ] || ( probe_fast ) || rc=1
exit $rc
