"""Robustness to gross outliers: GP datasets whose context targets are corrupted, scored on clean queries.

Datasets: the default model's own prior (``invariant_default``: linear trend + Matérn-5/2 ARD + Gaussian noise),
d = 1 and 2, n = 64 context points, 64 query points, a fixed seed per dataset, the same datasets at every rate.
Outliers, at rates 0, 5, 10 and 20% of the context (rounded): a point chosen at random gets
``y + s * u * sd(y_ctx)`` with a random sign s and u ~ U(5, 15), sd over the clean context. Queries stay clean.

Every method sees the corrupted context in the data's units and predicts the clean queries:

- the robust model (``PFNRegressor(model=...)``, Student-t noise prior) and the default model, each through the
  estimator's defaults;
- GPyTorch's GP with a Student-t likelihood (variational, Adam on the ELBO: ``GPyTorchStudentT``);
- BoTorch's ``SingleTaskGP`` (Gaussian likelihood, MAP), for context;
- ``bayes``: the exact Bayes posterior under the robust model's own prior (NUTS over the latent function, the
  degrees of freedom, the hyperparameters, location and scale: ``StudentTNoiseMarginal``), on the first
  ``--bayes-datasets`` datasets of each cell only (it takes minutes per dataset): what the robust model
  approximates, so robust - bayes is its error on these datasets.

Scores per (rate, d): mean NLL per clean query point (nats), RMSE of the predictive median (the point estimate
that exists for every predictive here: under Student-t noise with df <= 1 the mean does not), each with its
standard error over datasets, and the paired differences robust - default and robust - GPyTorch with their standard errors;
milliseconds per dataset (fit and prediction), one thread each. Writes ``benchmarks/results/robustness.json``
and ``.txt``. ``--methods`` runs a subset and ``--reuse`` takes the per-dataset scores of the other methods from
an earlier run's JSON with the same protocol (so slow baselines run once, side by side with the rest).

    python benchmarks/robustness.py --model robust --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.estimators import PFNRegressor
from priorfit.exact.baselines import BoTorchGP, GPyTorchStudentT
from priorfit.exact.student_t import StudentTNoiseMarginal
from priorfit.exact.reference import Task
from priorfit.exceptions import OutOfDomainWarning
from priorfit.models import DEFAULT_MODEL, load_model
from priorfit.seeding import derive_seed

RESULTS = Path(__file__).parent / "results"
RATES = (0.0, 0.05, 0.10, 0.20)
N_CONTEXT, N_QUERY = 64, 64


def corrupt(y: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``y`` with round(rate * n) entries moved by 5 to 15 standard deviations of y, in a random direction."""
    out = y.copy()
    count = int(round(rate * len(y)))
    idx = rng.choice(len(y), size=count, replace=False)
    out[idx] += rng.choice([-1.0, 1.0], size=count) * rng.uniform(5, 15, size=count) * y.std()
    return out


def pfn_method(model: str):
    def predict(X, y, Xq):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            return PFNRegressor(model=model).fit(X, y).predict_distribution(Xq)
    return predict


def reference_method(reference, diagnostics: list | None = None):
    """A reference as a method; an MCMC reference's (max R-hat, min ESS) per dataset go to ``diagnostics``."""
    def predict(X, y, Xq):
        result = reference.predict(Task(torch.as_tensor(X), torch.as_tensor(y), torch.as_tensor(Xq)), 0)
        if diagnostics is not None:
            diagnostics.append((result.max_r_hat, result.min_ess))
        return result.predictive
    return predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="robust", help="the robust model (a shipped name or a path)")
    parser.add_argument("--default", default=DEFAULT_MODEL, help="the default model it is compared with")
    parser.add_argument("--datasets", type=int, default=64, help="datasets per (rate, d)")
    parser.add_argument("--dims", default="1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods to run")
    parser.add_argument("--reuse", default=None, help="an earlier run's JSON whose per-dataset scores to reuse")
    parser.add_argument("--bayes-datasets", type=int, default=8,
                        help="datasets per cell on which the bayes method (NUTS) runs")
    parser.add_argument("--out", default=str(RESULTS / "robustness"), help="results path without suffix")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_model(args.default).prior  # the default model's prior: the clean GP datasets
    nuts_diagnostics: list = []
    methods = {"robust": pfn_method(args.model), "default": pfn_method(args.default),
               "gpytorch_student_t": reference_method(GPyTorchStudentT()), "botorch": reference_method(BoTorchGP()),
               "bayes": reference_method(StudentTNoiseMarginal(load_model(args.model).prior), nuts_diagnostics)}
    run = set(methods) if args.methods is None else set(args.methods.split(","))
    unknown = run - set(methods)
    if unknown:
        parser.error(f"--methods: unknown {sorted(unknown)}; choose from {sorted(methods)}")
    reused = {}
    if args.reuse is not None:
        earlier = json.loads(Path(args.reuse).read_text())
        same = (earlier["datasets"], earlier["n_context"], earlier["n_query"], earlier["rates"], earlier["default"])
        if same != (args.datasets, N_CONTEXT, N_QUERY, list(RATES), args.default):
            parser.error(f"--reuse {args.reuse}: another protocol (datasets, sizes, rates or default model)")
        if "robust" not in run and earlier["model"] != args.model:
            parser.error(f"--reuse {args.reuse}: its robust model is {earlier['model']!r}, not {args.model!r}")
        reused = {(c["d"], c["rate"]): c["scores"] for c in earlier["cells"]}
    cells = []
    for d in (int(v) for v in args.dims.split(",")):
        batch = prior.sample(args.datasets, N_CONTEXT + N_QUERY, torch.Generator().manual_seed(derive_seed(7, d)),
                             n_features=d, n_context=N_CONTEXT)
        for rate in RATES:
            scores = {m: dict(nll=[], rmse=[], ms=[], failures=0) for m in methods}
            for name, earlier in reused.get((d, rate), {}).items():
                if name not in run:
                    scores[name] = earlier
            for i in range(args.datasets):
                X, y = batch.x[i].numpy(), batch.y[i].numpy()
                rng = np.random.default_rng(derive_seed(11, d, i, int(round(rate * 100))))
                y_ctx = corrupt(y[:N_CONTEXT], rate, rng)
                for name, method in methods.items():
                    if name not in run or (name == "bayes" and i >= args.bayes_datasets):
                        continue
                    t = time.perf_counter()
                    pred = method(X[:N_CONTEXT], y_ctx, X[N_CONTEXT:])
                    ms = 1000 * (time.perf_counter() - t)
                    if pred is None:
                        scores[name]["failures"] += 1
                        scores[name]["nll"].append(np.nan)
                        scores[name]["rmse"].append(np.nan)
                        continue
                    scores[name]["nll"].append(float(np.mean(-pred.log_prob(y[N_CONTEXT:]))))
                    median = pred.quantile(0.5)  # a heavy-tailed predictive's mean may not exist (df <= 1)
                    scores[name]["rmse"].append(float(np.sqrt(np.mean((median - y[N_CONTEXT:]) ** 2))))
                    scores[name]["ms"].append(ms)
            if "bayes" in run and nuts_diagnostics:
                scores["bayes"]["max_r_hat"] = [r for r, _ in nuts_diagnostics]
                scores["bayes"]["min_ess"] = [e for _, e in nuts_diagnostics]
                nuts_diagnostics.clear()
            scores = {name: s for name, s in scores.items() if s["nll"]}
            cell = dict(d=d, rate=rate, methods={}, paired={}, scores=scores)
            for name, s in scores.items():
                nll, rmse = np.array(s["nll"]), np.array(s["rmse"])
                cell["methods"][name] = dict(
                    nll=float(np.nanmean(nll)), nll_se=float(np.nanstd(nll, ddof=1) / np.sqrt(np.sum(~np.isnan(nll)))),
                    rmse=float(np.nanmean(rmse)), rmse_se=float(np.nanstd(rmse, ddof=1) / np.sqrt(np.sum(~np.isnan(rmse)))),
                    ms=float(np.median(s["ms"])) if s["ms"] else float("nan"), failures=s["failures"])
            for other in ("default", "gpytorch_student_t", "bayes"):
                if "robust" not in scores or other not in scores:
                    continue
                for metric in ("nll", "rmse"):
                    k = len(scores[other][metric])  # bayes ran on the first k datasets only
                    diff = np.array(scores["robust"][metric][:k]) - np.array(scores[other][metric])
                    diff = diff[~np.isnan(diff)]
                    cell["paired"][f"{metric}_robust_minus_{other}"] = dict(
                        mean=float(diff.mean()), se=float(diff.std(ddof=1) / np.sqrt(len(diff))))
            cells.append(cell)
            print(f"d={d} rate={rate:.2f} " + " ".join(f"{m}: nll={v['nll']:+.3f} rmse={v['rmse']:.3f}"
                                                     for m, v in cell["methods"].items()), flush=True)
    data = dict(command="python benchmarks/robustness.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                model=args.model, default=args.default, threads=args.threads, datasets=args.datasets,
                n_context=N_CONTEXT, n_query=N_QUERY, rates=list(RATES), torch_version=torch.__version__,
                ran=sorted(run), reused_from=args.reuse, cells=cells)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), data)
    atomic_write_text(out.with_suffix(".txt"), table(data))
    print(table(data))
    return 0


def table(data: dict) -> str:
    lines = [f"Robustness to outliers in the context (n = {data['n_context']}, {data['datasets']} GP datasets per "
             "cell); NLL per clean query (nats) and RMSE, mean +- s.e.", ""]
    names = list(data["cells"][0]["methods"])
    lines.append("")
    lines.append(f"{'d':>2} {'rate':>5} " + " ".join(f"{n + ' nll':>24} {'rmse':>14}" for n in names))
    for c in data["cells"]:
        lines.append(f"{c['d']:>2} {c['rate']:>5.2f} " + " ".join(
            f"{c['methods'][n]['nll']:>+15.3f} +- {c['methods'][n]['nll_se']:.3f} "
            f"{c['methods'][n]['rmse']:>7.3f} +- {c['methods'][n]['rmse_se']:.3f}" for n in names))
    lines += ["", "Paired differences, robust minus other (negative: the robust model is better):"]
    for c in data["cells"]:
        lines.append(f"d={c['d']} rate={c['rate']:.2f}  " + "  ".join(
            f"{k}={v['mean']:+.3f}+-{v['se']:.3f}" for k, v in c["paired"].items()))
    nuts = [(c["d"], c["rate"], c["scores"]["bayes"]) for c in data["cells"] if "max_r_hat" in c["scores"].get("bayes", {})]
    if nuts:
        lines += ["", "NUTS (bayes) diagnostics per cell: max R-hat, min bulk ESS over its datasets:"]
        lines += [f"d={d} rate={rate:.2f}  R-hat {max(b['max_r_hat']):.3f}  ESS {min(b['min_ess']):.0f}"
                  for d, rate, b in nuts]
    lines += ["", "Milliseconds per dataset (median): " + ", ".join(
        f"{n} {np.nanmedian([c['methods'][n]['ms'] for c in data['cells']]):.0f}" for n in names)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
