#!/usr/bin/env bash
# The GPU session that trained gp_default v3 and computed the stored exact references, on a lent GPU machine
# (16 CPU cores + one H100; see docs/training.md). Each step is one short command there, run from the repository
# root; the machine keeps the background processes between commands while it stays warm:
#
#   bash benchmarks/device_run.sh start        # check the GPU; start, in new process sessions, 12 one-thread
#                                              # `priorfit evaluate` runs that compute the NUTS and ML-II
#                                              # references, and stage A of the training (configs/gp_default_gpu.json
#                                              # warm-started from $PRIORFIT_INIT, default gp_default: for v3 that
#                                              # was the shipped v2)
#   bash benchmarks/device_run.sh stage-b      # once stage A has ended: stage B (configs/gp_default_gpu_b.json,
#                                              # warm-started from stage A); then stage-c likewise
#   bash benchmarks/device_run.sh snapshot [SLEEP]  # copy the latest checkpoint, its log and the references to $OUT
#   bash benchmarks/device_run.sh finish [WAIT]     # wait for the training to end, stop the reference runs, copy all
#
# Working folder: $PRIORFIT_RUN_DIR, default runs/device under the repository root (git-ignored); $OUT defaults to
# its out/ subfolder.
# Process patterns are built at run time (pattern): a literal one would also match this script's own command line.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu XLA_PYTHON_CLIENT_PREALLOCATE=false
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${PRIORFIT_RUN_DIR:-$ROOT/runs/device}
OUT=${OUT:-$W/out}

refs() {  # one `priorfit evaluate` of the shipped model (the references do not depend on it) in a new session
  local name=$1; shift
  mkdir -p "$W/refs/$name"
  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" OMP_NUM_THREADS=1 \
    setsid bash -c "$*" > "$W/refs/$name.log" 2>&1 < /dev/null &
}

eval_cmd() {  # OUT_NAME D CONTEXT MARGINAL ML2
  echo "python3 -m priorfit.cli evaluate gp_default --out $W/refs/$1 --features $2 --context $3 " \
       "--marginal-datasets $4 --ml2-datasets $5 --no-plots --quiet --threads 1"
}

merge_refs() {
  python3 - "$W" <<'PY'
import glob, sys
from priorfit.exact.store import ReferenceStore
paths = sorted(glob.glob(f"{sys.argv[1]}/refs/*/references.json"))
stores = [ReferenceStore.load(p) for p in paths]
if stores:
    merged = stores[0]
    for s in stores[1:]:
        merged.update(s)
    merged.save(f"{sys.argv[1]}/references.json")
    counts = {m: {k: len(v) for k, v in cells.items()} for m, cells in merged.records.items()}
    print(f"references: {len(merged)} records from {len(paths)} runs:", counts)
PY
}

pattern() { printf 'priorfit.cli %s' "$1"; }

resolved() {  # a config with its "extends" chain resolved, so that the copy in the run folder stands alone
  python3 -c 'import json, sys; from priorfit.config import read_config_json; print(json.dumps(read_config_json(sys.argv[1]), indent=2))' "$1"
}

latest() { for d in train_c train_b train; do [ -d "$W/$d" ] && { echo "$W/$d"; return; }; done; }

snapshot() {
  mkdir -p "$OUT"
  tail -n 4 "$(latest)/train.log"
  merge_refs
  cp "$(latest)/model.safetensors" "$(latest)/train.log" "$(latest)/config.json" "$OUT/" 2>/dev/null
  [ -f "$W/references.json" ] && cp "$W/references.json" "$OUT/"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  uptime
}

case "${1:-}" in
start)
  mkdir -p "$W/refs" "$W/train"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, jax, numpyro; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, 'numpyro', numpyro.__version__)"
  python3 -m pytest -q -p no:cacheprovider tests/priors/test_gp.py -k device 2>&1 | tail -n 2
  for d in 1 2 3 4; do
    refs "d${d}_n128" "$(eval_cmd d${d}_n128 $d 128 32 0)"
    refs "d${d}_n64" "$(eval_cmd d${d}_n64 $d 64 32 0)"
    refs "d${d}_small" "$(eval_cmd d${d}_small $d 2,4,8,16,32 32 64); $(eval_cmd d${d}_ml2 $d 64,128 0 64)"
  done
  mkdir -p "$W/train"
  resolved configs/gp_default_gpu.json > "$W/train/config.json"
  setsid python3 -m priorfit.cli train "$W/train/config.json" --out "$W/train" --quiet --init-from "${PRIORFIT_INIT:-gp_default}" \
    >> "$W/train/train.log" 2>&1 < /dev/null &
  sleep 60
  ls -la "$W/train"
  ;;
stage-b|stage-c)  # stage B from stage A; stage C (configs/gp_default_gpu_c.json) from stage B
  if pgrep -f "$(pattern train)" > /dev/null; then echo "the previous stage is still running" >&2; exit 1; fi
  if [ "$1" = stage-b ]; then stage=train_b; source="$W/train"; else stage=train_c; source="$W/train_b"; fi
  mkdir -p "$W/$stage"
  resolved "configs/gp_default_gpu_${stage#train_}.json" > "$W/$stage/config.json"
  setsid python3 -m priorfit.cli train "$W/$stage/config.json" --out "$W/$stage" --quiet \
    --init-from "$source/model.safetensors" >> "$W/$stage/train.log" 2>&1 < /dev/null &
  sleep 30
  ls -la "$W/$stage"
  ;;
snapshot)
  sleep "${2:-0}"
  snapshot
  ;;
finish)
  for _ in $(seq 1 "${2:-540}"); do
    pgrep -f "$(pattern train)" > /dev/null || break
    sleep 1
  done
  pkill -f "$(pattern evaluate)"
  sleep 3
  snapshot
  mkdir -p "$OUT/state"
  split -b 15M "$(latest)/train_state.pt" "$OUT/state/train_state.pt."
  tar czf "$OUT/reference_logs.tgz" -C "$W" refs --exclude='*.json'
  ls -la "$OUT" "$OUT/state"
  ;;
*)
  echo "usage: $0 start | stage-b | stage-c | snapshot [SLEEP] | finish [WAIT]" >&2
  exit 2
  ;;
esac
