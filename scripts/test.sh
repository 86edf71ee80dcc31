#!/usr/bin/env bash
# test.sh - build nst and run the whole test suite (unit, oracle, gradient and CLI tests).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j2 --timeout 1200
