#!/usr/bin/env bash
# fuzz.sh [SECONDS [NAME...]] - builds every tests/fuzz_NAME.c harness with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/ and runs each for
# SECONDS (default 30) on a copy of its seed corpus tests/fuzz/corpus/NAME/ (the copy in
# build-fuzz/corpus/NAME/ keeps what the fuzzer learns from run to run; the committed
# seeds stay untouched). NAME... limits the run to some harnesses (e.g. "weights args").
# Crash, leak and timeout inputs are written to build-fuzz/crashes/; the exit status is 1
# if any harness found one. Needs clang, libclang-rt-dev (libFuzzer) and libomp-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-30}
shift || true
CC=${CC:-clang}
OUT=build-fuzz
mkdir -p "$OUT/obj" "$OUT/crashes" "$OUT/corpus"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fopenmp -Iinclude -Isrc -Wno-pass-failed $SAN"
LIBS="-lpng -ljpeg -lwebpmux -lwebpdemux -lwebp -ltiff -lgif -lcjson -llapack -lm"
ARCH_FLAGS=""
case "$(uname -m)" in x86_64|amd64) ARCH_FLAGS="-DNST_X86=1" ;; esac

# libFuzzer ships with compiler-rt, OpenMP's omp.h with libomp: say so up front
# shellcheck disable=SC2086
if ! printf '%s\n' '#include <omp.h>' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; return (int)n * omp_get_max_threads() * 0; }' |
        $CC $CFLAGS -fsanitize=fuzzer -x c - -o "$OUT/preflight" $LIBS 2>"$OUT/preflight.log"; then
    cat "$OUT/preflight.log" >&2
    echo "fuzz.sh: $CC cannot build a libFuzzer + OpenMP program; install the packages with" >&2
    echo "  bash scripts/install-deps.sh clang libclang-rt-14-dev libomp-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libtiff-dev libgif-dev libcjson-dev liblapack-dev" >&2
    exit 2
fi

# The library (every src/*/*.c but the command line), instrumented for coverage. Kernels
# for one instruction set get that set's flags from cmake/kernel-flags.txt, as in CMake.
declare -A KFLAGS
while read -r suffix kflags; do
    case "$suffix" in ''|'#'*) continue ;; esac
    KFLAGS[$suffix]=$kflags
done <cmake/kernel-flags.txt
objs=()
for src in src/*/*.c; do
    case "$src" in src/cli/*) continue ;; esac
    flags="$ARCH_FLAGS"
    base=${src%.c}
    for suffix in "${!KFLAGS[@]}"; do
        [ "${base%_"$suffix"}" != "$base" ] || continue
        [ -n "$ARCH_FLAGS" ] || continue 2 # not x86-64: left out, as in CMake
        flags="$flags ${KFLAGS[$suffix]}"
    done
    obj="$OUT/obj/$(echo "${src#src/}" | tr / _).o"
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$0" -nt "$obj" ] || [ cmake/kernel-flags.txt -nt "$obj" ] ||
       [ -n "$(find include src -name '*.h' -newer "$obj" -print -quit)" ]; then
        # shellcheck disable=SC2086
        $CC $CFLAGS -fsanitize=fuzzer-no-link $flags -c "$src" -o "$obj"
    fi
    objs+=("$obj")
done
rm -f "$OUT/libnst_fuzz.a"
ar rcs "$OUT/libnst_fuzz.a" "${objs[@]}"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for h in tests/fuzz_*.c; do names+=("$(basename "$h" .c | sed 's/^fuzz_//')"); done
fi

failed=()
for name in "${names[@]}"; do
    src="tests/fuzz_$name.c"
    [ -f "$src" ] || { echo "fuzz.sh: no harness $src" >&2; exit 2; }
    extra=""
    maxlen=4096
    case "$name" in
    args) extra="src/cli/common.c src/cli/options.c src/cli/files.c"; maxlen=8192 ;; # the CLI parsers are not in the library
    image) maxlen=65536 ;;
    weights) maxlen=16384 ;;
    esac
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer "$src" $extra "$OUT/libnst_fuzz.a" $LIBS -o "$OUT/fuzz_$name"

    corpus="$OUT/corpus/$name"
    mkdir -p "$corpus"
    if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$corpus/"; fi
    dict=()
    if [ -f "tests/fuzz/$name.dict" ]; then dict=("-dict=tests/fuzz/$name.dict"); fi

    echo "== fuzz_$name: ${SECS}s (log: $OUT/$name.log)"
    rc=0
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$OUT/fuzz_$name" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        ${NST_FUZZ_SEED:+-seed="$NST_FUZZ_SEED"} \
        -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$OUT/crashes/$name-" \
        "${dict[@]}" "$corpus" >"$OUT/$name.log" 2>&1 || rc=$?
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done )' "$OUT/$name.log" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz_$name FAILED (exit $rc); see $OUT/$name.log and $OUT/crashes/" >&2
        grep -E 'ERROR: |runtime error|SUMMARY' "$OUT/$name.log" | head -5 >&2 || true
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz.sh: failures in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crashes"
