#!/usr/bin/env bash
# emulate-conv9.sh - checks the own 9x9/1 convolution kernels (src/cuda/layers_cuda.cu) on
# the CPU, without a GPU: their source (from "#define C9_TW" up to "#define C9_DISPATCH")
# compiled as C++ under tests/emu_cuda.h and compared with a direct convolution
# (tests/emu_conv9.cpp). Needs g++ with C++20 (std::barrier). A few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/nst_emu_conv9.XXXXXX)
trap 'rm -rf "$dir"' EXIT
awk '/^#define C9_TW/{f=1} /^#define C9_DISPATCH/{f=0} f' src/cuda/layers_cuda.cu > "$dir/kern.inc"
${CXX:-g++} -std=c++20 -O2 -pthread -Wno-unused -Itests -I"$dir" -include emu_cuda.h -x c++ tests/emu_conv9.cpp -o "$dir/emu"
"$dir/emu"
