#!/usr/bin/env bash
# gpu-probe-gatys.sh BUILD_DIR SHARED_DIR - a quick look (about a minute, under 150 lines)
# at where the CUDA Gatys step's time goes, on a machine with a GPU:
#   1. NST_CUDA_PROFILE=1 nst bench --device cuda --size 512: per conv layer (with its ReLU
#      and pool) the forward, backward and loss times of one seed step and the algorithms
#      chosen; with cuDNN's heuristics, measured (NST_CUDNN_SEARCH=1: each conv's time
#      and its heuristic choice's), and in tf32
#   2. PyTorch's kernel profile of the same step at 512 (bench/compare_cuda_pytorch.py
#      --torch-profile), fp32 with TF32 off
#   3. nst bench --device cuda at 512 and 1024, heuristics and measured (skipped
#      once the probe has run for PROBE_BUDGET_S seconds, default 80)
# BUILD_DIR holds nst built with CUDA; SHARED_DIR the shared data (weights in
# models/vgg19). Runtime libraries come from LD_LIBRARY_PATH or PyTorch's CUDA wheels.
set -u
if [ $# -ne 2 ]; then
    echo "usage: scripts/gpu-probe-gatys.sh BUILD_DIR SHARED_DIR" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd) SHARED=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NST=$BUILD/nst
WEIGHTS=$SHARED/models/vgg19
PY=${PYTHON:-python3}
T0=$SECONDS

if ldd "$NST" 2>/dev/null | grep -q "not found"; then
    for d in $("$PY" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null); do
        for lib in $(find "$d" -maxdepth 3 -type d -name lib 2>/dev/null); do
            LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        done
    done
    export LD_LIBRARY_PATH
fi
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
