#!/usr/bin/env bash
# test_cli_cuda.sh NST SHARED - the device flags of nst transfer and nst bench: bad values
# are usage errors (exit 2); where CUDA cannot be used (no GPU or driver, or a build
# without CUDA) --device cuda fails with one line and exit 1 before loading anything, and
# --device auto runs on the CPU; with a GPU, short transfers (fp32 and tf32) and a bench
# run on it.
. "$(dirname "$0")/cli_lib.sh"
# $NST_SHARED_DIR overrides the folder baked in at configure time (a build run elsewhere)
if [ -n "${NST_SHARED_DIR:-}" ]; then
    SHARED=$NST_SHARED_DIR
    CONTENT=$SHARED/oracle/gatys64/content_64.png
    STYLE=$SHARED/oracle/gatys64/style_64.png
fi

expect 2 "unknown device 'tpu'" -- $NST transfer --device tpu --content "$CONTENT" --style "$STYLE" -o "$T/x.png"
expect 2 "'fp16' is not fp32, bf16, auto or tf32" -- $NST transfer --precision fp16 --content "$CONTENT" --style "$STYLE" -o "$T/x.png"
expect 2 "unknown device 'tpu'" -- $NST bench --device tpu
expect 2 "'fp16' is not fp32, bf16, auto or tf32" -- $NST bench --precision fp16
$NST info --devices >"$T/devices" 2>&1 && ok || bad "nst info --devices: $(cat "$T/devices")"

if grep -q "^cuda: available" "$T/devices"; then
    echo "GPU: $(grep '^cuda:' "$T/devices")"
    OUT=$T/gpu.png
    if $NST transfer --device cuda --content "$CONTENT" --style "$STYLE" -o "$OUT" --size 64 --steps 20 \
        --log "$T/log.csv" 2>"$T/stderr"; then ok; else bad "cuda transfer failed: $(cat "$T/stderr")"; fi
    [ -s "$OUT" ] && ok || bad "cuda transfer: no output"
    grep -q "^nst: on CUDA: " "$T/stderr" && ok || bad "cuda transfer does not say it runs on CUDA: $(cat "$T/stderr")"
    awk -F, 'NR==2{first=$6} {prev=$6} END{exit !(prev < 0.5*first)}' "$T/log.csv" \
        && ok || bad "cuda: loss did not fall: $(sed -n '2p;$p' "$T/log.csv")"
    $NST transfer --device cuda --precision tf32 --preset seed --content "$CONTENT" --style "$STYLE" -o "$T/tf32.jpg" \
        --size 64 --steps 5 -q 2>"$T/stderr" && [ -s "$T/tf32.jpg" ] && ok || bad "tf32 seed transfer: $(cat "$T/stderr")"
    $NST bench --device cuda --size 64 --iters 2 --warmup 1 >"$T/bench.out" 2>"$T/stderr" \
        && grep -q "CUDA on" "$T/bench.out" && tail -1 "$T/bench.out" | grep -Eq "^ms_per_step=[0-9]+\.[0-9]+$" \
        && ok || bad "cuda bench: $(cat "$T/bench.out" "$T/stderr")"
else
    echo "no GPU here: $(grep '^cuda:' "$T/devices")"
    # one line, exit 1, and before the images are read (this content does not exist)
    expect 1 "--device cuda: " -- $NST transfer --device cuda --content "$T/none.png" --style "$STYLE" -o "$T/x.png"
    no_file "$T/x.png"
    expect 1 "--device cuda: " -- $NST bench --device cuda --size 32
    # auto falls back to the CPU
    $NST transfer --device auto --content "$CONTENT" --style "$STYLE" -o "$T/auto.png" --size 32 --steps 2 -q \
        2>"$T/stderr" && [ -s "$T/auto.png" ] && ok || bad "--device auto on the CPU: $(cat "$T/stderr")"
fi
finish
