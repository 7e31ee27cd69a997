"""NUTS seconds per dataset, for checking that a change to how the NUTS model is built does not slow it down.

  python benchmarks/bench_nuts.py --label before     # on the old code
  python benchmarks/bench_nuts.py --label after      # on the new code, same machine, same session

For each case (a prior, d, n) it draws --datasets datasets from the prior (fixed seed), runs
``priorfit.exact.marginal_predictive`` once to compile the chain (that time is reported apart), then times it on
each dataset at EvaluateConfig's NUTS settings (2 chains x (200 warm-up + 200 draws)) on one torch thread, and
prints the median seconds per dataset and the mean leapfrog steps per draw (so a slowdown can be told from a
chain that takes more steps). Appends the run to benchmarks/results/nuts_speed.json under its label.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

from priorfit.exact.marginal import marginal_predictive
from priorfit.priors import RBF, GPPrior, LogNormal, Matern, Normal, Periodic, Scale

ROOT = Path(__file__).resolve().parents[1]

GP_DEFAULT = GPPrior(
    kernel=Scale(Matern(nu=2.5, lengthscale=LogNormal(-1.0, 0.75))), noise_std=LogNormal(-2.0, 1.0),
    mean=Normal(0.0, 0.5), max_features=4,
)
COMPOSITE = GPPrior(kernel=Scale(RBF()) + Periodic(), noise_std=LogNormal(-2.0, 1.0), max_features=2)
CASES = (("gp_default", GP_DEFAULT, 1, 16), ("gp_default", GP_DEFAULT, 2, 64), ("rbf+periodic", COMPOSITE, 1, 32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="name of this run in the results file (e.g. before, after)")
    parser.add_argument("--datasets", type=int, default=5, help="timed datasets per case (default 5)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/nuts_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, prior, d, n in CASES:
        batch = prior.sample(args.datasets + 1, n + 16, torch.Generator().manual_seed(0), n_features=d)
        times, steps = [], []
        compile_s = None
        for i in range(args.datasets + 1):
            x, y = batch.x[i], batch.y[i]
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mix = marginal_predictive(prior, x[:n], y[:n], x[n:], num_warmup=200, num_samples=200,
                                          num_chains=2, seed=i)
            seconds = time.perf_counter() - start
            if i == 0:
                compile_s = seconds
            else:
                times.append(seconds)
                steps.append(mix.diagnostics["mean_leapfrog_steps"])
        row = dict(prior=name, d=d, n=n, seconds_median=statistics.median(times), seconds=times,
                   mean_leapfrog_steps=statistics.mean(steps), first_call_seconds=compile_s)
        rows.append(row)
        print(f"{name:>13} d={d} n={n:>3}: {row['seconds_median']:.2f} s per dataset (median of {len(times)}), "
              f"{row['mean_leapfrog_steps']:.1f} leapfrog steps per draw; first call {compile_s:.1f} s")
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[args.label] = dict(cpu=platform.processor() or platform.machine(), rows=rows)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
