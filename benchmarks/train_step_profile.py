"""Where a training step's time goes: prior sampling, the exact conditional (Rao-Blackwellised targets), the
forward pass, the loss, the backward pass and the optimiser, per context size, for a training job's prior and
model on this machine's threads.

    python benchmarks/train_step_profile.py --config configs/invariant_default.json --threads 1

Each part is timed on its own (``time.perf_counter`` around it, nothing else running in the process), over
``--steps`` steps per context size after two warm-up steps; the table gives milliseconds per step and each part's
share. Writes benchmarks/results/train_step_profile.json and .txt.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_common import ROOT, write_results  # noqa: E402

from priorfit.config import load_json  # noqa: E402
from priorfit.model.loss import pfn_expected_nll, pfn_nll  # noqa: E402
from priorfit.model.transformer import PFNTransformer  # noqa: E402
from priorfit.priors.conditional import query_conditional  # noqa: E402
from priorfit.training import TrainJob, make_bar_distribution  # noqa: E402

PARTS = ("sample", "conditional", "forward", "loss (RB)", "loss (sampled)", "backward", "optimiser")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "invariant_default.json"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--contexts", default="8,32,128")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    job = load_json(args.config, TrainJob)
    config, prior = job.training, job.prior
    model = PFNTransformer(job.model)
    bar = make_bar_distribution(prior, job.model.n_bars, config.n_points, 500, 0,
                                standardize_context=config.context_range if job.model.invariant else None,
                                target_affine=model.target_affine if job.model.invariant else None,
                                tail_bars=config.tail_bars, tail_reach=config.tail_reach)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for n_ctx in (int(c) for c in args.contexts.split(",")):
        times: dict[str, list[float]] = {part: [] for part in PARTS}
        for step in range(args.steps + 2):
            clock = {}
            t = time.perf_counter()
            batch = prior.sample(config.batch_size, n_ctx + config.n_queries, generator, n_context=n_ctx,
                                 n_features=prior.max_features)
            clock["sample"] = time.perf_counter() - t
            t = time.perf_counter()
            target = query_conditional(prior, batch, n_ctx)
            clock["conditional"] = time.perf_counter() - t
            x, y = batch.x.float(), batch.y.float()
            t = time.perf_counter()
            logits = model(x[:, :n_ctx], y[:, :n_ctx], x[:, n_ctx:])
            clock["forward"] = time.perf_counter() - t
            affine = model.target_affine(y[:, :n_ctx])
            t = time.perf_counter()
            pfn_nll(bar, logits, *affine, y[:, n_ctx:]).mean()  # with autograd on, as the RB loss below
            clock["loss (sampled)"] = time.perf_counter() - t
            t = time.perf_counter()
            loss = pfn_expected_nll(bar, logits, *affine, target.mean, target.std).mean()
            clock["loss (RB)"] = time.perf_counter() - t
            t = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clock["backward"] = time.perf_counter() - t
            t = time.perf_counter()
            optimizer.step()
            clock["optimiser"] = time.perf_counter() - t
            if step >= 2:
                for part, seconds in clock.items():
                    times[part].append(seconds)
        ms = {part: 1000 * statistics.median(v) for part, v in times.items()}
        rows.append(dict(n_context=n_ctx, ms=ms))
    total = lambda r: sum(v for k, v in r["ms"].items() if k != "loss (sampled)")  # noqa: E731 (an RB step)
    lines = [f"{Path(args.config).name}: batch {config.batch_size}, {config.n_queries} queries, d = "
             f"{prior.max_features}, {args.threads} thread(s); median ms per step over {args.steps} steps",
             f"{'n':>4} " + " ".join(f"{p:>15}" for p in PARTS) + f" {'RB step':>8}"]
    for r in rows:
        lines.append(f"{r['n_context']:>4} " + " ".join(f"{r['ms'][p]:8.1f} ({100 * r['ms'][p] / total(r):3.0f}%)"
                                                   for p in PARTS) + f" {total(r):8.1f}")
    write_results("train_step_profile", "\n".join(lines), dict(config=args.config, threads=args.threads,
                                                               steps=args.steps, rows=rows))


if __name__ == "__main__":
    main()
