#!/usr/bin/env bash
# install-bench-deps.sh - what bench/compare_pytorch.py needs: Debian's PyTorch and an
# optimized BLAS for it (without one, PyTorch's matrix products use the slow reference BLAS).
set -euo pipefail
PKGS="python3-torch python3-numpy libopenblas0-pthread"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
