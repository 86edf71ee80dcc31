#!/usr/bin/env bash
# compare_builds.sh OLD_NST NEW_NST [ROUNDS] [SIZE] - two builds of nst timed back to back
# in one run (the machines are shared and noisy): each round runs `nst bench` (the seed
# step) and a 20-step L-BFGS transfer with each binary, alternating which goes first, and
# prints the ratios new/old; the last line gives their medians. For checking that a
# change keeps the speed, e.g. against a worktree of the previous commit:
#   git worktree add /tmp/old HEAD~1 && cmake -S /tmp/old -B /tmp/old/build && cmake --build /tmp/old/build -j
#   bash bench/compare_builds.sh /tmp/old/build/nst build/nst 5
set -euo pipefail
old=$1 new=$2 rounds=${3:-5} size=${4:-224}
shared=${NST_SHARED:-$(cd "$(dirname "$0")/.." && pwd)/../shared}
content=$shared/images/content/tubingen.jpg style=$shared/images/style/starry_night.jpg
tmp=$(mktemp -d /tmp/nst_compare.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
step_ms() { "$1" bench --size "$size" --iters 5 --warmup 1 | sed -n 's/^ms_per_step=//p'; }
transfer_s() {
    local t0 t1
    t0=$(date +%s.%N)
    "$1" transfer --content "$content" --style "$style" -o "$tmp/out.png" --size "$size" --steps 20 -q
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}
printf '%-6s %12s %12s %7s %12s %12s %7s\n' round old_step_ms new_step_ms ratio old_lbfgs_s new_lbfgs_s ratio
: > "$tmp/r"
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then so=$(step_ms "$old"); sn=$(step_ms "$new"); to=$(transfer_s "$old"); tn=$(transfer_s "$new")
    else sn=$(step_ms "$new"); so=$(step_ms "$old"); tn=$(transfer_s "$new"); to=$(transfer_s "$old"); fi
    rs=$(awk -v a="$sn" -v b="$so" 'BEGIN {print a / b}') rt=$(awk -v a="$tn" -v b="$to" 'BEGIN {print a / b}')
    printf '%-6s %12.1f %12.1f %7.3f %12.2f %12.2f %7.3f\n' "$r" "$so" "$sn" "$rs" "$to" "$tn" "$rt"
    echo "$rs $rt" >> "$tmp/r"
done
med() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf 'median ratio new/old: step %.3f, L-BFGS transfer %.3f\n' "$(cut -d' ' -f1 "$tmp/r" | med)" "$(cut -d' ' -f2 "$tmp/r" | med)"
