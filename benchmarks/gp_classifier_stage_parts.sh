#!/usr/bin/env bash
# Every PFN-only part a GP-classifier stage is judged on (docs/classification.md, "the third stage's rule"), on the
# stored NUTS references, the stored real-data splits and baselines, and the calibration part's seeded datasets:
# the nine prior cells at the shipped classifier's counts (32 datasets at n = 8, 32 and at d = 4, n = 128; 8 at
# d = 1, 2, n = 128), the nine calibration cells, and the 19 tuned real-data cells. Latency is left out: it is
# judged as a same-run pair with the shipped model (--part latency for both, back to back).
# usage: benchmarks/gp_classifier_stage_parts.sh MODEL_DIR NAME   (results files end in _NAME)
set -euo pipefail
model=${1:?usage: benchmarks/gp_classifier_stage_parts.sh MODEL_DIR NAME}
name=${2:?usage: benchmarks/gp_classifier_stage_parts.sh MODEL_DIR NAME}
[ -f "$model/model.safetensors" ] || { echo "no model at $model/model.safetensors" >&2; exit 2; }
[[ $name =~ ^[A-Za-z0-9_]+$ ]] || { echo "NAME must be letters, digits and _, got '$name'" >&2; exit 2; }
# a copy of the committed store, so that scoring never writes into it (every reference needed is already there)
store=$(mktemp --suffix=.json)
trap 'rm -f "$store"' EXIT
cp benchmarks/results/classification_prior_exact.json "$store"
bench="python benchmarks/classification.py"
$bench --part calibration --model "$model" --threads 1 --stem "classification_calibration_gp_$name"
$bench --part prior --model "$model" --datasets 32 --contexts 8,32 --threads 1 --exact-store "$store" \
    --stem "classification_prior_gp_${name}_32sets"
$bench --part prior --model "$model" --datasets 32 --features 4 --contexts 128 --threads 1 --exact-store "$store" \
    --stem "classification_prior_gp_n128_d4_${name}_32sets"
$bench --part prior --model "$model" --datasets 8 --features 1,2 --contexts 128 --threads 1 --exact-store "$store" \
    --stem "classification_prior_gp_n128_d12_$name"
$bench --part real --model "$model" --threads 1 --baselines-from benchmarks/results/classification_real_gp.json \
    --stem "classification_real_gp_$name"
if ! cmp -s "$store" benchmarks/results/classification_prior_exact.json; then
    echo "warning: the prior parts computed references the committed store lacked (they are not kept)" >&2
fi
