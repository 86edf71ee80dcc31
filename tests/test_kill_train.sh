#!/usr/bin/env bash
# test_kill_train.sh NST SHARED - no lost work in `nst train`: SIGKILL it at random
# moments while it writes a checkpoint (model, .ckpt, preview) every step, many times;
# every model, checkpoint and preview present must load, no temporary may be left under
# an image or model name, and --resume must continue from the checkpoint left behind to
# the same parameters as an uninterrupted run. SIGTERM writes a checkpoint and says so.
. "$(dirname "$0")/cli_lib.sh"
KILLS=${NST_KILLS:-20}

# a small training folder (a few photos of the shared set, copied to the temporary folder)
mkdir -p "$T/data"
for i in 00001 00002 00003 00004 00005 00006; do cp "$SHARED/datasets/photos256/$i.jpg" "$T/data/"; done
TRAIN_BASE=(train --style "$STYLE" --data "$T/data" --size 32 --style-size 64 --width 4 --res-blocks 1
            --batch 1 --holdout 1 -q)
TRAIN=("${TRAIN_BASE[@]}" --checkpoint-every 1)

# the time to the first checkpoint (start-up is much slower under the sanitizers)
mkdir -p "$T/warm"
first_ms=$(ms_until_file "$T/warm/m.nstm.ckpt" "$NST" "${TRAIN[@]}" -o "$T/warm/m.nstm" --steps 100000)
window_ms=$((first_ms + 2000))

RANDOM=11
checked=0
for i in $(seq 1 "$KILLS"); do
    d=$T/k$i
    mkdir -p "$d"
    kill_at_random "$window_ms" "$NST" "${TRAIN[@]}" -o "$d/m.nstm" --steps 100000
    for f in "$d"/m.nstm "$d"/m.nstm.ckpt "$d"/*.jpg; do
        [ -e "$f" ] || continue
        checked=$((checked + 1))
        loads "$f" && ok || bad "kill $i: $f does not load: $("$NST" info "$f" 2>&1)"
    done
    last=$d
done
leftover=$(find "$T" -name '*.nstm' -size 0 -o -name '*.ckpt' -size 0 -o -name '*.jpg' -size 0 | wc -l)
[ "$leftover" = 0 ] && ok || bad "$leftover empty model or image files"
echo "killed $KILLS training runs over ${window_ms} ms each (first checkpoint after ${first_ms} ms); $checked files checked"

# resume from the latest surviving checkpoint: it continues, and ends where a straight run ends
ckpt=$(ls -t "$T"/k*/m.nstm.ckpt 2>/dev/null | head -1)
if [ -z "$ckpt" ]; then
    bad "no checkpoint survived any kill"
else
    step=$("$NST" info "$ckpt" | sed -n 's/^  steps  *\([0-9]*\)$/\1/p')
    target=$((step + 3))
    "$NST" "${TRAIN[@]}" -o "$T/resumed.nstm" --resume "$ckpt" --steps $target 2>"$T/resume.err" &&
        "$NST" info "$T/resumed.nstm" | grep -Eq "^  steps +$target$" && ok ||
        bad "resume from $ckpt (step $step): $(cat "$T/resume.err")"
    "$NST" "${TRAIN[@]}" -o "$T/straight.nstm" --steps $target 2>/dev/null
    # the same parameters: the files differ only in the recorded command line
    "$NST" apply --model "$T/resumed.nstm" "$CONTENT" -o "$T/a.png" -q &&
        "$NST" apply --model "$T/straight.nstm" "$CONTENT" -o "$T/b.png" -q && cmp -s "$T/a.png" "$T/b.png" && ok ||
        bad "resumed run (from step $step to $target) differs from a straight run"
fi

# SIGTERM: stops after the step, writes the model and the checkpoint, exit 1
stop_when_stepping TERM "$T/term.csv" "$NST" "${TRAIN_BASE[@]}" --checkpoint-every 0 -o "$T/term.nstm" --steps 100000 \
    2>"$T/term.err"
rc=$?
[ "$rc" = 1 ] && loads "$T/term.nstm" && loads "$T/term.nstm.ckpt" && grep -q "resume with --resume" "$T/term.err" && ok ||
    bad "SIGTERM: exit $rc, $(cat "$T/term.err")"

# the output folder disappears during the run: the state is saved to $TMPDIR, and said so
expect_rescue ckpt "$NST" "${TRAIN[@]}" -o "$T/gone/m.nstm" --steps 100000

finish
