#!/usr/bin/env bash
# test_cli_fast.sh NST SHARED - `nst train` and `nst apply` end to end: a tiny real
# training run (its loss falls; model, checkpoint, preview and log are written), apply on
# one photo, several and a folder, odd sizes, --size and --preserve-colors, the shipped
# styles by name, and every kind of bad input: one-line error naming the file, the right
# exit code, no output left behind.
. "$(dirname "$0")/cli_lib.sh"

size_of() { "$NST" info "$1" | sed -n 's/^.*: \([0-9]*x[0-9]*\) .*/\1/p'; }

mkdir -p "$T/data"
for i in 00001 00002 00003 00004 00005; do cp "$SHARED/datasets/photos256/$i.jpg" "$T/data/"; done
$NST train --help | grep -q -- "--checkpoint-every" && ok || bad "nst train --help"
$NST apply --help | grep -q -- "--out-dir" && ok || bad "nst apply --help"

# --- a tiny real training run ---
M=$T/tiny.nstm
if $NST train --style "$STYLE" --data "$T/data" -o "$M" --size 32 --style-size 64 --width 4 --res-blocks 1 \
    --batch 2 --holdout 1 --steps 30 --checkpoint-every 15 --lr 0.01 --log "$T/train.csv" 2>"$T/stderr"; then ok
else bad "train failed: $(cat "$T/stderr")"; fi
[ -s "$M" ] && [ -s "$M.ckpt" ] && [ -s "$T/tiny_step000015.jpg" ] && [ -s "$T/tiny_step000030.jpg" ] && ok ||
    bad "train outputs: $(ls "$T")"
head -1 "$T/train.csv" | grep -qx "step,elapsed_s,content_loss,style_loss,tv_loss,total_loss" && ok || bad "train csv header"
# the loss falls: the mean of the last 5 steps is below 70% of the first step's
awk -F, 'NR==2{first=$6} NR>=27{s+=$6; n++} END{exit !(n==5 && s/n < 0.7*first)}' "$T/train.csv" && ok ||
    bad "training loss did not fall: $(sed -n '2p;$p' "$T/train.csv")"
grep -q "^step 30/30" "$T/stderr" && ok || bad "no plain progress line: $(cat "$T/stderr")"
$NST info "$M" >"$T/info.txt" && grep -q "style network" "$T/info.txt" && grep -Eq "^  width +4$" "$T/info.txt" &&
    grep -Eq "^  steps +30$" "$T/info.txt" && grep -Eq "^  style +style_64.png$" "$T/info.txt" && ok || bad "info: $(cat "$T/info.txt")"

# --- a decoder of universal style transfer: photos alone, its own losses, resumable ---
D=$T/dec3.nstm
expect 0 "the decoder of relu3_1" -- $NST train --decoder relu3_1 --data "$T/data" -o "$D" --size 32 --width 4 --batch 2 \
    --holdout 1 --steps 6 --checkpoint-every 3 --lr 0.001 --log "$T/dec.csv"
head -1 "$T/dec.csv" | grep -qx "step,elapsed_s,feature_loss,pixel_loss,tv_loss,total_loss" && ok || bad "decoder csv header"
[ -s "$T/dec3_step000003.jpg" ] && ok || bad "no decoder preview: $(ls "$T")"
expect 0 "resuming" -- $NST train --decoder relu3_1 --data "$T/data" -o "$D" --size 32 --width 4 --batch 2 \
    --holdout 1 --steps 8 --lr 0.001 --resume "$D.ckpt"
expect 1 "relu2_1, not width 4 of relu3_1|of relu2_1" -- $NST train --decoder relu2_1 --data "$T/data" -o "$T/dec2.nstm" \
    --size 32 --width 4 --batch 2 --holdout 1 --steps 10 --resume "$D.ckpt"
expect 2 "no --style" -- $NST train --decoder relu3_1 --style "$STYLE" --data "$T/data" -o "$T/decx.nstm"
expect 2 "relu1_1, relu2_1" -- $NST train --decoder relu4_2 --data "$T/data" -o "$T/decx.nstm"
expect 2 "multiples of 16" -- $NST train --decoder relu5_1 --size 72 --data "$T/data" -o "$T/decx.nstm"
expect 1 "a decoder of universal style transfer, not a style network" -- $NST apply --model "$D" "$CONTENT" -o "$T/decx.png"
$NST info "$D" >"$T/info.txt" && grep -q "decoder of relu3_1" "$T/info.txt" && grep -q "command *nst train --decoder relu3_1" "$T/info.txt" &&
    $NST info --json "$D" | grep -q '"type":[[:space:]]*"decoder"' && ok || bad "nst info on a decoder: $(cat "$T/info.txt")"
[ ! -e "$T/decx.nstm" ] && [ ! -e "$T/decx.png" ] && ok || bad "a refused decoder command wrote a file"
# any painting in one pass with that decoder (WCT at relu3_1)
mkdir -p "$T/decoders"
cp "$D" "$T/decoders/relu3_1.nstm"
U=(--decoders "$T/decoders" --style-size 64)
expect 0 "wrote" -- $NST apply --style "$STYLE" "${U[@]}" "$CONTENT" -o "$T/u1.png"
[ "$(size_of "$T/u1.png")" = "$(size_of "$CONTENT")" ] && ok || bad "universal apply changed the size"
$NST apply --style "$STYLE" "${U[@]}" "$CONTENT" -o "$T/u0.png" --strength 0 -q && ! cmp -s "$T/u0.png" "$T/u1.png" && ok ||
    bad "--strength 0 gave the full style"
$NST apply --style "$STYLE,$SHARED/images/style/udnie.jpg" --blend 1,1 "${U[@]}" "$CONTENT" -o "$T/u2.png" -q && [ -s "$T/u2.png" ] && ok ||
    bad "a blend of two paintings"
for want in 1x1 7x5 33x25; do
    $NST apply --style "$STYLE" "${U[@]}" "$SHARED/images/content/tubingen.jpg" --size "${want%x*}" -o "$T/uodd.png" -q &&
        [ "$(size_of "$T/uodd.png")" = "$want" ] && ok || bad "universal apply at $want: $(size_of "$T/uodd.png")"
done
$NST apply --style "$STYLE" --decoders "$T/decoders" --style-size 16 "$CONTENT" -o "$T/us.png" 2>"$T/stderr" &&
    grep -q "small for relu3_1: 16 positions for 256 channels" "$T/stderr" && ok || bad "a tiny painting: $(cat "$T/stderr")"
# a flat painting (grey, 32x32): no texture to colour with, a picture all the same
{ printf 'P6\n32 32\n255\n'; head -c 3072 /dev/zero | tr '\0' '\200'; } >"$T/flat.ppm"
expect 0 "wrote" -- $NST apply --style "$T/flat.ppm" "${U[@]}" "$CONTENT" -o "$T/uflat.png"
# the shipped decoders, found without --decoders
if ls "$(dirname "$0")/../models/universal/"relu*_1.nstm >/dev/null 2>&1; then
    expect 0 "universal" -- $NST apply --style "$STYLE" "$CONTENT" -o "$T/ship_u.png"
    # the CPU's bf16 (auto, where it has it) stays close to fp32
    $NST apply --style "$STYLE" --precision fp32 "$CONTENT" -o "$T/ship_u32.png" -q &&
        $NST compare "$T/ship_u32.png" "$T/ship_u.png" | awk '{exit !($3 == "inf" || $3 > 35)}' && ok ||
        bad "universal bf16 vs fp32: $($NST compare "$T/ship_u32.png" "$T/ship_u.png")"
    expect 2 "no CUDA path" -- $NST apply --style "$STYLE" --device cuda "$CONTENT" -o "$T/ux.png"
    # --levels: where WCT starts (the default 4; 5 where relu5_1's decoder ships)
    for k in 2 5; do
        [ "$k" = 5 ] && [ ! -s "$(dirname "$0")/../models/universal/relu5_1.nstm" ] && continue
        $NST apply --style "$STYLE" --levels $k "$CONTENT" -o "$T/lev$k.png" -q && [ -s "$T/lev$k.png" ] &&
            ! cmp -s "$T/lev$k.png" "$T/ship_u.png" && ok || bad "--levels $k gave the default's picture"
    done
    # the shipped decoders' one-pass result starts the optimisation well below the photo
    G=(--content "$CONTENT" --style "$STYLE" --size 64 --optimizer adam --steps 1 -q)
    $NST transfer "${G[@]}" -o "$T/g0.png" --log "$T/g0.csv" &&
        $NST transfer "${G[@]}" --init universal -o "$T/g1.png" --log "$T/g1.csv" &&
        awk -F, 'FNR==2{v[++n]=$6} END{exit !(n == 2 && v[2] < 0.7 * v[1])}' "$T/g0.csv" "$T/g1.csv" && ok ||
        bad "--init universal does not start below the photo: $(cat "$T/g0.csv" "$T/g1.csv")"
fi
if [ -s "$(dirname "$0")/../models/universal/relu4_1.nstm" ]; then
    expect 0 "wrote" -- $NST apply --style "$STYLE" --method adain "$CONTENT" -o "$T/ship_a.png"
    ! cmp -s "$T/ship_u.png" "$T/ship_a.png" && ok || bad "WCT and AdaIN gave the same picture"
fi
# nst compare: an image against itself, a reconstruction, a size mismatch
$NST compare "$CONTENT" "$CONTENT" "$T/u0.png" >"$T/cmp.txt" && grep -q "content_64.png psnr inf ssim 1.00000" "$T/cmp.txt" &&
    grep -Eq "u0.png psnr [0-9.]+ ssim 0\.[0-9]+" "$T/cmp.txt" && ok || bad "compare: $(cat "$T/cmp.txt")"
expect 1 "cannot be compared" -- $NST compare "$CONTENT" "$T/uodd.png"
$NST compare --size 33 "$SHARED/images/content/tubingen.jpg" "$T/uodd.png" | grep -Eq "psnr [0-9.]+ ssim" && ok ||
    bad "compare --size: $($NST compare --size 33 "$SHARED/images/content/tubingen.jpg" "$T/uodd.png" 2>&1)"
expect 2 "a reference and at least one image" -- $NST compare "$CONTENT"
expect 2 "levels is WCT's" -- $NST apply --style "$STYLE" --method adain --levels 3 "${U[@]}" "$CONTENT" -o "$T/ux.png"
expect 2 "levels" -- $NST apply --style "$STYLE" --levels 6 "${U[@]}" "$CONTENT" -o "$T/ux.png"
expect 1 "no decoder of relu1_1 .. relu2_1 \(its shallowest is relu3_1: 3 levels\)" -- \
    $NST apply --style "$STYLE" --levels 2 "${U[@]}" "$CONTENT" -o "$T/ux.png"
expect 1 "AdaIN needs the decoder of relu4_1" -- $NST apply --style "$STYLE" --method adain "${U[@]}" "$CONTENT" -o "$T/ux.png"
expect 1 "no decoders in it" -- $NST apply --style "$STYLE" --decoders "$T/data" "$CONTENT" -o "$T/ux.png"
expect 2 "one or the other" -- $NST apply --style "$STYLE" --model "$D" "$CONTENT" -o "$T/ux.png"
expect 2 "give their weights" -- $NST apply --style "$STYLE,$CONTENT" "${U[@]}" "$CONTENT" -o "$T/ux.png"
expect 2 "go with --style" -- $NST apply --model "$D" --method adain "$CONTENT" -o "$T/ux.png"
expect 2 "wct and adain" -- $NST apply --style "$STYLE" --method gatys "$CONTENT" -o "$T/ux.png"
echo "not an image" >"$T/notapainting.png"
expect 1 "notapainting.png" -- $NST apply --style "$T/notapainting.png" "${U[@]}" "$CONTENT" -o "$T/ux.png"
cp "$STYLE" "$T/painting.png"
expect 2 "replace" -- $NST apply --style "$T/painting.png" "${U[@]}" "$CONTENT" -o "$T/painting.png"
cmp -s "$STYLE" "$T/painting.png" && [ ! -e "$T/ux.png" ] && ok || bad "a refused universal apply wrote a file"
# nst transfer --init universal: optimisation from the one-pass result
G=(--content "$CONTENT" --style "$STYLE" --size 64 --optimizer adam --steps 1)
expect 0 "init: universal style transfer \(WCT, 1 levels" -- $NST transfer "${G[@]}" --init universal \
    --decoders "$T/decoders" -o "$T/g2.png"
expect 2 "goes with --init universal" -- $NST transfer "${G[@]}" --decoders "$T/decoders" -o "$T/g3.png"
expect 1 "no decoders in it" -- $NST transfer "${G[@]}" --init universal --decoders "$T/data" -o "$T/g3.png"
[ ! -e "$T/g3.png" ] && ok || bad "a refused --init universal wrote a file"

# --- one network for several paintings (conditional instance norm) ---
S2=$T/style2.png
$NST apply --model "$M" "$STYLE" -o "$S2" -q || bad "a second painting"
MM=$T/multi.nstm
expect 0 "wrote" -- $NST train --style "$STYLE,$S2" --data "$T/data" -o "$MM" --size 32 --style-size 64 --width 4 \
    --res-blocks 1 --batch 2 --holdout 1 --steps 4 --checkpoint-every 2 --device cpu
cp "$S2" "$T/s2keep.png"
expect 2 "that is a style image" -- $NST train --style "$STYLE,$S2" --data "$T/data" -o "$S2" --steps 1
cmp -s "$S2" "$T/s2keep.png" && ok || bad "a painting of several was replaced"
$NST info "$MM" | grep -Eq "^  styles +style_64,style2$" && ok || bad "multi-style info: $($NST info "$MM")"
expect 0 "wrote" -- $NST train --style "$STYLE,$S2" --data "$T/data" -o "$MM" --size 32 --style-size 64 --width 4 \
    --res-blocks 1 --batch 2 --holdout 1 --steps 6 --resume "$MM.ckpt" --device cpu
expect 1 "2 styles, not 1" -- $NST train --style "$STYLE" --data "$T/data" -o "$T/one.nstm" --size 32 --style-size 64 \
    --width 4 --res-blocks 1 --batch 2 --holdout 1 --steps 8 --resume "$MM.ckpt" --device cpu
$NST apply --model "$MM:style_64" "$CONTENT" -o "$T/m1.png" -q && $NST apply --model "$MM:style2" "$CONTENT" -o "$T/m2.png" -q &&
    ! cmp -s "$T/m1.png" "$T/m2.png" && ok || bad "the styles of a multi-style model"
$NST apply --model "$MM" "$CONTENT" -o "$T/m0.png" -q && cmp -s "$T/m0.png" "$T/m1.png" && ok || bad "the first style by default"
$NST apply --model "$MM:style2,style_64" --blend 1,0 "$CONTENT" -o "$T/mb.png" -q && cmp -s "$T/mb.png" "$T/m2.png" && ok ||
    bad "--blend 1,0 is the first style named"
$NST apply --model "$MM:style2,style_64" --blend 0.5,0.5 "$CONTENT" -o "$T/mh.png" -q && ! cmp -s "$T/mh.png" "$T/m1.png" &&
    ! cmp -s "$T/mh.png" "$T/m2.png" && ok || bad "--blend 0.5,0.5 is neither style"
expect 1 "no style 'nope'" -- $NST apply --model "$MM:nope" "$CONTENT" -o "$T/mx.png"
expect 2 "weights" -- $NST apply --model "$MM:style2,style_64" "$CONTENT" -o "$T/mx.png"
expect 2 "1 weights for 2" -- $NST apply --model "$MM:style2,style_64" --blend 1 "$CONTENT" -o "$T/mx.png"
expect 2 "holds one style" -- $NST apply --model "$M,$M" --blend 1,1 "$CONTENT" -o "$T/mx.png"
[ ! -e "$T/mx.png" ] && ok || bad "a refused blend wrote an output"
# a style of a file of several, by its own name, from a style folder; a file's own name
# comes first; a mistyped name is suggested
mkdir -p "$T/styles"
cp "$MM" "$T/styles/pair.nstm"
cp "$M" "$T/styles/style2.nstm" # hides pair's style2
$NST apply --model "$M" "$CONTENT" -o "$T/a0.png" -q || bad "apply"
NST_MODELS=$T/styles $NST apply --model style_64 "$CONTENT" -o "$T/n1.png" -q && cmp -s "$T/n1.png" "$T/m1.png" && ok ||
    bad "a style of a file of several by its name"
NST_MODELS=$T/styles $NST apply --model style2 "$CONTENT" -o "$T/n2.png" -q && cmp -s "$T/n2.png" "$T/a0.png" && ok ||
    bad "a file of a style's name comes first"
NST_MODELS=$T/styles $NST apply --model pair "$CONTENT" -o "$T/n0.png" -q && cmp -s "$T/n0.png" "$T/m1.png" && ok ||
    bad "a file of several by its name"
NST_MODELS=$T/styles $NST apply --list >"$T/list.txt" && grep -Eq "^  style_64$" "$T/list.txt" &&
    grep -Eq "^  pair:style2$" "$T/list.txt" && grep -q "^style2 " "$T/list.txt" && ok || bad "--list: $(cat "$T/list.txt")"
NST_MODELS=$T/styles expect 2 "did you mean 'style_64'" -- $NST apply --model style_46 "$CONTENT" -o "$T/mx.png"

# --- apply ---
expect 0 "wrote" -- $NST apply --model "$M" "$CONTENT" -o "$T/a.png"
[ "$(size_of "$T/a.png")" = "$(size_of "$CONTENT")" ] && ok || bad "apply changed the size"
expect 0 "wrote" -- $NST apply --model "$M" "$CONTENT" -o "$T/b.jpg" --size 50 --preserve-colors
[ "$(size_of "$T/b.jpg")" = "50x50" ] && ok || bad "--size 50 gave $(size_of "$T/b.jpg")"
# --strength: 1 is the plain result; less mixes in the photo; out of range is a usage error
$NST apply --model "$M" "$CONTENT" -o "$T/s1.png" --strength 1 -q && cmp -s "$T/a.png" "$T/s1.png" && ok ||
    bad "--strength 1 differs from the plain result"
$NST apply --model "$M" "$CONTENT" -o "$T/s3.png" --strength 0.3 -q && ! cmp -s "$T/a.png" "$T/s3.png" && ok ||
    bad "--strength 0.3 gave the plain result"
expect 2 "strength" -- $NST apply --model "$M" "$CONTENT" -o "$T/s9.png" --strength 1.2
[ ! -e "$T/s9.png" ] && ok || bad "--strength 1.2 wrote an output"
# odd and tiny sizes come back at their own size (tubingen.jpg is 1024x768)
PHOTO=$SHARED/images/content/tubingen.jpg
for want in 1x1 7x5 33x25 61x46; do
    $NST apply --model "$M" "$PHOTO" -o "$T/odd.png" --size "${want%x*}" -q 2>"$T/stderr" &&
        [ "$(size_of "$T/odd.png")" = "$want" ] && ok || bad "apply at $want: $(size_of "$T/odd.png") $(cat "$T/stderr")"
done
# several photos and a folder into --out-dir
mkdir -p "$T/in"
cp "$CONTENT" "$T/in/p1.png"
cp "$SHARED/datasets/photos256/00001.jpg" "$T/in/p2.jpg"
echo "not an image" >"$T/in/notes.txt"
expect 0 "wrote" -- $NST apply --model "$M" --out-dir "$T/outdir" "$T/in" "$STYLE"
[ -s "$T/outdir/p1.png" ] && [ -s "$T/outdir/p2.jpg" ] && [ -s "$T/outdir/style_64.png" ] && [ ! -e "$T/outdir/notes.txt" ] &&
    ok || bad "out-dir: $(ls "$T/outdir")"
# the same model and photo give the same bytes
$NST apply --model "$M" "$CONTENT" -o "$T/a2.png" -q && cmp -s "$T/a.png" "$T/a2.png" && ok || bad "apply is not deterministic"
# the styles that ship with nst, by name
for s in $(ls "$(dirname "$0")/../models/"*.nstm 2>/dev/null); do
    name=$(basename "$s" .nstm)
    expect 0 "wrote" -- $NST apply --model "$name" "$CONTENT" -o "$T/ship_$name.png"
done
if ls "$(dirname "$0")/../models/"*.nstm >/dev/null 2>&1; then
    $NST apply --list | grep -q "width" && ok || bad "apply --list: $($NST apply --list)"
    # the contact sheet: the photo and every shipped style, a 3 x 2 tile grid for 4 or 5 tiles
    n=$(ls "$(dirname "$0")/../models/"*.nstm | wc -l)
    expect 0 "$n styles" -- $NST apply --sheet "$CONTENT" -o "$T/sheet.png" --size 40
    [ -s "$T/sheet.png" ] && ok || bad "no sheet"
    expect 2 "--sheet takes one photo" -- $NST apply --sheet --model "$M" "$CONTENT" -o "$T/sheet2.png"
    expect 2 "--sheet takes one photo" -- $NST apply --sheet "$CONTENT" "$CONTENT" -o "$T/sheet2.png"
    cp "$CONTENT" "$T/photo.png"
    expect 2 "replace" -- $NST apply --sheet "$T/photo.png" -o "$T/photo.png"
    [ ! -e "$T/sheet2.png" ] && cmp -s "$CONTENT" "$T/photo.png" && ok || bad "a refused sheet wrote something"
fi

# --- bad input ---
expect 2 "needs --model" -- $NST apply "$CONTENT" -o "$T/x.png"
expect 2 "one photo" -- $NST apply --model "$M" "$CONTENT" "$STYLE" -o "$T/x.png"
expect 2 "no_such_style: no such file or style" -- $NST apply --model no_such_style "$CONTENT" -o "$T/x.png"
no_file "$T/x.png"
expect 1 "style_64.png: not an nst model file" -- $NST apply --model "$STYLE" "$CONTENT" -o "$T/x.png"
head -c 300 "$M" >"$T/trunc.nstm"
expect 1 "trunc.nstm: truncated" -- $NST apply --model "$T/trunc.nstm" "$CONTENT" -o "$T/x.png"
cp "$M" "$T/flip.nstm"
printf '\x55' | dd of="$T/flip.nstm" bs=1 seek=500 conv=notrunc 2>/dev/null
expect 1 "flip.nstm: checksum mismatch" -- $NST apply --model "$T/flip.nstm" "$CONTENT" -o "$T/x.png"
no_file "$T/x.png"
expect 1 "missing.png: cannot open" -- $NST apply --model "$M" "$T/missing.png" -o "$T/x.png"
no_file "$T/x.png"
expect 2 "x.gif: .*GIF" -- $NST apply --model "$M" "$CONTENT" -o "$T/x.gif"
expect 2 "unknown option" -- $NST apply --model "$M" --frobnicate "$CONTENT" -o "$T/x.png"
expect 2 "train needs --data DIR" -- $NST train --style "$STYLE" -o "$T/m.nstm"
expect 2 "not a multiple of 4" -- $NST train --style "$STYLE" --data "$T/data" -o "$T/m.nstm" --size 34
expect 2 "is not an integer" -- $NST train --style "$STYLE" --data "$T/data" -o "$T/m.nstm" --steps ten
expect 1 "nodata: cannot" -- $NST train --style "$STYLE" --data "$T/nodata" -o "$T/m.nstm" --steps 1
mkdir -p "$T/empty"
expect 1 "empty: no image files|empty.*no .*image" -- $NST train --style "$STYLE" --data "$T/empty" -o "$T/m.nstm" --steps 1
# apply on folders without an image: one line naming the folder, a usage error, no output folder
expect 2 "empty: no image to stylise \\(empty\\)" -- $NST apply --model udnie --out-dir "$T/od_empty" "$T/empty"
[ ! -e "$T/od_empty" ] && ok || bad "apply on an empty folder made its --out-dir"
mkdir -p "$T/noimg" && echo text >"$T/noimg/notes.txt"
expect 2 "noimg: no image to stylise \\(1 entry skipped; .*notes.txt: not an image\\)" -- $NST apply --model udnie --out-dir "$T/od_noimg" "$T/noimg"
expect 1 "missing.jpg: cannot open" -- $NST train --style "$T/missing.jpg" --data "$T/data" -o "$T/m.nstm" --steps 1
expect 1 "tiny.nstm: a model file, not a training checkpoint" -- \
    $NST train --style "$STYLE" --data "$T/data" -o "$T/m.nstm" --size 32 --width 4 --res-blocks 1 --steps 40 --resume "$M"
expect 1 "width 4 network with 1 residual blocks, not 8" -- \
    $NST train --style "$STYLE" --data "$T/data" -o "$T/m.nstm" --size 32 --width 8 --res-blocks 1 --steps 40 --resume "$M.ckpt"
no_file "$T/m.nstm"

# --- limits on input files (the shipped starry_night.nstm is 1.6 MB) ---
SHIPPED=$(dirname "$0")/../models/starry_night.nstm
$NST apply --help | grep -q -- "--max-file-mb" && $NST train --help | grep -q -- "--max-pixels" && ok || bad "limits in --help"
expect 1 "starry_night.nstm: file is [0-9]+ bytes \(1\.[0-9]+ MB\), more than the limit of 1048576 bytes \(1\.00 MB\); raise it with --max-file-mb N or NST_MAX_FILE_MB=N" \
    -- $NST apply --model starry_night --max-file-mb 1 "$CONTENT" -o "$T/l1.png"; no_file "$T/l1.png"
expect 0 "wrote" -- $NST apply --model starry_night --max-file-mb 2 "$CONTENT" -o "$T/l2.png"
NST_MAX_FILE_MB=1 expect 1 "starry_night.nstm: file is" -- $NST info "$SHIPPED"
$NST info --max-file-mb 2 "$SHIPPED" | grep -q "style network" && ok || bad "info --max-file-mb 2 on a model"
expect 1 "content_64.png: image is 64x64 = 4096 pixels, more than the limit of 4095" -- \
    $NST apply --model "$M" --max-pixels 4095 "$CONTENT" -o "$T/l3.png"; no_file "$T/l3.png"
NST_MAX_PIXELS=4096 expect 0 "wrote" -- $NST apply --model "$M" "$CONTENT" -o "$T/l4.png"
expect 1 "style_64.png: image is 64x64 = 4096 pixels, more than the limit of 1000" -- \
    $NST train --style "$STYLE" --data "$T/data" -o "$T/l5.nstm" --size 32 --width 4 --res-blocks 1 --steps 1 --max-pixels 1000
no_file "$T/l5.nstm"
cp "$SHIPPED" "$T/nst_model_big.ckpt" # refused by its size before it is read
NST_MAX_FILE_MB=1 expect 1 "nst_model_big.ckpt: file is" -- $NST train --style "$STYLE" --data "$T/data" -o "$T/l6.nstm" \
    --size 32 --width 4 --res-blocks 1 --steps 40 --resume "$T/nst_model_big.ckpt"
expect 2 "--max-file-mb: 'x' is not a whole number of megabytes" -- \
    $NST train --style "$STYLE" --data "$T/data" -o "$T/l7.nstm" --max-file-mb x
expect 2 "--max-pixels: 0 pixels is out of range" -- $NST apply --model "$M" --max-pixels 0 "$CONTENT" -o "$T/l8.png"
NST_MAX_FILE_MB=lots expect 2 "NST_MAX_FILE_MB: 'lots' is not a whole number of megabytes" -- \
    $NST apply --model "$M" "$CONTENT" -o "$T/l9.png"
no_file "$T/l7.nstm"; no_file "$T/l8.png"; no_file "$T/l9.png"

finish
