"""Predictive spread against the exact posterior's, for the shipped models whose prior has one on a user's data.

The models of an invariant GP prior (``invariant_default`` and ``bo``) have an exact Bayes posterior predictive for
any dataset in any units: the invariant prior's marginal, the shape hyperparameters integrated by NUTS
(:func:`priorfit.exact.invariant.invariant_marginal_predictive`; split R-hat and ESS beside each row). On the data
of tests/test_point_estimates.py (10 + 2 f(x) + N(0, 0.05^2) on [-1, 1]^d, smooth and kinked f, d = 1, 2,
n = 5, 20, 100; 100 queries on [-0.9, 0.9]^d) this compares, query by query, the variance ``predict_distribution``
gives (winsorised at TAIL_ALPHA, as every moment a PFN gives is) with the exact predictive's variance winsorised
the same way (:meth:`~priorfit.predictive.base.Predictive.winsorized_moments`), and gives the exact predictive's
unwinsorised variance over its winsorised one (how much the far tails weigh). A ratio above 1 is a PFN wider than
Bayes.

    python benchmarks/variance_vs_exact.py --models invariant_default --warmup 200 --samples 200
    python benchmarks/variance_vs_exact.py --models bo --warmup 200 --samples 200 --stem variance_vs_exact_bo
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from report_common import write_results

from priorfit.estimators import PFNRegressor
from priorfit.exact.invariant import invariant_marginal_predictive
from priorfit.models import load_model
from priorfit.predictive.bar import TAIL_ALPHA

FUNCTIONS = {
    "smooth": lambda Z: np.sin(3 * Z[:, 0]) + 0.5 * Z[:, -1] ** 2,
    "kinked": lambda Z: np.abs(Z[:, 0] - 0.3) + np.maximum(Z[:, -1], 0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="invariant_default,bo")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--stem", default="variance_vs_exact", help="results file: benchmarks/results/STEM.{txt,json}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for model in args.models.split(","):
        prior = load_model(model).prior
        rng = np.random.default_rng(0)
        for name, f in FUNCTIONS.items():
            for d in (1, 2):
                Xq = rng.uniform(-0.9, 0.9, size=(args.queries, d))
                for n in (5, 20, 100):
                    X = rng.uniform(-1, 1, size=(n, d))
                    y = 10.0 + 2.0 * f(X) + 0.05 * rng.standard_normal(n)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # a query outside a 5-point context's range
                        dist = PFNRegressor(model=model).fit(X, y).predict_distribution(Xq)
                    start = time.perf_counter()
                    exact = invariant_marginal_predictive(prior, X, y, Xq, num_warmup=args.warmup,
                                                          num_samples=args.samples, num_chains=args.chains)
                    seconds = time.perf_counter() - start
                    _, exact_var = exact.winsorized_moments(TAIL_ALPHA)
                    ratio = dist.variance / exact_var
                    diag = exact.diagnostics
                    rows.append(dict(model=model, function=name, d=d, n=n, ratio_median=float(np.median(ratio)),
                                     ratio_p05=float(np.quantile(ratio, 0.05)),
                                     ratio_p95=float(np.quantile(ratio, 0.95)),
                                     exact_tail_weight=float(np.median(exact.variance / exact_var)),
                                     max_r_hat=diag["max_r_hat"], min_ess=diag["min_ess"],
                                     divergences=diag["num_divergences"], nuts_seconds=seconds))
                    r = rows[-1]
                    print(f"{model} {name} d={d} n={n}: {r['ratio_median']:.2f} ({r['ratio_p05']:.2f}.."
                          f"{r['ratio_p95']:.2f})", flush=True)
    lines = [f"PFN variance / exact variance, both winsorised at {TAIL_ALPHA} (median, 5th..95th percentile over "
             f"{args.queries} queries); exact = invariant marginal by NUTS ({args.chains} chains x {args.samples} "
             f"draws after {args.warmup} warm-up)",
             f"{'model':<18} {'function':<7} {'d':>2} {'n':>4} {'median':>7} {'p05..p95':>12} "
             f"{'exact full/wins':>15} {'R-hat':>6} {'ESS':>6} {'div':>4}"]
    lines += [f"{r['model']:<18} {r['function']:<7} {r['d']:>2} {r['n']:>4} {r['ratio_median']:7.2f} "
              f"{r['ratio_p05']:5.2f}..{r['ratio_p95']:<5.2f} {r['exact_tail_weight']:15.2f} {r['max_r_hat']:6.3f} "
              f"{r['min_ess']:6.0f} {r['divergences']:4d}" for r in rows]
    all_ratios = np.array([r["ratio_median"] for r in rows])
    lines.append(f"median ratios over the {len(rows)} cells: {all_ratios.min():.2f} to {all_ratios.max():.2f}")
    write_results(args.stem, "\n".join(lines), dict(tail_alpha=TAIL_ALPHA, queries=args.queries,
                                                               warmup=args.warmup, samples=args.samples,
                                                               chains=args.chains, rows=rows))


if __name__ == "__main__":
    main()
