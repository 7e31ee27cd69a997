"""How much predictive mass a model keeps far out in its tail bars, and what it does to the moments.

For each model, d = 2, context sizes 4, 16, 64: 32 datasets from the model's own prior (fixed seed), 64 queries
each, through PFNRegressor. Per query: the mass beyond 30 context standard deviations from the context mean, and
the ratio of the predictive standard deviation to the width of the central 90% interval divided by 3.29 (1 for a
normal; far-tail mass inflates it). Prints the median and the maximum over queries, and writes
``benchmarks/results/tail_mass.json`` and ``.txt``.

    python benchmarks/tail_mass.py invariant_default runs/bo/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.estimators import PFNRegressor
from priorfit.exceptions import OutOfDomainWarning
from priorfit.models import load_model

RESULTS = Path(__file__).parent / "results"
FAR = 30.0


def measure(model: str, n: int, datasets: int = 32, queries: int = 64) -> dict:
    prior = load_model(model).prior
    batch = prior.sample(datasets, n + queries, torch.Generator().manual_seed(123), n_features=2, n_context=n)
    far, ratio = [], []
    for i in range(datasets):
        X, y = batch.x[i].numpy(), batch.y[i].numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            pred = PFNRegressor(model=model).fit(X[:n], y[:n]).predict_distribution(X[n:])
        loc, sd = y[:n].mean(), y[:n].std()
        m = len(pred)
        far.append(pred.cdf(np.full(m, loc - FAR * sd)) + pred.sf(np.full(m, loc + FAR * sd)))
        q = pred.quantile([0.05, 0.95])
        ratio.append(pred.stddev / ((q[:, 1] - q[:, 0]) / 3.29))
    far, ratio = np.concatenate(far), np.concatenate(ratio)
    return dict(model=model, n=n, far_mass_median=float(np.median(far)), far_mass_max=float(far.max()),
                sd_ratio_median=float(np.median(ratio)), sd_ratio_max=float(ratio.max()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", default=str(RESULTS / "tail_mass"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [measure(m, n) for m in args.models for n in (4, 16, 64)]
    lines = [f"mass beyond {FAR:g} context sd's, and predictive sd / (90% interval width / 3.29), over queries", ""]
    lines += [f"{r['model']:<40} n={r['n']:<3} far mass median {r['far_mass_median']:.1e} max "
              f"{r['far_mass_max']:.1e}   sd ratio median {r['sd_ratio_median']:.2f} max {r['sd_ratio_max']:.1f}"
              for r in rows]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), dict(command="python benchmarks/tail_mass.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), far=FAR, rows=rows))
    atomic_write_text(out.with_suffix(".txt"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
