#!/usr/bin/env bash
# test_cli.sh NST SHARED - the nst command end to end: help and version, a short real
# transfer (loss falls, output decodes, CSV log, snapshots), Ctrl-C keeps the latest
# image, and every kind of bad input gives a one-line error naming the file, the right
# exit code and no output file.
. "$(dirname "$0")/cli_lib.sh"

# --- help and version ---
$NST --help | grep -q "usage: nst" && ok || bad "nst --help"
$NST transfer --help | grep -q -- "--content-layers" && ok || bad "nst transfer --help"
$NST --version | grep -Eq "^nst [0-9]+\.[0-9]+\.[0-9]+" && ok || bad "nst --version"
expect 2 "unknown command" -- $NST frobnicate
expect 2 "needs --content" -- $NST transfer --style "$STYLE" -o "$T/x.png"

# --- a short real transfer at 64 px with the default (gatys) preset ---
OUT=$T/out.png
if $NST transfer --content "$CONTENT" --style "$STYLE" -o "$OUT" --size 64 --steps 30 \
    --save-every 10 --log "$T/log.csv" 2>"$T/stderr"; then ok; else bad "transfer failed: $(cat "$T/stderr")"; fi
[ -s "$OUT" ] && ok || bad "no output"
head -1 "$T/log.csv" | grep -qx "step,elapsed_s,content_loss,style_loss,tv_loss,total_loss" && ok || bad "csv header"
[ "$(tail -n +2 "$T/log.csv" | wc -l)" -ge 20 ] && ok || bad "csv rows: $(wc -l <"$T/log.csv")"
# the loss falls: last total < 0.5 * first total, and never rises (L-BFGS is monotone)
awk -F, 'NR==2{first=$6} NR>2 && $6>prev*1.000001{rise=1} {prev=$6} END{exit !(prev < 0.5*first && !rise)}' "$T/log.csv" \
    && ok || bad "loss did not fall monotonically: $(sed -n '2p;$p' "$T/log.csv")"
[ -s "$T/out_step0010.png" ] && [ -s "$T/out_step0020.png" ] && ok || bad "snapshots: $(ls "$T")"
grep -q "^step 30/30" "$T/stderr" && ok || bad "no plain progress line"
# the output decodes: use it as the content of another run
$NST transfer --content "$OUT" --style "$STYLE" -o "$T/again.jpg" --size 32 --steps 2 -q 2>"$T/stderr" \
    && [ -s "$T/again.jpg" ] && ok || bad "output does not decode: $(cat "$T/stderr")"

# --- nst info ---
$NST info "$CONTENT" | grep -qx "$CONTENT: 64x64 png 8-bit" && ok || bad "nst info: $($NST info "$CONTENT")"
expect 1 "nope.png" -- $NST info "$T/nope.png"

# --- nst bench: its last line is ms_per_step=<number> ---
$NST bench --size 48 --iters 1 --warmup 0 --threads 1 >"$T/bench.out" 2>"$T/stderr" \
    && tail -1 "$T/bench.out" | grep -Eq "^ms_per_step=[0-9]+\.[0-9]+$" && ok || bad "bench: $(cat "$T/bench.out" "$T/stderr")"
expect 2 "unknown layer" -- $NST bench --layers relu9_9

# --- the seed preset runs (a few steps) ---
$NST transfer --preset seed --content "$CONTENT" --style "$STYLE" -o "$T/seed.png" --size 32 --steps 3 -q \
    && [ -s "$T/seed.png" ] && ok || bad "seed preset"

# --- options users expect: several styles blended, colour preservation, inits, Adam ---
$NST transfer --content "$CONTENT" --style "$STYLE,$CONTENT" --style-blend 3,1 -o "$T/blend.png" --size 48 --steps 3 -q \
    && [ -s "$T/blend.png" ] && ok || bad "style blend"
expect 2 "2 weights for 1 style" -- $NST transfer --content "$CONTENT" --style "$STYLE" --style-blend 1,2 -o "$T/x.png"
$NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/pc.png" --size 48 --steps 3 --preserve-colors -q \
    && [ -s "$T/pc.png" ] && ok || bad "preserve colors"
$NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/noise.png" --size 48 --steps 3 --init noise --seed 7 -q \
    && [ -s "$T/noise.png" ] && ok || bad "init noise"
$NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/noise2.png" --size 48 --steps 3 --init noise --seed 7 -q \
    && cmp -s "$T/noise.png" "$T/noise2.png" && ok || bad "same seed, different output"
$NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/initf.png" --size 48 --steps 3 --init "$STYLE" -q \
    && [ -s "$T/initf.png" ] && ok || bad "init from a file"
expect 1 "missing.png" -- $NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/x.png" --size 48 --steps 3 --init "$T/missing.png"
$NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/adam.png" --size 48 --steps 5 --optimizer adam --lr 2 \
    --content-layers relu3_1:2 --style-layers relu1_1,relu2_1:0.5 --gram raw --style-weight 1e-6 --threads 1 -q \
    && [ -s "$T/adam.png" ] && ok || bad "adam with custom layers"

# --- Ctrl-C keeps the latest image ---
stop_when_stepping INT "$T/int.csv" $NST transfer --content "$CONTENT" --style "$STYLE" -o "$T/int.png" --size 64 \
    --steps 100000 -q 2>"$T/int.err"
rc=$?
[ "$rc" = 1 ] && ok || bad "interrupted run exit $rc"
[ -s "$T/int.png" ] && ok || bad "interrupted run left no image"
grep -q "latest image" "$T/int.err" && ok || bad "interrupt message: $(cat "$T/int.err")"

# --- bad input ---
printf 'not an image' >"$T/text.png"
head -c 300 "$SHARED/images/content/tubingen.jpg" >"$T/trunc.jpg"
head -c 2000 "$CONTENT" >"$T/trunc.png"
: >"$T/empty.jpg"
run() { $NST transfer --size 32 --steps 1 -q "$@"; }
expect 1 "nope.jpg" -- run --content "$T/nope.jpg" --style "$STYLE" -o "$T/o1.png"; no_file "$T/o1.png"
expect 1 "text.png" -- run --content "$T/text.png" --style "$STYLE" -o "$T/o2.png"; no_file "$T/o2.png"
expect 1 "trunc.jpg" -- run --content "$T/trunc.jpg" --style "$STYLE" -o "$T/o3.png"; no_file "$T/o3.png"
expect 1 "trunc.png" -- run --content "$CONTENT" --style "$T/trunc.png" -o "$T/o4.png"; no_file "$T/o4.png"
expect 1 "empty.jpg" -- run --content "$T/empty.jpg" --style "$STYLE" -o "$T/o5.png"; no_file "$T/o5.png"
expect 2 "unknown layer 'relu9_1'" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o6.png" --style-layers relu1_1,relu9_1
expect 2 "--steps: 'abc' is not an integer" -- $NST transfer -q --size 32 --content "$CONTENT" --style "$STYLE" -o "$T/o7.png" --steps abc
expect 2 "--style-weight: 'nan' is not a finite number" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o8.png" --style-weight nan
expect 2 "--size: 0 is out of range" -- $NST transfer -q --steps 1 --content "$CONTENT" --style "$STYLE" -o "$T/o9.png" --size 0
expect 2 "--lr: '1e999' is not a finite number" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o9.png" --lr 1e999
expect 2 "--optimizer" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o9.png" --optimizer sgd
expect 2 "unknown preset" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o9.png" --preset fast
expect 2 "--threads" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o9.png" --threads 0
expect 1 "no-such-dir/o.png" -- run --content "$CONTENT" --style "$STYLE" -o "$T/no-such-dir/o.png"
expect 2 "o.gif: .*GIF" -- run --content "$CONTENT" --style "$STYLE" -o "$T/o.gif"; no_file "$T/o.gif"
chmod 500 "$T" 2>/dev/null
if [ "$(id -u)" != 0 ]; then expect 1 "cannot write" -- run --content "$CONTENT" --style "$STYLE" -o "$T/ro.png"; fi
chmod 700 "$T"
# weights: missing folder, corrupt manifest, truncated shard
expect 1 "nowhere/model.json" -- run --content "$CONTENT" --style "$STYLE" -o "$T/w1.png" --weights "$T/nowhere"; no_file "$T/w1.png"
mkdir -p "$T/w"
cp "$SHARED"/models/vgg19/* "$T/w/"
chmod u+w "$T"/w/*
printf '{"weightsManifest": [' >"$T/w/model.json"
expect 1 "model.json: not valid JSON" -- run --content "$CONTENT" --style "$STYLE" -o "$T/w2.png" --weights "$T/w"; no_file "$T/w2.png"
cp "$SHARED/models/vgg19/model.json" "$T/w/"
head -c 1000 "$SHARED/models/vgg19/group1-shard20of20.bin" >"$T/w/group1-shard20of20.bin"
expect 1 "truncated" -- run --content "$CONTENT" --style "$STYLE" -o "$T/w3.png" --weights "$T/w"; no_file "$T/w3.png"
rm "$T/w/group1-shard3of20.bin"
expect 1 "group1-shard3of20.bin: cannot open" -- run --content "$CONTENT" --style "$STYLE" -o "$T/w4.png" --weights "$T/w"; no_file "$T/w4.png"
cp "$SHARED/models/vgg19/group1-shard3of20.bin" "$SHARED/models/vgg19/group1-shard20of20.bin" "$T/w/"
sed 's/"shape":\[3,3,3,64\]/"shape":[3,3,4,64]/' "$SHARED/models/vgg19/model.json" >"$T/w/model.json"
expect 1 "wrong shape" -- run --content "$CONTENT" --style "$STYLE" -o "$T/w5.png" --weights "$T/w"; no_file "$T/w5.png"
# the environment variable is honoured (and wins over the default search)
NST_WEIGHTS=$T/nowhere expect 1 "nowhere" -- run --content "$CONTENT" --style "$STYLE" -o "$T/w6.png"
# --- limits on input files: flags, environment variables, bad values ---
$NST transfer --help | grep -q -- "--max-file-mb" && $NST info --help | grep -q -- "--max-pixels" && ok || bad "limits in --help"
# content_64.png has 64x64 = 4096 pixels; big.jpg is tubingen.jpg (1024x768) padded past 1 MB
(cat "$SHARED/images/content/tubingen.jpg"; head -c 1200000 /dev/zero) >"$T/big.jpg"
expect 1 "content_64.png: image is 64x64 = 4096 pixels, more than the limit of 4095; raise it with --max-pixels N or NST_MAX_PIXELS=N" \
    -- $NST info --max-pixels 4095 "$CONTENT"
$NST info --max-pixels 4096 "$CONTENT" | grep -q "^$CONTENT: 64x64 " && ok || bad "info --max-pixels 4096"
NST_MAX_PIXELS=4095 expect 1 "more than the limit of 4095;" -- $NST info "$CONTENT"
NST_MAX_PIXELS=4095 $NST info "$CONTENT" --max-pixels 4096 >/dev/null && ok || bad "the flag does not win over the environment"
expect 1 "big.jpg: file is [0-9]+ bytes \(1\.[0-9]+ MB\), more than the limit of 1048576 bytes \(1\.00 MB\); raise it with --max-file-mb N or NST_MAX_FILE_MB=N" \
    -- $NST info --max-file-mb 1 "$T/big.jpg"
$NST info --max-file-mb 2 "$T/big.jpg" | grep -q "^$T/big.jpg: 1024x768 " && ok || bad "info --max-file-mb 2"
NST_MAX_FILE_MB=1 expect 1 "big.jpg: file is" -- $NST info "$T/big.jpg"
expect 1 "big.jpg: file is .* limit of 1048576 bytes" -- run --content "$T/big.jpg" --style "$STYLE" -o "$T/l1.png" --max-file-mb 1
no_file "$T/l1.png"
expect 1 "content_64.png: image is 64x64 = 4096 pixels, more than the limit of 4000" -- \
    run --content "$CONTENT" --style "$STYLE" -o "$T/l2.png" --max-pixels 4000; no_file "$T/l2.png"
NST_MAX_PIXELS=4096 expect 1 "big.jpg: image is 1024x768" -- \
    run --content "$CONTENT" --style "$STYLE" -o "$T/l3.png" --init "$T/big.jpg"; no_file "$T/l3.png"
expect 2 "--max-pixels: '-5' is not a whole number of pixels" -- run --content "$CONTENT" --style "$STYLE" -o "$T/l4.png" --max-pixels -5
expect 2 "--max-pixels: 'many' is not a whole number of pixels" -- $NST info --max-pixels many "$CONTENT"
expect 2 "--max-file-mb: 0 megabytes is out of range \(1\.\.1048576\)" -- run --content "$CONTENT" --style "$STYLE" -o "$T/l5.png" --max-file-mb 0
expect 2 "--max-file-mb: '1.5' is not a whole number of megabytes" -- $NST info --max-file-mb 1.5 "$CONTENT"
NST_MAX_PIXELS=abc expect 2 "NST_MAX_PIXELS: 'abc' is not a whole number of pixels" -- $NST info "$CONTENT"
NST_MAX_FILE_MB=-1 expect 2 "NST_MAX_FILE_MB: '-1' is not a whole number of megabytes" -- run --content "$CONTENT" --style "$STYLE" -o "$T/l6.png"
NST_MAX_FILE_MB=0 expect 2 "NST_MAX_FILE_MB: 0 megabytes is out of range" -- $NST info "$CONTENT"
expect 2 "--max-pixels needs a value" -- $NST info "$CONTENT" --max-pixels
no_file "$T/l4.png"; no_file "$T/l5.png"; no_file "$T/l6.png"

# an existing output survives a failed run
cp "$CONTENT" "$T/keep.png"
expect 1 "text.png" -- run --content "$T/text.png" --style "$STYLE" -o "$T/keep.png"
cmp -s "$CONTENT" "$T/keep.png" && ok || bad "existing output was changed by a failed run"

finish
