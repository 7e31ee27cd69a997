"""Mean against median as the point estimate, on one 2-d kinked surface (the shipped bnn model's test example).

64 noisy points of y = 100 + 3 (max(x1 - 4, 0) - 0.5 max(6 - x2, 0)) on [0, 10]^2, 200 clean queries; for each
model, R^2 of the predictive mean and of the predictive median, and the largest absolute error of each. The
mean sums the bar distribution's far tail bars, so a little tail mass moves it far (docs/heavy_tails.md, "Use").

    python benchmarks/point_estimates.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from report_common import write_results

from priorfit.estimators import PFNRegressor


def surface(z: np.ndarray) -> np.ndarray:
    return 100 + 3 * (np.maximum(z[:, 0] - 4, 0) - 0.5 * np.maximum(6 - z[:, 1], 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="bnn,robust,invariant_default")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)  # the test's data
    x = rng.uniform(0, 10, size=(64, 2))
    y = surface(x) + 0.1 * rng.standard_normal(64)
    xq = rng.uniform(0, 10, size=(200, 2))
    truth = surface(xq)
    rows = []
    for model in args.models.split(","):
        row = {"model": model}
        for point in ("mean", "median"):
            reg = PFNRegressor(model=model, point_estimate=point).fit(x, y)
            pred = reg.predict(xq)
            row[f"r2_{point}"] = float(reg.score(xq, truth))
            row[f"max_abs_error_{point}"] = float(np.abs(pred - truth).max())
        rows.append(row)
    lines = [f"{'model':<18} {'R2 mean':>9} {'R2 median':>9} {'max|err| mean':>13} {'max|err| median':>15}"]
    lines += [f"{r['model']:<18} {r['r2_mean']:9.3f} {r['r2_median']:9.3f} {r['max_abs_error_mean']:13.2f} "
              f"{r['max_abs_error_median']:15.2f}" for r in rows]
    write_results("point_estimates", "\n".join(lines), dict(rows=rows))


if __name__ == "__main__":
    main()
