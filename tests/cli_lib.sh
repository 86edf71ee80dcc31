# cli_lib.sh - sourced by the command-line tests (test_*.sh NST SHARED): the arguments,
# a temporary folder removed at exit, pass/fail counting and the oracle's small images.
set -u
NST=$1
SHARED=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# the closing line ctest's readers understand; the exit status says whether all passed
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
}
CONTENT=$SHARED/oracle/gatys64/content_64.png
STYLE=$SHARED/oracle/gatys64/style_64.png
# expect CODE PATTERN -- command...: exit code and a one-line stderr matching PATTERN
expect() {
    local code=$1 pattern=$2
    shift 3
    "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    if [ "$rc" != "$code" ]; then bad "exit $rc (want $code): $*: $(cat "$T/stderr")"; return; fi
    if ! grep -Eq -- "$pattern" "$T/stderr"; then bad "stderr lacks '$pattern': $*: $(cat "$T/stderr")"; return; fi
    if [ "$code" != 0 ] && [ "$(wc -l <"$T/stderr")" != 1 ]; then bad "error is not one line: $*: $(cat "$T/stderr")"; return; fi
    ok
}
no_file() { if [ -e "$1" ] || ls "$1".tmp-* >/dev/null 2>&1; then bad "$1 was left behind"; else ok; fi; }
# wait_for_steps LOG N: until the CSV log of a running command has N step rows (at most
# 10 minutes: start-up under the sanitizers on a loaded machine is slow)
wait_for_steps() {
    for _ in $(seq 1 6000); do
        [ -e "$1" ] && [ "$(($(wc -l <"$1") - 1))" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# ms_until_file GLOB COMMAND...: runs COMMAND in the background until a file matching
# GLOB appears (at most a minute), kills it and prints the milliseconds that took; the
# kill tests spread their kills over that time plus a couple of seconds
ms_until_file() {
    local glob=$1
    shift
    local start pid
    start=$(date +%s%N)
    "$@" 2>/dev/null &
    pid=$!
    for _ in $(seq 1 600); do
        # shellcheck disable=SC2086
        ls $glob >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo $((($(date +%s%N) - start) / 1000000))
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
}
# loads FILE: nst info reads it (an image decodes; a model or a checkpoint loads)
loads() { "$NST" info "$1" >/dev/null 2>&1; }
# kill_at_random WINDOW_MS COMMAND...: runs COMMAND in the background and SIGKILLs it at a
# random moment within WINDOW_MS (from $RANDOM: seed it for a repeatable test)
kill_at_random() {
    local window=$1 pid ms
    shift
    "$@" 2>/dev/null &
    pid=$!
    ms=$((RANDOM * window / 32768))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
}
# stop_when_stepping SIGNAL LOG COMMAND...: runs COMMAND --log LOG in the background,
# sends it SIGNAL (INT, TERM) once LOG shows two steps (before that there is nothing to
# save), and returns its exit status
stop_when_stepping() {
    local sig=$1 log=$2 pid
    shift 2
    "$@" --log "$log" &
    pid=$!
    wait_for_steps "$log" 2
    kill -"$sig" $pid
    wait $pid
}
# expect_rescue EXT COMMAND...: runs COMMAND, which writes into $T/gone, with
# TMPDIR=$T/rescue, and moves $T/gone away once it is stepping (atomically: rm -rf could
# race a write in progress); it must exit 1, having saved its result as
# $T/rescue/nst-rescue-*.EXT, and say so
expect_rescue() {
    local ext=$1 pid rc rescued
    shift
    mkdir -p "$T/gone" "$T/rescue"
    TMPDIR=$T/rescue "$@" --log "$T/gone.csv" 2>"$T/gone.err" &
    pid=$!
    wait_for_steps "$T/gone.csv" 1
    mv "$T/gone" "$T/gone.moved"
    wait $pid
    rc=$?
    rescued=$(ls "$T"/rescue/nst-rescue-*."$ext" 2>/dev/null | head -1)
    if [ "$rc" = 1 ] && [ -n "$rescued" ] && loads "$rescued" && grep -q "saved to $rescued" "$T/gone.err"; then ok
    else bad "rescue: exit $rc, $(cat "$T/gone.err"), files: $(ls "$T/rescue")"; fi
}
