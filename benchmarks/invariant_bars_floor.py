"""How much the bar distribution alone costs an invariant model, per context size: the bars' floor.

  python benchmarks/invariant_bars_floor.py --datasets 256

For the units-free default prior (configs/invariant_default.json) it places the bars as training does (equal-mass
borders of standardised query targets, priorfit.training.make_bar_distribution with the invariant model's
target_affine), then for each context size n draws datasets, takes the exact invariant predictive with the true
shape hyperparameters (a Student-t with n - 1 degrees of freedom: a Cauchy at n = 2), moves it onto the bars
(BarDistribution.project: each bar's exact mass; the tails beyond the outer borders half-normal, as the bars have
them) and reports its NLL minus the Student-t's own: the least excess any model with these bars can have, which
no training removes. Writes benchmarks/results/invariant_bars_floor.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from priorfit.atomic import atomic_write_json
from priorfit.config import load_json
from priorfit.exact.reference import Task
from priorfit.model.loss import pfn_nll
from priorfit.model.transformer import PFNTransformer
from priorfit.seeding import derive_seed
from priorfit.training import TrainJob, make_bar_distribution

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=256, help="datasets per context size")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--context", default="2,3,4,8,16,32,128")
    parser.add_argument("--tail-bars", type=int, default=None, help="override the job's tail_bars (0: none)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "invariant_bars_floor.json"))
    args = parser.parse_args()
    job = load_json(ROOT / "configs" / "invariant_default.json", TrainJob)
    model = PFNTransformer(job.model)
    t = job.training
    bar = make_bar_distribution(job.prior, job.model.n_bars, t.n_points, t.border_datasets, t.seed,
                                standardize_context=t.context_range, target_affine=model.target_affine,
                                tail_bars=args.tail_bars if args.tail_bars is not None else t.tail_bars,
                                tail_reach=t.tail_reach)
    oracle = next(r for r in job.prior.references() if r.name == "oracle")
    inner = bar.borders[1:-1].to(torch.float64)
    print(f"bars: {job.model.n_bars}, outer borders {float(bar.borders[1]):.1f} and {float(bar.borders[-2]):.1f}")
    rows = []
    for n in (int(v) for v in args.context.split(",")):
        batch = job.prior.sample(args.datasets, n + args.queries, torch.Generator().manual_seed(derive_seed(0, n)),
                                 n_context=n)
        excess, beyond = [], 0
        for i in range(args.datasets):
            x, y = batch.x[i], batch.y[i]
            pred = oracle.predict(Task(x[:n], y[:n], x[n:], batch.params.map(lambda v: v[i:i + 1])), 0).predictive
            loc, scale = model.target_affine(y[None, :n].double())
            at = loc + scale * inner[:, None].expand(-1, len(pred))  # the borders in the data's units
            logits = bar.project(pred._cdf(at).T, pred._sf(at).T)
            nll = pfn_nll(bar, logits[None], loc, scale, y[None, n:]).mean()
            excess.append(float(nll) + float(pred._log_prob(y[n:]).mean()))
            z = (y[n:] - loc) / scale
            beyond += int(((z < bar.borders[1]) | (z > bar.borders[-2])).sum())
        row = dict(n_context=n, floor=sum(excess) / len(excess), floor_max=max(excess),
                   share_beyond_outer_borders=beyond / (args.datasets * args.queries))
        rows.append(row)
        print(f"n = {n:>3}: bars' floor {row['floor']:+.4f} nats per point (worst dataset {row['floor_max']:+.3f}), "
              f"{100 * row['share_beyond_outer_borders']:.2f}% of queries beyond the outer borders", flush=True)
    runs = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    runs = runs if "runs" in runs else {"runs": []}
    runs["runs"] = [r for r in runs["runs"] if r["command"] != "python " + " ".join(shlex.quote(a) for a in sys.argv)]
    runs["runs"].append(dict(command="python " + " ".join(shlex.quote(a) for a in sys.argv), tail_bars=int(
        args.tail_bars if args.tail_bars is not None else t.tail_bars),
                             outer_borders=[float(bar.borders[1]), float(bar.borders[-2])], rows=rows))
    atomic_write_json(args.out, runs)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
