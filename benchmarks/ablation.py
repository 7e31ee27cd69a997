"""Which training choices matter for the shipped GP model: short runs that each change one thing.

  python benchmarks/ablation.py --steps 400 --threads 1

Every variant trains from scratch on the gp_default prior (configs/gp_default.json) for the same number of
datasets (--steps x 32; a variant with another batch size takes proportionally fewer steps), then its NLL gap to the
oracle GP is measured on 128 datasets per cell from the prior (d in {1, 4}, n in {4, 32, 128}; the same datasets
for every variant). Reports the gaps and the training seconds; writes benchmarks/results/ablation.{json,txt}.
Runs are short, so this ranks choices by how fast they learn, not by where they would end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from priorfit.checkpoint import load_checkpoint
from priorfit.config import load_json
from priorfit.evaluate import EvaluateConfig, evaluate
from priorfit.training import TrainJob, train

ROOT = Path(__file__).resolve().parents[1]
CELLS = [(1, 4), (1, 32), (1, 128), (4, 4), (4, 32), (4, 128)]


def variants(job: TrainJob) -> dict[str, TrainJob]:
    m, t = job.model, job.training
    r = dataclasses.replace
    return {
        "baseline (gp_default: 256x4, 1000 bars, 16 freqs, lr 1e-3, batch 32)": job,
        "100 bars": r(job, model=r(m, n_bars=100)),
        "no Fourier features": r(job, model=r(m, n_frequencies=0)),
        "deep and narrow (128x8)": r(job, model=r(m, d_model=128, n_layers=8, d_ff=256)),
        "lr 3e-3": r(job, training=r(t, lr=3e-3)),
        "batch 64 (half the steps)": r(job, training=r(t, batch_size=64)),
        "context curriculum (max context ramps up over the first half)": r(job, training=r(t, context_curriculum=0.5)),
        "per-dataset standardisation of the targets": r(job, model=r(m, standardize_targets=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="steps at batch 32 (default 400)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=None, help="run only the variants whose name contains this text")
    parser.add_argument("--seed", type=int, default=0, help="training seed (other than 0: the run is named so)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    job = load_json(ROOT / "configs" / "gp_default.json", expected=TrainJob)
    results_path = ROOT / "benchmarks" / "results" / "ablation.json"
    done = json.loads(results_path.read_text())["runs"] if results_path.exists() else {}
    eval_config = EvaluateConfig(n_context=(4, 32, 128), n_features=(1, 4), n_datasets=128, n_queries=64,
                                 marginal_datasets=0, ml2_datasets=0, seed=1)
    for name, variant in variants(job).items():
        if args.only and args.only not in name:
            continue
        steps = args.steps * 32 // variant.training.batch_size
        config = dataclasses.replace(variant.training, steps=steps, num_threads=args.threads, seed=args.seed,
                                     eval_every=steps, checkpoint_every=steps, border_datasets=2000)
        if args.seed:
            name = f"{name} (seed {args.seed})"
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            result = train(variant.prior, variant.model, config, out, resume=False, progress=False)
            seconds = time.perf_counter() - t
            cells = evaluate(load_checkpoint(result.checkpoint), eval_config, progress=False, examples=False).cells
        gaps = {f"d{c.n_features} n{c.n_context}": round(c.gap("oracle"), 4) for c in cells}
        if results_path.exists():  # keep what runs beside this one wrote meanwhile
            done = {**json.loads(results_path.read_text())["runs"], **done}
        done[name] = dict(steps=steps, batch_size=config.batch_size, threads=args.threads, seed=args.seed,
                          train_seconds=round(seconds, 1),
                          gaps_to_oracle=gaps, mean_gap=round(sum(gaps.values()) / len(gaps), 4))
        print(f"{name}: {done[name]}", flush=True)
        report = dict(
            protocol=(f"each variant trained from scratch for {args.steps * 32} datasets on {args.threads} thread(s); "
                      "NLL gap to the oracle GP (nats per query point) on 128 datasets per cell, seed 1"),
            command="python " + " ".join(shlex.quote(a) for a in sys.argv),
            runs=done,
        )
        results_path.write_text(json.dumps(report, indent=2) + "\n")
        results_path.with_suffix(".txt").write_text(format_table(done) + "\n")
    print(format_table(done))


def format_table(runs: dict) -> str:
    cols = [f"d{d} n{n}" for d, n in CELLS]
    head = f"{'variant':<72} {'seconds':>7} " + " ".join(f"{c:>9}" for c in cols) + f" {'mean':>6}"
    lines = [head, "-" * len(head)]
    for name, r in runs.items():
        lines.append(f"{name:<72} {r['train_seconds']:7.0f} "
                     + " ".join(f"{r['gaps_to_oracle'][c]:+9.3f}" for c in cols) + f" {r['mean_gap']:+6.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
