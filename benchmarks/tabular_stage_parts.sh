#!/usr/bin/env bash
# The three PFN-only parts every tabular stage is judged on (docs/classification.md), on the stored splits,
# baselines and NUTS references: tuned real sets, held-out sets, and the GP-classification prior.
# usage: benchmarks/tabular_stage_parts.sh NAME   (the model in runs/classifier_tabular_NAME)
set -euo pipefail
name=${1:?usage: benchmarks/tabular_stage_parts.sh NAME (the model in runs/classifier_tabular_NAME)}
model=runs/classifier_tabular_$name
[ -f "$model/model.safetensors" ] || { echo "no model at $model/model.safetensors" >&2; exit 2; }
bench="python benchmarks/classification.py"
$bench --part real --model "$model" --threads 1 \
    --baselines-from benchmarks/results/classification_real.json --stem "classification_real_tabular_$name"
$bench --part real --group held-out --model "$model" --threads 1 \
    --baselines-from benchmarks/results/classification_real_heldout_tabular.json \
    --stem "classification_real_heldout_tabular_$name"
$bench --part prior --model "$model" --datasets 8 --contexts 8,32 --threads 1 \
    --stem "classification_prior_tabular_$name"
