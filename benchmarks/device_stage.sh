#!/usr/bin/env bash
# One training stage on a lent GPU machine, in one `device` call that ends before its limit (see docs/training.md,
# "Training on a GPU"). Run from the repository root there:
#
#   bash benchmarks/device_stage.sh CONFIG SECONDS INIT [STATE]
#
# trains CONFIG for at most SECONDS of wall-clock time in runs/device_stage (git-ignored), warm-started from INIT (a
# checkpoint or shipped model's name) or, when STATE is given, resumed from that train_state.pt (or from its parts
# STATE.aa, STATE.ab, ... as this script writes them). A state already in runs/device_stage (a machine still warm
# from an earlier call) is resumed before either. The run checkpoints every `checkpoint_every` steps, so a stop at
# the time limit loses at most that many steps. Then it copies to $OUT the log and the training state split in
# 15 MB parts (state/train_state.pt.aa, ...: the device returns at most 8 files of 16 MiB, 64 MiB in all, so the
# weights, which the state holds, are not copied apart; it refuses a state of more than 7 parts). Back here: cat
# FILES_AT/state/train_state.pt.* > checkpoints/MODEL.pt, commit it, and copy it to a run folder as train_state.pt:
# `priorfit train CONFIG --out DIR` writes its weights there (and goes on training if its schedule has steps left;
# --stop-after STEP stops it). Exit status: training's, with 124 (stopped at the time limit) counted as success.
set -u
if [ $# -lt 3 ]; then echo "usage: $0 CONFIG SECONDS INIT [STATE]" >&2; exit 2; fi
config=$1 seconds=$2 init=$3 state=${4:-}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
W=runs/device_stage
OUT=${OUT:-$W/out}
mkdir -p "$W" "$OUT/state"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: training on the CPU"
if [ -f "$W/train_state.pt" ]; then
  echo "resuming the state already in $W"
elif [ -n "$state" ]; then
  parts=("$state".??)
  if [ -f "$state" ]; then
    cp "$state" "$W/train_state.pt.tmp"
  elif [ -f "${parts[0]}" ]; then
    cat "${parts[@]}" > "$W/train_state.pt.tmp"
  else
    echo "no state $state, nor parts $state.aa ..." >&2; exit 2
  fi
  mv "$W/train_state.pt.tmp" "$W/train_state.pt"
fi
resume=()
[ -f "$W/train_state.pt" ] || resume=(--init-from "$init")
timeout --signal=TERM --kill-after=30 "$seconds" python3 -m priorfit.cli train "$config" --out "$W" --quiet \
  "${resume[@]}" > "$OUT/train.log" 2>&1
status=$?
echo "training exited with status $status (124: stopped at the time limit, resumable)"
tail -n 20 "$OUT/train.log"
if [ ! -f "$W/train_state.pt" ]; then echo "no training state was written" >&2; exit 1; fi
rm -f "$OUT"/state/train_state.pt.*
split -b 15M "$W/train_state.pt" "$OUT/state/train_state.pt."
n_parts=$(ls "$OUT"/state/train_state.pt.* | wc -l)
if [ "$n_parts" -gt 7 ]; then echo "the state has $n_parts parts: more than the device returns" >&2; exit 1; fi
python3 - "$W/train_state.pt" <<'PY'
import json, sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
history = json.loads(state["history"]) if isinstance(state["history"], str) else state["history"]
print("step", state["step"], "seconds", round(state["seconds"]))
for entry in history[-4:]:
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in entry.items() if k == "step" or k.startswith("gap")})
PY
ls -la "$OUT" "$OUT/state"
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then exit "$status"; fi
