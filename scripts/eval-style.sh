#!/usr/bin/env bash
# eval-style.sh [options] MODEL PAINTING PHOTO... - is a trained style network as good as
# optimisation?
#
# For each photo (one the network never trained on: nst train holds out the last --holdout
# files of its folder; any photo of your own will do) it measures, with the training loss
# (the defaults of nst train: content relu4_2 x7.5, style relu1_1..relu5_1 x100, TV x200,
# the photo at SIZE px, the painting at 2 x SIZE):
#   network: the loss of the network's output (nst apply), one evaluation
#   L-BFGS:  the loss that optimisation of the same loss reaches from the photo after
#            each of STEPS L-BFGS iterations (one run, its log read at each count)
# then ratio = network / L-BFGS at REF steps for each photo, and their median, min and max:
# a median at most 1 is the bar (as good as REF steps of optimisation).
#
# MODEL is whatever nst apply --model takes (a .nstm file or a shipped style's name).
# Options:  --size N (256)  --steps LIST (50,100,300)  --ref N (100)  --out DIR (keep the
# pictures: DIR/NAME_network.png, DIR/NAME_lbfgs300.png)  --csv FILE (append the rows)
#           --cache DIR (keep each L-BFGS run's log there and reuse it: it depends on the
#           painting, the photo, the size and the steps, not on the network)
# Environment: NST (build/nst), NST_EVAL_PRECISION (auto; fp32 for exact fp32 numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
NST=${NST:-build/nst}
SIZE=256
STEPS=50,100,300
REF=100
OUT=
CSV=
CACHE=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --ref) REF=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --csv) CSV=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "eval-style.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -ge 3 ] || usage
MODEL=$1
PAINTING=$2
shift 2
[ -x "$NST" ] || { echo "eval-style.sh: $NST is not built (cmake --build build)" >&2; exit 2; }
[ -r "$PAINTING" ] || { echo "eval-style.sh: $PAINTING: cannot read the painting" >&2; exit 2; }
case ",$STEPS," in *",$REF,"*) ;; *) echo "eval-style.sh: --ref $REF is not one of --steps $STEPS" >&2; exit 2 ;; esac
MAX=$(tr , '\n' <<<"$STEPS" | sort -n | tail -1)
PREC=${NST_EVAL_PRECISION:-auto}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -z "$OUT" ] || mkdir -p "$OUT"
[ -z "$CACHE" ] || mkdir -p "$CACHE"

LOSS=(--size "$SIZE" --style-scale 2 --content-layers relu4_2 --content-weight 7.5
      --style-layers relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 --style-weight 100 --tv-weight 200
      --gram normalized --precision "$PREC" -q)

printf '%-22s%-12s' photo network
for s in ${STEPS//,/ }; do printf '%-12s' "lbfgs$s"; done
printf '%10s %8s\n' "net/$REF" seconds
: > "$T/ratios"
for photo in "$@"; do
    [ -r "$photo" ] || { echo "eval-style.sh: $photo: cannot read the photo" >&2; exit 2; }
    name=$(basename "${photo%.*}")
    # the photo as the network and the optimisation see it: SIZE px on the longer side
    "$NST" apply --model "$MODEL" "$photo" --size "$SIZE" --precision "$PREC" -o "$T/network.png" -q
    # row 1 of an Adam run's log is the loss before its first update: the network's output scored
    "$NST" transfer --content "$photo" --style "$PAINTING" "${LOSS[@]}" --init "$T/network.png" \
        --optimizer adam --steps 1 -o "$T/scored.png" --log "$T/network.csv"
    start=$(date +%s.%N)
    key=$CACHE/$(basename "${PAINTING%.*}")_${name}_${SIZE}_${MAX}_$PREC
    if [ -n "$CACHE" ] && [ -s "$key.csv" ]; then
        cp "$key.csv" "$T/lbfgs.csv"
        rm -f "$T/lbfgs.png"
        [ ! -s "$key.png" ] || cp "$key.png" "$T/lbfgs.png"
        secs=cached
    else
        "$NST" transfer --content "$photo" --style "$PAINTING" "${LOSS[@]}" --optimizer lbfgs --steps "$MAX" \
            -o "$T/lbfgs.png" --log "$T/lbfgs.csv"
        secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
        [ -z "$CACHE" ] || { cp "$T/lbfgs.csv" "$key.tmp" && mv "$key.tmp" "$key.csv"; cp "$T/lbfgs.png" "$key.png"; }
    fi
    net=$(awk -F, 'NR==2{print $6}' "$T/network.csv")
    row=("$name" "$net")
    ref=
    for s in ${STEPS//,/ }; do
        # the loss after s iterations (the last row if the run stopped early: converged)
        v=$(awk -F, -v s="$s" 'NR>1{last=$6; if ($1==s) {print $6; found=1; exit}} END{if (!found) print last}' "$T/lbfgs.csv")
        row+=("$v")
        [ "$s" = "$REF" ] && ref=$v
    done
    ratio=$(awk -v a="$net" -v b="$ref" 'BEGIN{printf "%.3f", a / b}')
    echo "$ratio" >> "$T/ratios"
    printf '%-22s' "${row[0]}"
    for v in "${row[@]:1}"; do printf '%-12.5g' "$v"; done
    printf '%10s %8s\n' "$ratio" "$secs"
    if [ -n "$OUT" ]; then
        cp "$T/network.png" "$OUT/${name}_network.png"
        [ -e "$T/lbfgs.png" ] && cp "$T/lbfgs.png" "$OUT/${name}_lbfgs$MAX.png"
    fi
    if [ -n "$CSV" ]; then
        [ -s "$CSV" ] || echo "model,painting,photo,size,network,$(sed 's/[0-9]\+/lbfgs&/g' <<<"$STEPS"),ratio_$REF" > "$CSV"
        (IFS=,; echo "$MODEL,$(basename "$PAINTING"),${row[*]:0:1},$SIZE,${row[*]:1},$ratio") >> "$CSV"
    fi
done
sort -g "$T/ratios" | awk -v ref="$REF" '{r[NR]=$1} END{
    med = NR % 2 ? r[(NR+1)/2] : (r[NR/2] + r[NR/2+1]) / 2
    printf "network / L-BFGS %d steps over %d photos: median %.3f, min %.3f, max %.3f: %s\n", ref, NR, med, r[1], r[NR],
        med <= 1 ? "meets the bar" : "below the bar"}'
