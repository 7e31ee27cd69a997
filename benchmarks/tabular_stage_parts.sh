#!/usr/bin/env bash
# The three PFN-only parts every tabular stage is judged on (docs/classification.md), on the stored splits,
# baselines and NUTS references: tuned real sets, both held-out groups, and the GP-classification prior.
# usage: benchmarks/tabular_stage_parts.sh NAME [K [W]]   (the model in runs/classifier_tabular_NAME; K: its
#        ensemble_size, 1 by default; the results files of K > 1 end in _ensembleK; W, for a model trained on the
#        principal-axes view: PFNClassifier's view_weighting, evidence or equal, the files then ending in _W too)
set -euo pipefail
name=${1:?usage: benchmarks/tabular_stage_parts.sh NAME [K [W]] (the model in runs/classifier_tabular_NAME)}
k=${2:-1}
w=${3:-evidence}
[[ $w == evidence || $w == equal ]] || { echo "W must be evidence or equal (view_weighting), got '$w'" >&2; exit 2; }
[[ $k =~ ^[1-9][0-9]*$ ]] || { echo "K must be a positive integer (the ensemble size), got '$k'" >&2; exit 2; }
model=runs/classifier_tabular_$name
[ -f "$model/model.safetensors" ] || { echo "no model at $model/model.safetensors" >&2; exit 2; }
suffix=""
[ "$k" -gt 1 ] && suffix="_ensemble$k"
[ -n "${3:-}" ] && suffix="${suffix}_$w"  # a weighting named is in the files' names, so no earlier file is overwritten
bench="python benchmarks/classification.py --view-weighting $w"
$bench --part real --model "$model" --ensemble "$k" --threads 1 \
    --baselines-from benchmarks/results/classification_real.json --stem "classification_real_tabular_$name$suffix"
$bench --part real --group held-out --model "$model" --ensemble "$k" --threads 1 \
    --baselines-from benchmarks/results/classification_real_heldout_tabular.json \
    --stem "classification_real_heldout_tabular_$name$suffix"
$bench --part real --group held-out-2 --model "$model" --ensemble "$k" --threads 1 \
    --baselines-from benchmarks/results/classification_real_heldout2_tabular_ensemble2.json \
    --stem "classification_real_heldout2_tabular_$name$suffix"
$bench --part prior --model "$model" --ensemble "$k" --datasets 8 --contexts 8,32 --threads 1 \
    --stem "classification_prior_tabular_$name$suffix"
