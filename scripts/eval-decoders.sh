#!/usr/bin/env bash
# eval-decoders.sh [--size N] DIR PHOTO... - how well the decoders of universal style
# transfer reconstruct photos they never trained on.
#
# For each decoder DIR/relu<k>_1.nstm and each photo (scaled to N px, default 256): the
# photo encoded to relu<k>_1 and decoded by that decoder alone (nst apply --style with
# --strength 0: the photo through the decoder), then PSNR and SSIM against the photo
# (nst compare). Prints a row per level: the mean PSNR and SSIM over the photos, their
# minimum, and the seconds per photo; then all five levels chained (what --strength 0
# gives with every decoder). Environment: NST (build/nst).
set -euo pipefail
cd "$(dirname "$0")/.."
NST=${NST:-build/nst}
SIZE=256
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --size) SIZE=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "eval-decoders.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -ge 2 ] || usage
DIR=$(cd "$1" && pwd)
shift
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
i=0
for photo in "$@"; do
    i=$((i + 1))
    ln -s "$(cd "$(dirname "$photo")" && pwd)/$(basename "$photo")" "$T/p$i.${photo##*.}"
    P[$i]=$T/p$i.${photo##*.}
done
PAINTING=$T/style.${1##*.}
cp "$1" "$PAINTING" # any painting will do: at strength 0 only the photo is decoded
row() { # label decoders-dir
    local label=$1 dir=$2 start end
    start=$(date +%s.%N)
    for j in $(seq 1 $i); do
        "$NST" apply --style "$PAINTING" --decoders "$dir" --strength 0 --size "$SIZE" "${P[$j]}" -o "$T/r$j.png" -q
    done
    end=$(date +%s.%N)
    for j in $(seq 1 $i); do "$NST" compare --size "$SIZE" "${P[$j]}" "$T/r$j.png"; done |
        awk -v l="$label" -v n="$i" -v s="$(awk -v a="$start" -v b="$end" -v n="$i" 'BEGIN{print (b-a)/n}')" '
            {p += $3; q += $5; if (NR == 1 || $3 < pm) pm = $3; if (NR == 1 || $5 < qm) qm = $5}
            END {printf "%-10s %10.2f %10.2f %10.4f %10.4f %10.2f\n", l, p/n, pm, q/n, qm, s}'
}
printf "%-10s %10s %10s %10s %10s %10s\n" decoder psnr_mean psnr_min ssim_mean ssim_min s/photo
for k in 1 2 3 4 5; do
    [ -s "$DIR/relu${k}_1.nstm" ] || continue
    mkdir -p "$T/d$k"
    ln -s "$DIR/relu${k}_1.nstm" "$T/d$k/relu${k}_1.nstm"
    row "relu${k}_1" "$T/d$k"
done
row "chained" "$DIR"
echo "($i photos at $SIZE px)"
