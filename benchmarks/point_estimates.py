"""Point estimates and spreads of every shipped model on smooth and kinked functions, d = 1, 2, n = 5, 20, 100.

For each cell: R^2 against the clean function of the predictive median (what ``predict()`` returns), of the
winsorised mean (``point_estimate="mean"``; the predictive clamped to its 0.1% and 99.9% quantiles) and of the
raw mean (every bar, far tail bars included); and the ratio of the predictive standard deviation to the spread its
own central 90% interval implies (width / 3.29: 1 for a normal, 1.09 for a Student-t with 4 degrees of freedom),
winsorised (smallest, largest and 90th percentile over 200 queries) and raw (largest). The data are the tests' (tests/test_point_estimates.py): 10 +
2 f(x) + N(0, 0.05^2) noise on [-1, 1]^d, queries on [-0.9, 0.9]^d. Then, on the kinked 2-d surface of the bnn model's test (the earlier version of this
benchmark), the same three point estimates and their largest errors.

    python benchmarks/point_estimates.py
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from report_common import write_results

from priorfit.estimators import PFNRegressor
from priorfit.models import load_model, shipped_models

FUNCTIONS = {
    "smooth": lambda Z: np.sin(3 * Z[:, 0]) + 0.5 * Z[:, -1] ** 2,
    "kinked": lambda Z: np.abs(Z[:, 0] - 0.3) + np.maximum(Z[:, -1], 0.0),
}


def kinked_surface(z: np.ndarray) -> np.ndarray:
    return 100 + 3 * (np.maximum(z[:, 0] - 4, 0) - 0.5 * np.maximum(6 - z[:, 1], 0))


def r2(pred: np.ndarray, truth: np.ndarray) -> float:
    return 1.0 - float(np.sum((pred - truth) ** 2) / np.sum((truth - truth.mean()) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(shipped_models()))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for model in args.models.split(","):
        max_features = load_model(model).model_config.max_features
        rng = np.random.default_rng(0)
        for name, f in FUNCTIONS.items():
            for d in (1, 2):
                if d > max_features:
                    continue
                Xq = rng.uniform(-0.9, 0.9, size=(200, d))
                for n in (5, 20, 100):
                    X = rng.uniform(-1, 1, size=(n, d))
                    y = 10.0 + 2.0 * f(X) + 0.05 * rng.standard_normal(n)
                    truth = 10.0 + 2.0 * f(Xq)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        reg = PFNRegressor(model=model).fit(X, y)
                        dist = reg.predict_distribution(Xq)
                    bars, logits = dist.bar_distribution, dist.logits
                    raw_mean = (dist.loc + dist.scale * bars.mean(logits)).numpy()
                    raw_sd = (dist.scale * bars.stddev(logits)).numpy()
                    q05, q95 = dist.quantile([0.05, 0.95]).T
                    implied = (q95 - q05) / 3.29
                    rows.append(dict(model=model, function=name, d=d, n=n, r2_median=r2(reg.predict(Xq), truth),
                                     r2_mean=r2(dist.mean, truth), r2_raw_mean=r2(raw_mean, truth),
                                     sd_ratio_max=float((dist.stddev / implied).max()),
                                     sd_ratio_p90=float(np.quantile(dist.stddev / implied, 0.9)),
                                     sd_ratio_min=float((dist.stddev / implied).min()),
                                     raw_sd_ratio_max=float((raw_sd / implied).max())))
    lines = [f"{'model':<18} {'function':<7} {'d':>2} {'n':>4} {'R2 median':>9} {'R2 mean':>8} {'R2 raw mean':>11} "
             f"{'sd/implied min..max':>19} {'p90':>5} {'raw sd/implied max':>18}"]
    lines += [f"{r['model']:<18} {r['function']:<7} {r['d']:>2} {r['n']:>4} {r['r2_median']:9.3f} {r['r2_mean']:8.3f} "
              f"{r['r2_raw_mean']:11.3f} {r['sd_ratio_min']:9.2f}..{r['sd_ratio_max']:<8.2f} {r['sd_ratio_p90']:5.2f} "
              f"{r['raw_sd_ratio_max']:18.1f}"
              for r in rows]
    surface_rows = []
    rng = np.random.default_rng(1)  # the earlier benchmark's surface: the bnn test's kinked 2-d function
    X = rng.uniform(0, 10, size=(64, 2))
    y = kinked_surface(X) + 0.1 * rng.standard_normal(64)
    Xq = rng.uniform(0, 10, size=(200, 2))
    truth = kinked_surface(Xq)
    for model in args.models.split(","):
        if load_model(model).model_config.max_features < 2:
            continue
        dist = PFNRegressor(model=model).fit(X, y).predict_distribution(Xq)
        raw_mean = (dist.loc + dist.scale * dist.bar_distribution.mean(dist.logits)).numpy()
        median = dist.quantile([0.5])[:, 0]
        surface_rows.append(dict(model=model, r2_median=r2(median, truth), r2_mean=r2(dist.mean, truth),
                                 r2_raw_mean=r2(raw_mean, truth),
                                 max_error_median=float(np.abs(median - truth).max()),
                                 max_error_mean=float(np.abs(dist.mean - truth).max()),
                                 max_error_raw_mean=float(np.abs(raw_mean - truth).max())))
    lines += ["", "kinked surface (64 points of 100 + 3 (max(x1 - 4, 0) - 0.5 max(6 - x2, 0)) on [0, 10]^2, 200 queries)",
              f"{'model':<18} {'R2 median':>9} {'R2 mean':>8} {'R2 raw mean':>11} {'max|err| median':>15} "
              f"{'mean':>8} {'raw mean':>9}"]
    lines += [f"{r['model']:<18} {r['r2_median']:9.3f} {r['r2_mean']:8.3f} {r['r2_raw_mean']:11.3f} "
              f"{r['max_error_median']:15.2f} {r['max_error_mean']:8.2f} {r['max_error_raw_mean']:9.2f}"
              for r in surface_rows]
    write_results("point_estimates", "\n".join(lines), dict(rows=rows, surface=surface_rows))


if __name__ == "__main__":
    main()
