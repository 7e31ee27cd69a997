"""Prediction speed of shipped models through ``PFNRegressor`` (fit + predictive mean and quantiles), side by side.

  python benchmarks/bench_predict_speed.py --models invariant_default gp_default --threads 1

For n in {16, 128} context points, d = 2 and m = 1000 queries, the models are timed in turn, round after round
(so that drifts of the machine hit them alike), and the median over rounds of the mean time per dataset is
reported with each model's ratio to the first. Writes benchmarks/results/predict_speed.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from priorfit.atomic import atomic_write_json
from priorfit.estimators import PFNRegressor
from priorfit.exceptions import OutOfDomainWarning

RESULTS = Path(__file__).parent / "results" / "predict_speed.json"


def one_pass(model: str, X: np.ndarray, y: np.ndarray, Xq: np.ndarray) -> float:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        pred = PFNRegressor(model=model).fit(X, y).predict_distribution(Xq)
        pred.mean, pred.quantile([0.05, 0.95])
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["invariant_default", "gp_default"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for n in (16, 128):
        X, y, Xq = rng.uniform(size=(n, 2)), rng.normal(size=n), rng.uniform(size=(1000, 2))
        for model in args.models:
            one_pass(model, X, y, Xq)  # load and warm up
        rounds = {m: [] for m in args.models}
        for _ in range(args.rounds):
            for model in args.models:
                rounds[model].append(statistics.mean(one_pass(model, X, y, Xq) for _ in range(args.repeats)))
        first = statistics.median(rounds[args.models[0]])
        for model in args.models:
            ms = 1000 * statistics.median(rounds[model])
            rows.append(dict(model=model, n=n, d=2, m=1000, ms=ms, ratio_to_first=ms / (1000 * first)))
            print(f"n={n:>4} {model:>18}: {ms:7.1f} ms per dataset ({rows[-1]['ratio_to_first']:.2f}x)")
    atomic_write_json(RESULTS, dict(command="python benchmarks/bench_predict_speed.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), threads=args.threads, cpu=platform.processor() or platform.machine(),
        torch_version=torch.__version__, rows=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
