#!/usr/bin/env bash
# eval-universal.sh [options] PHOTO:PAINTING... - how far does one pass of universal style
# transfer (nst apply --style) get, measured with the optimisation's own loss?
#
# For each photo/painting pair, with the gatys preset's loss (content relu4_2, style
# relu1_1..relu5_1, TV; the photo at SIZE px, the painting at SIZE: --style-scale 1) it
# reports content, style and total loss of
#   photo      the photo itself (where optimisation from the content starts)
#   one-pass   nst apply --style (WCT with the decoders), one evaluation
#   lbfgsN     L-BFGS from the photo after N iterations, for N in --steps
# and, from --init universal (L-BFGS starting at the one-pass result):
#   uniN       its total loss after N iterations
#   match      the first iteration at which it reaches the photo-started run's loss at
#              the last N (- if it never does), and so the iterations it saves.
# Options: --size N (256)  --steps LIST (10,30,100)  --decoders DIR (the shipped ones)
#          --out DIR (keep DIR/PHOTO_PAINTING_{onepass,lbfgsN,uniN}.png)  --csv FILE (append)
# Environment: NST (build/nst), NST_EVAL_PRECISION (auto; fp32 for exact fp32 numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
NST=${NST:-build/nst}
SIZE=256
STEPS=10,30,100
DEC=()
OUT=
CSV=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --decoders) DEC=(--decoders "$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --csv) CSV=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "eval-universal.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage
[ -x "$NST" ] || { echo "eval-universal.sh: $NST is not built (cmake --build build)" >&2; exit 2; }
MAX=$(tr , '\n' <<<"$STEPS" | sort -n | tail -1)
PREC=${NST_EVAL_PRECISION:-auto}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -z "$OUT" ] || mkdir -p "$OUT"
LOSS=(--preset gatys --size "$SIZE" --style-scale 1 --precision "$PREC" -q)

# row 1 of an Adam run's log is the loss before its first update: the image scored
score() { "$NST" transfer --content "$1" --style "$2" "${LOSS[@]}" --init "$3" --optimizer adam --steps 1 \
              -o "$T/scored.png" --log "$T/score.csv" && awk -F, 'NR==2{print $3, $4, $6}' "$T/score.csv"; }
# total loss after s iterations (the last row if the run stopped early: converged)
at() { awk -F, -v s="$2" 'NR>1{last=$6; if ($1==s) {print $6; found=1; exit}} END{if (!found) print last}' "$1"; }
g() { printf '%-11.4g' "$@"; }

printf '%-30s %-33s %-33s' pair "photo (content style total)" "one-pass (content style total)"
for s in ${STEPS//,/ }; do printf '%-11s' "lbfgs$s"; done
for s in ${STEPS//,/ }; do printf '%-11s' "uni$s"; done
printf '%s\n' match
for pair in "$@"; do
    photo=${pair%%:*} painting=${pair#*:}
    [ "$photo" != "$pair" ] || { echo "eval-universal.sh: $pair is not PHOTO:PAINTING" >&2; exit 2; }
    for f in "$photo" "$painting"; do [ -r "$f" ] || { echo "eval-universal.sh: $f: cannot read it" >&2; exit 2; }; done
    name=$(basename "${photo%.*}")_$(basename "${painting%.*}")
    "$NST" apply --style "$painting" "${DEC[@]}" --style-size "$SIZE" --size "$SIZE" --precision "$PREC" "$photo" \
        -o "$T/onepass.png" -q
    read -r pc ps pt < <(score "$photo" "$painting" "$photo")
    read -r oc os ot < <(score "$photo" "$painting" "$T/onepass.png")
    "$NST" transfer --content "$photo" --style "$painting" "${LOSS[@]}" --optimizer lbfgs --steps "$MAX" \
        -o "$T/lbfgs.png" --log "$T/lbfgs.csv"
    "$NST" transfer --content "$photo" --style "$painting" "${LOSS[@]}" --optimizer lbfgs --steps "$MAX" \
        --init universal "${DEC[@]}" -o "$T/uni.png" --log "$T/uni.csv"
    row=("$name" "$pc" "$ps" "$pt" "$oc" "$os" "$ot")
    for s in ${STEPS//,/ }; do row+=("$(at "$T/lbfgs.csv" "$s")"); done
    for s in ${STEPS//,/ }; do row+=("$(at "$T/uni.csv" "$s")"); done
    target=$(at "$T/lbfgs.csv" "$MAX")
    match=$(awk -F, -v t="$target" 'NR>1 && $6 <= t {print $1; exit}' "$T/uni.csv")
    match=${match:--}
    printf '%-30s ' "$name"; g "$pc" "$ps" "$pt"; g "$oc" "$os" "$ot"
    for v in "${row[@]:7}"; do g "$v"; done
    printf '%s\n' "$match"
    if [ -n "$OUT" ]; then
        cp "$T/onepass.png" "$OUT/${name}_onepass.png"
        cp "$T/lbfgs.png" "$OUT/${name}_lbfgs$MAX.png"
        cp "$T/uni.png" "$OUT/${name}_uni$MAX.png"
    fi
    if [ -n "$CSV" ]; then
        [ -s "$CSV" ] || echo "pair,size,photo_content,photo_style,photo_total,onepass_content,onepass_style,onepass_total,$(sed 's/[0-9]\+/lbfgs&/g' <<<"$STEPS"),$(sed 's/[0-9]\+/uni&/g' <<<"$STEPS"),match" > "$CSV"
        (IFS=,; echo "${row[0]},$SIZE,${row[*]:1},$match") >> "$CSV"
    fi
done
