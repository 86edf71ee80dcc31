#!/usr/bin/env bash
# test_kill.sh NST SHARED - no lost work: kill `nst transfer` with SIGKILL at random
# moments while it writes snapshots every step, many times, and check that every image
# file present is complete and decodable and that no temporary file is left; SIGTERM
# saves the latest image; a run whose output folder vanishes saves its result elsewhere.
. "$(dirname "$0")/cli_lib.sh"
KILLS=${NST_KILLS:-25}

# How long until the first snapshot (start-up is much slower under the sanitizers):
# the kills are spread over start-up and a couple of seconds of snapshot writing.
mkdir -p "$T/warm"
first_ms=$(ms_until_file "$T/warm/out_step*.png" "$NST" transfer --content "$CONTENT" --style "$STYLE" \
    -o "$T/warm/out.png" --size 64 --steps 100000 --save-every 1 -q)
window_ms=$((first_ms + 2000))

RANDOM=7
for i in $(seq 1 "$KILLS"); do
    d=$T/k$i
    mkdir -p "$d"
    # anywhere in the window: inside start-up, inside the loop, inside a snapshot write
    kill_at_random "$window_ms" "$NST" transfer --content "$CONTENT" --style "$STYLE" -o "$d/out.png" --size 64 \
        --steps 100000 --save-every 1 -q
    for f in "$d"/*.png; do
        [ -e "$f" ] || continue
        loads "$f" && ok || bad "kill $i: $f does not decode"
    done
done
# temporaries of interrupted writes are the only leftovers allowed: none may be an image name
leftover=$(find "$T" -name '*.png' -size 0 | wc -l)
[ "$leftover" = 0 ] && ok || bad "$leftover empty image files"
snaps=$(find "$T" -name 'out_step*.png' | wc -l)
[ "$snaps" -gt 0 ] && ok || bad "no snapshot was ever written"
echo "killed $KILLS runs over ${window_ms} ms each (first snapshot after ${first_ms} ms); $snaps snapshots checked"

# SIGTERM (once the run is stepping: under the sanitizers on a busy machine start-up can
# take tens of seconds): the latest image is written to the output
stop_when_stepping TERM "$T/term.csv" "$NST" transfer --content "$CONTENT" --style "$STYLE" -o "$T/term.png" --size 64 \
    --steps 100000 -q 2>"$T/term.err"
rc=$?
[ "$rc" = 1 ] && loads "$T/term.png" && ok || bad "SIGTERM: exit $rc, $(cat "$T/term.err")"

# the output folder disappears during the run: the result is saved elsewhere, and said so
expect_rescue png "$NST" transfer --content "$CONTENT" --style "$STYLE" -o "$T/gone/out.png" --size 64 --steps 200 -q

finish
