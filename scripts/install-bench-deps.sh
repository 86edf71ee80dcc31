#!/usr/bin/env bash
# install-bench-deps.sh - what bench/compare_pytorch.py needs: Debian's PyTorch and an
# optimized BLAS for it (without one, PyTorch's matrix products use the slow reference BLAS).
set -euo pipefail
exec bash "$(dirname "$0")/install-deps.sh" python3-torch python3-numpy libopenblas0-pthread
