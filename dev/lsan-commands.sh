#!/usr/bin/env bash
# lsan-commands.sh NST [SHARED] - runs every nst command once normally and on an error
# case or two (transfer, interrupted transfer, train, resume, apply, apply --list, info,
# bench), for an nst built with AddressSanitizer (LeakSanitizer) + UBSan, e.g. as
# scripts/test-sanitizers.sh builds it into build-asan/. Prints a line per run; exit 1 if
# any run printed a sanitizer report or exited with an unexpected status.
set -u
NST=$1
SH=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
W=$(mktemp -d)
export ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
C=$SH/oracle/gatys64/content_64.png
S=$SH/oracle/gatys64/style_64.png
mkdir -p "$W/data" "$W/empty" "$W/photos"
for i in 00001 00002 00003 00004; do cp "$SH/datasets/photos256/$i.jpg" "$W/data/"; done
cp "$C" "$S" "$W/photos/"
n=0; reports=0; unexpected=0
run() { # run WANT_RC NAME -- cmd...
    local want=$1 name=$2; shift 3
    "$@" >"$W/out" 2>"$W/err"
    local rc=$?
    n=$((n + 1))
    if grep -qE "LeakSanitizer|AddressSanitizer|runtime error" "$W/err"; then
        reports=$((reports + 1)); echo "REPORT in $name (rc $rc):"; grep -E "ERROR|SUMMARY|runtime error" "$W/err" | head -5
    elif [ "$rc" != "$want" ]; then
        unexpected=$((unexpected + 1)); echo "UNEXPECTED rc $rc (want $want) in $name: $(tail -2 "$W/err")"
    else
        echo "ok   $name (rc $rc)$( [ "$rc" != 0 ] && echo ": $(tail -1 "$W/err" | cut -c1-150)")"
    fi
}
run 0 "help" -- $NST --help
run 0 "version" -- $NST --version
run 2 "unknown command" -- $NST frobnicate
run 0 "transfer gatys 5 steps, log, snapshots" -- $NST transfer --content $C --style $S -o $W/t.png --size 64 --steps 5 --save-every 2 --log $W/t.csv
run 0 "transfer seed preset (adam), 2 styles, preserve colors, init file" -- $NST transfer --preset seed --content $C --style $S,$C --style-blend 1,1 -o $W/t2.jpg --size 32 --steps 3 --preserve-colors --init $S -q
run 1 "transfer: missing content" -- $NST transfer --content $W/nope.png --style $S -o $W/x.png --size 32 --steps 1
run 1 "transfer: bad weights folder" -- $NST transfer --content $C --style $S -o $W/x.png --size 32 --steps 1 --weights $W/empty
run 1 "transfer: --init over the pixel limit" -- $NST transfer --content $C --style $S -o $W/x.png --size 32 --steps 1 --max-pixels 4096 --init $SH/images/content/tubingen.jpg
run 2 "transfer: bad --max-file-mb" -- $NST transfer --content $C --style $S -o $W/x.png --max-file-mb -3
run 2 "transfer: unknown layer" -- $NST transfer --content $C --style $S -o $W/x.png --style-layers relu9_9
# interrupted transfer (SIGINT once stepping) writes the latest image
( $NST transfer --content $C --style $S -o $W/int.png --size 64 --steps 100000 -q --log $W/int.csv 2>$W/int.err & pid=$!
  for _ in $(seq 1 600); do [ -e $W/int.csv ] && [ $(wc -l <$W/int.csv) -ge 3 ] && break; sleep 0.1; done
  kill -INT $pid; wait $pid; echo $? >$W/int.rc )
n=$((n + 1))
if grep -qE "LeakSanitizer|AddressSanitizer|runtime error" $W/int.err; then reports=$((reports+1)); echo "REPORT in transfer SIGINT"; grep -E "ERROR|SUMMARY" $W/int.err | head; else echo "ok   transfer interrupted by SIGINT (rc $(cat $W/int.rc))"; fi
run 0 "train 2 steps, checkpoint every step" -- $NST train --style $S --data $W/data -o $W/m.nstm --size 32 --style-size 64 --width 4 --res-blocks 1 --batch 2 --holdout 1 --steps 2 --checkpoint-every 1 --log $W/train.csv
run 0 "train --resume to step 3" -- $NST train --style $S --data $W/data -o $W/m2.nstm --size 32 --style-size 64 --width 4 --res-blocks 1 --batch 2 --holdout 1 --steps 3 --resume $W/m.nstm.ckpt -q
run 1 "train: empty data folder" -- $NST train --style $S --data $W/empty -o $W/x.nstm --size 32 --width 4 --res-blocks 1 --steps 1
run 1 "train: resume from a model file" -- $NST train --style $S --data $W/data -o $W/x.nstm --size 32 --width 4 --res-blocks 1 --holdout 1 --steps 3 --resume $W/m.nstm
run 1 "train: painting over the pixel limit" -- $NST train --style $S --data $W/data -o $W/x.nstm --size 32 --width 4 --res-blocks 1 --holdout 1 --steps 1 --max-pixels 100
run 2 "train: bad --steps" -- $NST train --style $S --data $W/data -o $W/x.nstm --steps ten
run 0 "apply one photo, --size, --preserve-colors" -- $NST apply --model $W/m.nstm $C -o $W/a.png --size 48 --preserve-colors
run 0 "apply a folder (--out-dir)" -- $NST apply --model starry_night --out-dir $W/outdir $W/photos
run 0 "apply --list" -- $NST apply --list
run 1 "apply: corrupt model" -- $NST apply --model $S $C -o $W/x.png
run 1 "apply: model over the file limit" -- $NST apply --model starry_night --max-file-mb 1 $C -o $W/x.png
run 1 "apply: missing photo" -- $NST apply --model $W/m.nstm $W/nope.jpg -o $W/x.png
run 2 "apply: empty folder" -- $NST apply --model $W/m.nstm --out-dir $W/od2 $W/empty
run 2 "apply: NST_MAX_PIXELS=abc" -- env NST_MAX_PIXELS=abc $NST apply --model $W/m.nstm $C -o $W/x.png
run 0 "info image, model, checkpoint" -- $NST info $C $W/m.nstm $W/m.nstm.ckpt
run 1 "info: missing and over the limit" -- $NST info --max-pixels 100 $W/nope.png $C
run 2 "info: --max-pixels without a value" -- $NST info $C --max-pixels
run 0 "bench --size 32 --iters 1" -- $NST bench --size 32 --iters 1 --warmup 0
run 2 "bench: unknown layer" -- $NST bench --layers relu9_9
run 1 "bench: bad weights" -- $NST bench --size 32 --iters 1 --weights $W/empty
echo "$n runs, $reports with sanitizer reports, $unexpected with an unexpected exit status"
rm -rf "$W"
[ "$reports" = 0 ] && [ "$unexpected" = 0 ]
