"""Start a time-boxed GPU training run in the background, sized from a measured throughput.

  python benchmarks/gpu_train.py configs/gp_default_gpu.json --init-from gp_default --minutes 22 --out runs/gpu

Used on a lent GPU machine whose commands may last only minutes: it times a short probe run of the config
(same batch, same model), sets ``training.steps`` so that the cosine schedule ends after ``--minutes`` at that
rate, writes the sized config to OUT/config.json and starts ``priorfit train`` on it in a new process session
(it outlives this script; its log is OUT/train.log). Later commands watch the log and copy OUT/model.safetensors
(written atomically at every checkpoint) off the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from priorfit.config import dumps, load_json
from priorfit.training import TrainJob, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock length of the run")
    parser.add_argument("--init-from", default=None)
    parser.add_argument("--probe-steps", type=int, default=60)
    args = parser.parse_args()
    job = load_json(args.config, expected=TrainJob)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # One step more than is run, so that the probe never reaches the final evaluation.
    probe = dataclasses.replace(job.training, steps=args.probe_steps + 11, eval_every=10**9,
                                checkpoint_every=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        train(job.prior, job.model, probe, tmp, resume=False, progress=False, stop_after=10,
              init_from=args.init_from)  # warm-up: CUDA context, allocator, kernels
        start = time.perf_counter()
        train(job.prior, job.model, probe, tmp, resume=True, progress=False, stop_after=args.probe_steps + 10)
        steps_per_s = args.probe_steps / (time.perf_counter() - start)
    # Evaluation and checkpoints cost a few percent: keep a margin.
    steps = int(0.92 * steps_per_s * args.minutes * 60)
    sized = dataclasses.replace(job, training=dataclasses.replace(job.training, steps=steps))
    (out / "config.json").write_text(dumps(sized))
    print(f"probe: {steps_per_s:.2f} steps/s = {steps_per_s * job.training.batch_size:.0f} datasets/s; "
          f"steps set to {steps}", flush=True)
    command = [sys.executable, "-m", "priorfit.cli", "train", str(out / "config.json"), "--out", str(out),
               "--quiet"]
    if args.init_from:
        command += ["--init-from", args.init_from]
    with open(out / "train.log", "ab") as log:
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    print("started:", " ".join(command), flush=True)


if __name__ == "__main__":
    main()
