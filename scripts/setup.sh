#!/usr/bin/env bash
# setup.sh - on a fresh Debian machine: install what is missing, build nst, and run a
# real style transfer on the images in ../shared/images. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. packages: compiler, CMake, and the libraries nst links (PNG, JPEG, JSON)
bash scripts/install-deps.sh

# 2. build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

# 3. a real transfer: Tuebingen in the style of The Starry Night, the default preset
#    (512 px, L-BFGS) unless NST_DEMO_ARGS says otherwise
mkdir -p out
SHARED=../shared/images
# shellcheck disable=SC2086
./build/nst transfer --content "$SHARED/content/tubingen.jpg" --style "$SHARED/style/starry_night.jpg" \
    -o out/tubingen_starry_night.jpg --log out/tubingen_starry_night.csv ${NST_DEMO_ARGS:-}

# 4. the same photo through the style networks that ship with nst (one pass each)
for model in models/*.nstm; do
    [ -e "$model" ] || continue
    style=$(basename "$model" .nstm)
    ./build/nst apply --model "$style" "$SHARED/content/tubingen.jpg" -o "out/tubingen_${style}_fast.jpg"
done
# 5. any painting in one pass (universal style transfer, the shipped decoders)
./build/nst apply --style "$SHARED/style/the_scream.jpg" "$SHARED/content/tubingen.jpg" -o out/tubingen_the_scream_universal.jpg
echo "setup: done; the results are in out/ (tubingen_starry_night.jpg: optimization-based;"
echo "       tubingen_*_fast.jpg: the shipped style networks; tubingen_the_scream_universal.jpg: any painting, one pass)"
