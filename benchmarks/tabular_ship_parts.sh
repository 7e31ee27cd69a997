#!/usr/bin/env bash
# Every part of a tabular candidate's shipped report, measured on its weights, then benchmarks/ship_classifier.py to
# ship it as `tabular` at default ensemble size K (docs/classification.md, "the ensemble's default"): the plain
# network's and the K-member ensemble's own-prior cells (32 datasets at n = 8, 32 and at d = 4, n = 128; 8 at d = 1,
# 2, n = 128, on a copy of the NUTS store that holds every reference), calibration, real data (at K: all three
# groups, which benchmarks/tabular_stage_parts.sh NAME K [W] has already written for the judged weights) and latency.
# usage: benchmarks/tabular_ship_parts.sh NAME K [evidence]   (the model in runs/classifier_tabular_NAME; name
#        evidence where the stage parts were run with it, for a model trained on the view: PFNClassifier serves such
#        a model with view_weighting="evidence", so that is the weighting of every part measured)
set -euo pipefail
name=${1:?usage: benchmarks/tabular_ship_parts.sh NAME K [evidence]}
k=${2:?usage: benchmarks/tabular_ship_parts.sh NAME K [evidence]}
w=${3:-evidence}
[[ $k =~ ^[2-9]$ ]] || { echo "K must be an ensemble size from 2 to 9, got '$k'" >&2; exit 2; }
[[ $w == evidence ]] || { echo "the third argument can only be evidence (what PFNClassifier serves), got '$w'" >&2; exit 2; }
model=runs/classifier_tabular_$name
[ -f "$model/model.safetensors" ] || { echo "no model at $model/model.safetensors" >&2; exit 2; }
R=benchmarks/results
ens="_ensemble$k"
[ -n "${3:-}" ] && ens="${ens}_$w"
for group in real real_heldout real_heldout2; do
    [ -f "$R/classification_${group}_tabular_$name$ens.json" ] || {
        echo "missing $R/classification_${group}_tabular_$name$ens.json: run benchmarks/tabular_stage_parts.sh $name $k ${3:-}" >&2; exit 2; }
done
store=$(mktemp --suffix=.json)
trap 'rm -f "$store"' EXIT
cp $R/classification_prior_exact.json "$store"
B="python benchmarks/classification.py --model $model --view-weighting $w"
stem=classification_%s_tabular_${name}_ship
for size in 1 "$k"; do
    s=""; [ "$size" -gt 1 ] && s="_ensemble$size"
    $B --part prior --ensemble "$size" --datasets 32 --contexts 8,32 --threads 1 --exact-store "$store" \
        --stem "$(printf $stem prior)${s}_32sets"
    $B --part prior --ensemble "$size" --datasets 8 --features 1,2 --contexts 128 --threads 1 --exact-store "$store" \
        --stem "$(printf $stem prior_n128_d12)$s"
    $B --part prior --ensemble "$size" --datasets 32 --features 4 --contexts 128 --threads 1 --exact-store "$store" \
        --stem "$(printf $stem prior_n128_d4)${s}_32sets"
    $B --part calibration --ensemble "$size" --threads 1 --stem "$(printf $stem calibration)$s"
    $B --part latency --ensemble "$size" --threads 2 --stem "$(printf $stem latency)$s"
done
$B --part real --ensemble 1 --threads 1 --baselines-from $R/classification_real.json --stem "$(printf $stem real)"
p() { echo "$R/$(printf $stem "$1")$2.json"; }
python benchmarks/ship_classifier.py "$model" --name tabular --default-ensemble-size "$k" \
    --prior "$(p prior _32sets)" --calibration "$(p calibration '')" --real "$(p real '')" --latency "$(p latency '')" \
    --prior-n128 "$(p prior_n128_d12 '')" "$(p prior_n128_d4 _32sets)" \
    --ensemble-prior "$(p prior "_ensemble${k}_32sets")" --ensemble-calibration "$(p calibration "_ensemble$k")" \
    --ensemble-latency "$(p latency "_ensemble$k")" \
    --ensemble-prior-n128 "$(p prior_n128_d12 "_ensemble$k")" "$(p prior_n128_d4 "_ensemble${k}_32sets")" \
    --ensemble-real $R/classification_real_tabular_$name$ens.json $R/classification_real_heldout_tabular_$name$ens.json \
        $R/classification_real_heldout2_tabular_$name$ens.json
