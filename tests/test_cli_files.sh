#!/usr/bin/env bash
# test_cli_files.sh NST SHARED - the command line as a user coming from neural-style,
# ImageMagick or ffmpeg types it, and never a lost photo: an output never replaces an
# input (checksums before and after), outputs that share a name get distinct names, every
# output is checked before any work; the option parser (--flag=value, --, -, short forms,
# typos, repeated flags, lists, neural-style's names); formats in and out, standard input
# and output, alpha and metadata; any photo shape; info by content; progress lines.
. "$(dirname "$0")/cli_lib.sh"
MODELS=$(cd "$(dirname "$0")/../models" && pwd)
NST=$(realpath "$NST") STYLE=$(realpath "$STYLE") CONTENT=$(realpath "$CONTENT")
sum() { md5sum "$@" | awk '{print $1}' | tr '\n' ' '; }

# little-endian bytes for hand-made files
le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))"; }
le32() { le16 $(($1 & 65535)); le16 $(($1 >> 16 & 65535)); }
# make_bmp W H FILE: a 24-bit bottom-up BMP, grey rows (W*3 must be a multiple of 4)
make_bmp() {
    local w=$1 h=$2 row=$(($1 * 3))
    { printf 'BM'; le32 $((54 + row * h)); le32 0; le32 54
      le32 40; le32 "$w"; le32 "$h"; le16 1; le16 24; le32 0; le32 $((row * h)); le32 2835; le32 2835; le32 0; le32 0
      head -c $((row * h)) /dev/zero | tr '\0' '\200'; } >"$3"
}
# a 2x2 GIF: one transparent pixel (index 0), three red
make_gif() {
    printf 'GIF89a\x02\x00\x02\x00\x80\x00\x00\x00\x00\x00\xff\x00\x00' >"$1"
    printf '\x21\xf9\x04\x01\x00\x00\x00\x00' >>"$1"                 # transparency: index 0
    printf '\x2c\x00\x00\x00\x00\x02\x00\x02\x00\x00' >>"$1"         # the frame
    printf '\x02\x04\x04\xc3\x30\x05\x00\x3b' >>"$1"                 # LZW: clear,0,clear,1,clear,1,clear,1,end
}

RUN=(--size 32 --steps 2 -q)
P=$T/photos
mkdir -p "$P" "$T/a" "$T/b"
cp "$CONTENT" "$P/one.png"
cp "$SHARED/datasets/photos256/00001.jpg" "$P/two.jpg"
cp "$SHARED/datasets/photos256/00002.jpg" "$T/a/x.jpg"
cp "$SHARED/datasets/photos256/00003.jpg" "$T/b/x.jpg"
echo "notes" >"$P/notes.txt"
before=$(sum "$P"/* "$T"/a/x.jpg "$T"/b/x.jpg)

# ---------------------------------------------------------------- no lost data
# an output folder that is the input folder: refused before any work, nothing changed
expect 2 "would replace an input photo .*one.png.*never replaces an input" -- $NST apply --model udnie --out-dir "$P" "$P"
[ "$(sum "$P"/* "$T"/a/x.jpg "$T"/b/x.jpg)" = "$before" ] && ok || bad "apply into the input folder changed the photos"
[ "$(ls "$P" | wc -l)" = 3 ] && ok || bad "apply into the input folder left files: $(ls "$P")"
# -o naming the input, by the same name, another spelling, a hard link and a symlink
expect 2 "that is an input photo" -- $NST apply --model udnie "$P/one.png" -o "$P/one.png"
expect 2 "that is the content photo" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$P/../photos/one.png" "${RUN[@]}"
ln "$P/one.png" "$T/hard.png"
expect 2 "that is the content photo" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/hard.png" "${RUN[@]}"
ln -s "$P/two.jpg" "$T/soft.jpg"
expect 2 "that is the style image" -- $NST transfer --content "$P/one.png" --style "$P/two.jpg" -o "$T/soft.jpg" "${RUN[@]}"
expect 2 "--log .*that is the content photo" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/o.png" --log "$P/one.png" "${RUN[@]}"
expect 2 "that is the --init image" -- $NST transfer --content "$P/one.png" --style "$STYLE" --init "$T/a/x.jpg" -o "$T/a/x.jpg" "${RUN[@]}"
expect 2 "-o .*that is the style image" -- $NST train --style "$T/a/x.jpg" --data "$T/b" -o "$T/a/x.jpg"
rm "$T/hard.png"
[ "$(sum "$P"/* "$T"/a/x.jpg "$T"/b/x.jpg)" = "$before" ] && ok || bad "a refused run changed an input"
# two photos of the same name: distinct outputs, each the stylised version of its own photo
$NST apply --model udnie --out-dir "$T/r" "$T/a/x.jpg" "$T/b/x.jpg" 2>"$T/err" && ok || bad "same names: $(cat "$T/err")"
[ -s "$T/r/x.jpg" ] && [ -s "$T/r/x_2.jpg" ] && ! cmp -s "$T/r/x.jpg" "$T/r/x_2.jpg" && ok || bad "same names: $(ls "$T/r")"
grep -q "b/x.jpg: another photo of this name comes first: writing .*r/x_2.jpg" "$T/err" && ok || bad "no note: $(cat "$T/err")"
$NST apply --model udnie "$T/b/x.jpg" -o "$T/single.jpg" -q && cmp -s "$T/single.jpg" "$T/r/x_2.jpg" && ok ||
    bad "r/x_2.jpg is not b/x.jpg stylised"
# the same photo twice is done once
expect 0 "skipped .*one.png: given twice" -- $NST apply --model udnie --out-dir "$T/twice" "$P/one.png" "$P/one.png"
# a folder: skipped files with the reason, and a summary
expect 0 "3 written, 1 skipped, 0 failed" -- $NST apply --model udnie --out-dir "$T/all" "$P" "$T/a/x.jpg"
grep -q "skipped $P/notes.txt: not an image" "$T/stderr" && ok || bad "skip reason: $(cat "$T/stderr")"
[ -s "$T/all/one.png" ] && [ -s "$T/all/two.jpg" ] && [ -s "$T/all/x.jpg" ] && ok || bad "folder outputs: $(ls "$T/all")"
mkdir -p "$T/mixed" && cp "$P/one.png" "$T/mixed/" && head -c 500 "$T/a/x.jpg" >"$T/mixed/cut.jpg"
expect 1 "cut.jpg" -- $NST apply --model udnie --out-dir "$T/mixed_out" "$T/mixed" -q
$NST apply --model udnie --out-dir "$T/mixed_out2" "$T/mixed" 2>&1 | grep -q "1 written, 0 skipped, 1 failed" && ok ||
    bad "failed count"
[ "$(sum "$P"/* "$T"/a/x.jpg "$T"/b/x.jpg)" = "$before" ] && ok || bad "the inputs changed"

# ---------------------------------------------------------------- outputs checked first
# an existing folder as -o gets a default name inside; so does a name ending in /
expect 0 "wrote $T/one_style_64.png" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T" --size 32 --steps 1
mv "$T/one_style_64.png" "$T/moved.png"
expect 0 "wrote .*newdir/one_style_64.png" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/newdir/" --size 32 --steps 1
[ -s "$T/newdir/one_style_64.png" ] && ok || bad "-o DIR/: $(ls "$T/newdir" 2>&1)"
expect 0 "wrote .*one_udnie.png" -- $NST apply --model udnie "$P/one.png" -o "$T/newdir"
# bad output paths are found before the weights are read (a bad --weights would fail later)
expect 1 "missing_dir/m.nstm: the folder .*missing_dir does not exist" -- \
    $NST train --style "$STYLE" --data "$P" -o "$T/missing_dir/m.nstm" --weights "$T/nowhere"
expect 1 "nodir/o.png: the folder" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/nodir/o.png" --weights "$T/nowhere"
expect 1 "nodir/l.csv: the folder" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/o.png" --log "$T/nodir/l.csv" --weights "$T/nowhere"
expect 2 "te.png: that names a png image; a model file ends in .nstm" -- $NST train --style "$STYLE" --data "$P" -o "$T/te.png"
expect 2 "o.bmp: .*BMP" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/o.bmp" --weights "$T/nowhere"
expect 2 "is a file, not a folder" -- $NST apply --model udnie --out-dir "$P/one.png" "$T/a/x.jpg"
no_file "$T/o.png"

# ---------------------------------------------------------------- the option parser
$NST -V | grep -Eq "^nst [0-9]+\.[0-9]+" && ok || bad "nst -V"
$NST transfer --version | grep -Eq "^nst [0-9]" && ok || bad "nst transfer --version"
$NST apply -V | grep -Eq "^nst [0-9]" && $NST info -h | grep -q "usage: nst info" && ok || bad "apply -V / info -h"
expect 2 "unknown option '--original-colors' \(did you mean '--preserve-colors'\?\)" -- \
    $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/o.png" --original-colors
expect 2 "unknown option '--stlye' \(did you mean '--style'\?\)" -- $NST transfer --content "$P/one.png" --stlye "$STYLE" -o "$T/o.png"
expect 2 "unknown option '-content' \(did you mean '--content'\?\)" -- $NST transfer -content "$P/one.png" --style "$STYLE" -o "$T/o.png"
expect 2 "unknown command 'aply' \(did you mean 'apply'\?\)" -- $NST aply --model udnie "$P/one.png" -o "$T/o.png"
expect 2 "--content needs a value" -- $NST transfer --content --style "$STYLE" -o "$T/o.png"
expect 2 "-o needs a value" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o
expect 2 "--content given twice \('.*one.png' and '.*x.jpg'\)" -- $NST transfer --content "$P/one.png" --content "$T/a/x.jpg" --style "$STYLE" -o "$T/o.png"
expect 2 "--preserve-colors takes no value" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/o.png" --preserve-colors=yes
expect 2 "unknown option '-v'" -- $NST info -v "$MODELS/udnie.nstm"
expect 2 "unknown layer 'relu4_3x' \(did you mean 'relu4_3'\?\)" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/o.png" --style-layers relu4_3x
expect 2 "--model udnei: no such file or style \(did you mean 'udnie'\? styles: .*great_wave.*udnie" -- \
    $NST apply --model udnei "$P/one.png" -o "$T/o.png"
expect 1 "info udnei: no such file or style \(did you mean 'udnie'" -- $NST info udnei
# --flag=value, -- before a file whose name starts with '-', and the short forms
$NST transfer --content="$P/one.png" --style="$STYLE" --size=32 --steps=2 -q -o "$T/eq.png" && [ -s "$T/eq.png" ] && ok || bad "--flag=value"
cp "$P/one.png" "$T/-dash.png"
(cd "$T" && $NST apply -q -m udnie -o dash_out.png -- -dash.png) && [ -s "$T/dash_out.png" ] && ok || bad "-- -dash.png"
expect 2 "unknown option '-dash.png' \(for a file whose name starts with '-', put -- before it or write ./-dash.png\)" -- \
    $NST apply --model udnie -o "$T/d.png" -dash.png
(cd "$T" && $NST transfer --content -dash.png --style "$STYLE" -o dash2.png "${RUN[@]}") && ok || bad "--content -dash.png"
# lists: spaces trimmed, a comma escaped, a file whose name holds a comma
cp "$STYLE" "$T/a,b.png"
$NST transfer --content "$P/one.png" --style "$STYLE, $T/a,b.png" -o "$T/l1.png" "${RUN[@]}" 2>"$T/err"
[ $? = 1 ] && grep -q "^nst: $T/a: " "$T/err" && ok || bad "unescaped comma in a list: $(cat "$T/err")"
$NST transfer --content "$P/one.png" --style "$STYLE, $T/a\\,b.png" --style-blend "1, 1" -o "$T/l1.png" "${RUN[@]}" && ok ||
    bad "escaped comma and trimmed spaces"
$NST transfer --content "$P/one.png" --style "$T/a,b.png" -o "$T/l2.png" "${RUN[@]}" && ok || bad "a style file with a comma"
expect 2 "--style: empty item" -- $NST transfer --content "$P/one.png" --style "$STYLE,,$STYLE" -o "$T/l3.png"
# jcjohnson/neural-style's names
$NST transfer -content_image "$P/one.png" -style_image "$STYLE" -output_image "$T/ns.png" -image_size 32 \
    -num_iterations 3 -original_colors 1 -init random -seed 3 -content_weight 5 -style_weight 100 -tv_weight 0.001 \
    -optimizer adam -learning_rate 1 -style_scale 1 -save_iter 0 -print_iter 1 -gpu -1 -q && [ -s "$T/ns.png" ] && ok ||
    bad "neural-style options"
$NST transfer --help | grep -q -- "-content_image (--content)" && ok || bad "aliases in --help"
expect 2 "-init: 'image2' is not image or random" -- $NST transfer -content_image "$P/one.png" -style_image "$STYLE" -output_image "$T/ns.png" -init image2

# ---------------------------------------------------------------- formats
make_bmp 4 3 "$T/grey.bmp"
$NST info "$T/grey.bmp" | grep -q "4x3 bmp" && ok || bad "info bmp: $($NST info "$T/grey.bmp" 2>&1)"
make_gif "$T/t.gif"
$NST info "$T/t.gif" | grep -q "2x2 gif 8-bit alpha" && ok || bad "info gif: $($NST info "$T/t.gif" 2>&1)"
for ext in webp tif png jpg; do
    expect 0 "wrote" -- $NST apply --model udnie "$P/two.jpg" -o "$T/f.$ext"
    $NST info "$T/f.$ext" | grep -q "256x256" && ok || bad "info f.$ext: $($NST info "$T/f.$ext" 2>&1)"
    expect 0 "wrote" -- $NST apply --model udnie "$T/f.$ext" -o "$T/g_$ext.png"
done
$NST info "$T/f.webp" | grep -q " webp " && $NST info "$T/f.tif" | grep -q " tiff " && ok || bad "webp/tiff formats"
expect 0 "wrote" -- $NST apply --model udnie "$T/grey.bmp" -o "$T/from_bmp.png"
# a transparent pixel stays transparent
expect 0 "wrote" -- $NST apply --model udnie "$T/t.gif" -o "$T/alpha.png"
$NST info "$T/alpha.png" | grep -q "2x2 png 8-bit alpha" && ok || bad "alpha lost: $($NST info "$T/alpha.png")"
expect 0 "wrote" -- $NST transfer --content "$T/t.gif" --style "$STYLE" -o "$T/alpha2.webp" --size 16 --steps 1
$NST info "$T/alpha2.webp" | grep -q "alpha" && ok || bad "transfer lost the alpha: $($NST info "$T/alpha2.webp")"
# 16 bits: PNG and TIFF; refused for JPEG
expect 0 "wrote" -- $NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/d16.png" --bit-depth 16 --size 32 --steps 2
$NST info "$T/d16.png" | grep -q "png 16-bit" && ok || bad "16-bit png: $($NST info "$T/d16.png")"
expect 0 "wrote" -- $NST apply --model udnie "$P/one.png" -o "$T/d16.tif" --bit-depth 16
$NST info "$T/d16.tif" | grep -q "tiff 16-bit" && ok || bad "16-bit tiff: $($NST info "$T/d16.tif")"
expect 2 "--bit-depth 16: jpeg holds 8 bits" -- $NST apply --model udnie "$P/one.png" -o "$T/d16.jpg" --bit-depth 16
no_file "$T/d16.jpg"
# --quality: a lower quality is a smaller file
$NST apply -q --model udnie "$P/two.jpg" -o "$T/q30.jpg" --quality 30 && $NST apply -q --model udnie "$P/two.jpg" -o "$T/q95.jpg" &&
    [ "$(stat -c %s "$T/q30.jpg")" -lt "$(stat -c %s "$T/q95.jpg")" ] && ok || bad "--quality"
$NST apply -q --model udnie "$P/two.jpg" -o "$T/q30.webp" --quality 30 && $NST apply -q --model udnie "$P/two.jpg" -o "$T/q95.webp" --quality 95 &&
    [ "$(stat -c %s "$T/q30.webp")" -lt "$(stat -c %s "$T/q95.webp")" ] && ok || bad "--quality webp"
expect 2 "--quality: 0 is out of range" -- $NST apply --model udnie "$P/two.jpg" -o "$T/q.jpg" --quality 0
expect 2 "the name says png but --format says jpeg" -- $NST apply --model udnie "$P/two.jpg" -o "$T/q.png" --format jpeg
# standard input and output
$NST apply -q --model udnie - -o - <"$P/two.jpg" >"$T/pipe.png" && $NST info "$T/pipe.png" | grep -q "256x256 png" && ok ||
    bad "apply - -o -"
$NST apply -q --model udnie - -o - --format webp <"$P/two.jpg" >"$T/pipe.webp" && $NST info "$T/pipe.webp" | grep -q "webp" && ok ||
    bad "--format webp to stdout"
$NST transfer --content - --style "$STYLE" -o - --size 32 --steps 1 -q <"$P/one.png" >"$T/pipe2.png" && $NST info - <"$T/pipe2.png" | grep -q "32x32" &&
    ok || bad "transfer from stdin to stdout"
expect 2 "standard input \(-\) can be read once" -- $NST transfer --content - --style - -o "$T/x.png"
printf 'garbage' | $NST apply -q --model udnie - -o "$T/g.png" 2>"$T/err"; [ $? = 1 ] && grep -q "<stdin>: not an image" "$T/err" &&
    ok || bad "garbage on stdin: $(cat "$T/err")"
# the photo's colour profile and EXIF are carried into the result
if $NST info "$SHARED/images/content/tubingen.jpg" | grep -q "ICC\|EXIF"; then
    $NST apply -q --model udnie "$SHARED/images/content/tubingen.jpg" --size 64 -o "$T/meta.jpg"
    [ "$($NST info "$T/meta.jpg" | grep -o 'ICC profile [0-9]* bytes')" = "$($NST info "$SHARED/images/content/tubingen.jpg" | grep -o 'ICC profile [0-9]* bytes')" ] &&
        ok || bad "metadata not copied: $($NST info "$T/meta.jpg")"
    $NST apply -q --model udnie "$SHARED/images/content/tubingen.jpg" --size 64 -o "$T/strip.jpg" --strip
    ! $NST info "$T/strip.jpg" | grep -q "ICC\|EXIF" && ok || bad "--strip"
fi

# ---------------------------------------------------------------- any photo shape
make_bmp 4000 10 "$T/wide.bmp"
make_bmp 4 1000 "$T/tall.bmp"
make_bmp 4 1 "$T/line.bmp"
expect 0 "wrote .*wide.png \(512x1\)" -- $NST transfer --content "$T/wide.bmp" --style "$STYLE" -o "$T/wide.png" --size 512 --steps 2
expect 0 "wrote .*tall.png \(1x256\)" -- $NST transfer --content "$T/tall.bmp" --style "$STYLE" -o "$T/tall.png" --size 256 --steps 2
for s in 16 20; do
    expect 0 "wrote" -- $NST transfer --content "$SHARED/images/content/tubingen.jpg" --style "$STYLE" -o "$T/s$s.png" --size $s --steps 2
done
expect 0 "wrote" -- $NST transfer --content "$T/line.bmp" --style "$T/line.bmp" -o "$T/line.png" --size 4 --steps 2

# ---------------------------------------------------------------- info by content
cp "$MODELS/udnie.nstm" "$T/tiny.bin"
$NST info "$T/tiny.bin" >"$T/info.txt" && grep -q "style network" "$T/info.txt" && grep -Eq "^  command +nst train" "$T/info.txt" &&
    grep -Eq "^  training +batch" "$T/info.txt" && grep -Eq "^  style_layers +relu1_1" "$T/info.txt" && ok || bad "info tiny.bin: $(cat "$T/info.txt")"
cp "$P/one.png" "$T/image.nstm"
$NST info "$T/image.nstm" | grep -q "64x64 png" && ok || bad "an image named .nstm"
$NST info udnie | grep -q "udnie.jpg" && ok || bad "info by style name"
$NST info --json udnie "$P/one.png" >"$T/info.json" && grep -q '"type":	"model"' "$T/info.json" && grep -q '"width":	64' "$T/info.json" &&
    grep -q '"format":	"png"' "$T/info.json" && ok || bad "info --json: $(cat "$T/info.json")"
if command -v python3 >/dev/null; then python3 -m json.tool "$T/info.json" >/dev/null && ok || bad "info --json is not JSON"; fi

# ---------------------------------------------------------------- progress
$NST transfer --content "$P/one.png" --style "$STYLE" -o "$T/p.png" --size 32 --steps 4 2>"$T/err"
head -1 "$T/err" | grep -q "^nst: .*one.png (64x64) -> .*p.png 32x32; style .*style_64.png; preset gatys: L-BFGS, 4 steps; [0-9]* threads\? on the CPU" &&
    ok || bad "start summary: $(head -1 "$T/err")"
# on a terminal of 60 columns no line is wider than the terminal
if script -qec true /dev/null >/dev/null 2>&1; then
    script -qec "stty cols 60 rows 20; $NST transfer --content $P/one.png --style $STYLE -o $T/tty.png --size 32 --steps 30 --preset seed" \
        /dev/null >"$T/tty.out" 2>&1
    tr '\r' '\n' <"$T/tty.out" | sed 's/\x1b\[K//g' | grep '/30' >"$T/bars"
    [ -s "$T/bars" ] && awk 'length($0) > 60 {bad=1} END {exit bad}' "$T/bars" && ok || bad "bar wider than 60: $(cat "$T/bars" | head -3)"
    grep -q "^\[#*\.*\] 30/30" "$T/bars" && ok || bad "no bar: $(tail -2 "$T/bars")"
fi
# a resumed training goes on counting its time: elapsed_s never goes back
mkdir -p "$T/data"
cp "$SHARED"/datasets/photos256/0000[1-4].jpg "$T/data/"
TR=(--style "$STYLE" --data "$T/data" --size 32 --style-size 64 --width 4 --res-blocks 1 --batch 1 --holdout 1 --checkpoint-every 3 -q)
$NST train "${TR[@]}" -o "$T/m.nstm" --steps 3 --log "$T/m.csv" && $NST train "${TR[@]}" -o "$T/m.nstm" --steps 6 --resume "$T/m.nstm.ckpt" --log "$T/m.csv" &&
    awk -F, 'NR>2 && $2+0 < prev {back=1} NR>1 {prev=$2+0; n++} END {exit back || n != 6}' "$T/m.csv" && ok || bad "resumed elapsed_s: $(cat "$T/m.csv")"

finish
