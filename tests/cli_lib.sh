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
