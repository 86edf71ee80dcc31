#!/usr/bin/env bash
# asan-cuda-test-host.sh [BUILD] - test_cuda_johnson's host buffers under AddressSanitizer,
# without a GPU: the test (--layers: every layer test, fp16 kernels included) linked
# against tests/fake_cuda_host.c, whose "device" buffers are exact-size mallocs and whose
# "kernels" read and write every value layers_cuda.h says they touch. Nothing is computed,
# so the test's comparisons fail (expected); the verdict is the sanitizer's. BUILD is a
# CPU-only build's folder (cmake -DNST_CUDA=OFF; default build-nocuda) holding libnst.a.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-nocuda}
[ -f "$build/libnst.a" ] || { echo "asan-cuda-test-host: no $build/libnst.a (build a -DNST_CUDA=OFF tree first)" >&2; exit 2; }
exe=$(mktemp /tmp/nst_asan_cuda_host.XXXXXX)
trap 'rm -f "$exe"' EXIT
${CC:-gcc} -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -D_GNU_SOURCE -DNST_HAVE_CUDA=1 \
    -DNST_SHARED_DIR="\"$PWD/../shared\"" -Iinclude -Isrc -Itests \
    tests/test_cuda_johnson.c tests/fake_cuda_host.c "$build/libnst.a" -fopenmp \
    $(pkg-config --libs libcjson libpng libjpeg libwebp libwebpmux libwebpdemux libtiff-4 2>/dev/null ||
      echo -lcjson -lpng -ljpeg -lwebpmux -lwebpdemux -lwebp -ltiff) -lgif -lm -o "$exe"
rc=0
ASAN_OPTIONS=exitcode=99:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:exitcode=98 "$exe" --layers >/tmp/nst_asan_cuda_host.log 2>&1 || rc=$?
if [ "$rc" = 99 ] || [ "$rc" = 98 ] || grep -q "ERROR: AddressSanitizer\|runtime error:" /tmp/nst_asan_cuda_host.log; then
    grep -A30 "ERROR: AddressSanitizer\|runtime error:" /tmp/nst_asan_cuda_host.log | head -60
    echo "asan-cuda-test-host: FAIL (log: /tmp/nst_asan_cuda_host.log)"
    exit 1
fi
echo "asan-cuda-test-host: OK, no sanitizer error in the layer tests ($(grep -c . /tmp/nst_asan_cuda_host.log) log lines; rc $rc from the expected comparison failures)"
