"""Bayesian optimisation benchmark: priorfit against BoTorch, Optuna (GP and TPE) and random search.

Protocol (DESIGN.md, issue 13): seven test functions of ``botorch.test_functions`` -- Branin, Six-hump camel,
Hartmann-3, Hartmann-6, Ackley-5, Rosenbrock-4, Dixon-Price-4 -- minimised without noise; per seed, every method
starts from the same 2d scrambled Sobol points (seeded by the function and the seed) and then suggests one point
at a time up to 50 evaluations (d <= 3) or 100 (d >= 4). Methods, all in one process with the same threads:

- ``priorfit``: ``priorfit.bo.Optimizer`` at its defaults (``benchmarks/bo_defaults.py`` chose them on other
  functions and seeds), the model given by ``--model``;
- ``botorch``: ``SingleTaskGP`` on inputs normalised to the unit cube (its default outcome standardisation and
  hyperpriors), fitted by ``fit_gpytorch_mll``, then ``LogExpectedImprovement`` maximised by ``optimize_acqf``
  with ``num_restarts=10, raw_samples=512`` (BoTorch's tutorial settings);
- ``optuna_gp`` and ``optuna_tpe``: Optuna's ``GPSampler`` and ``TPESampler`` (seeded; ``n_startup_trials`` set
  to the design's size, so they model from the same point on), the Sobol points enqueued as the first trials;
- ``random``: uniform points.

Recorded per run: the best value so far after each evaluation, and the seconds each suggestion took (from the
observations to the next point, surrogate fitting included) with the number of observations it saw. Scores:
simple regret (best so far minus the optimum, polished to about 1e-12: ``Problem.optimum``) in log10; the median
and quartiles over seeds of the final regret per function and method; seconds per suggestion at 45-55
observations (median). A regret of 0 is floored at 1e-12 before the log.

Runs are written one (function, method, seed) at a time to ``--out``.partial.json, so an interrupted run resumes
where it stopped (``--resume``), and runs split over processes (``--functions``, ``--methods``) are joined with
``--merge`` (a later file's run replaces an earlier file's run of the same function, method and seed, so that
BoTorch can be rerun beside priorfit). Each run records its process (``run_id``), threads and model; the time
ratio priorfit / BoTorch is taken only over runs of one process. Writes ``benchmarks/results/bo.json`` and
``.txt`` and the regret plot ``docs/bo/regret.png``.

    python benchmarks/bo.py --seeds 10 --threads 1 --model bo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import qmc

from priorfit.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from priorfit.seeding import derive_seed

RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).parents[1] / "docs" / "bo"
METHODS = ("priorfit", "botorch", "optuna_gp", "optuna_tpe", "random")
TIMING_WINDOW = (45, 55)  # observations at which suggestions are timed
REGRET_FLOOR = 1e-12


@dataclass(frozen=True)
class Problem:
    name: str
    function: object  # a botorch SyntheticTestFunction (noise-free)
    budget: int

    @property
    def dim(self) -> int:
        return self.function.dim

    @property
    def bounds(self) -> np.ndarray:
        return self.function.bounds.numpy().T  # d x 2

    @property
    def optimum(self) -> float:
        """The minimum, to about 1e-12: BoTorch's stated ``optimal_value`` is rounded (Six-hump camel's lies
        2.8e-5 above the true minimum, Branin's 3.6e-7 below), so each stated minimiser is polished by L-BFGS-B
        and the lowest value found is used, with the stated one, whichever is lower."""
        return _polished_optimum(self.name, self.function)

    def __call__(self, x: np.ndarray) -> float:
        with torch.no_grad():
            return float(self.function(torch.as_tensor(x, dtype=torch.float64)[None])[0])


_OPTIMA: dict[str, float] = {}


def _polished_optimum(name: str, function) -> float:
    if name not in _OPTIMA:
        from scipy import optimize

        bounds = function.bounds.numpy().T

        def value(x: np.ndarray) -> float:
            with torch.no_grad():
                return float(function.evaluate_true(torch.as_tensor(x, dtype=torch.float64)[None])[0])

        found = [float(function.optimal_value)]
        for start in getattr(function, "_optimizers", None) or []:
            result = optimize.minimize(value, np.array(start, dtype=np.float64), method="L-BFGS-B", bounds=bounds,
                                       options=dict(ftol=1e-15, gtol=1e-12, maxiter=500))
            found.append(min(float(result.fun), value(np.array(start, dtype=np.float64))))
        _OPTIMA[name] = min(found)
    return _OPTIMA[name]


def problems() -> dict[str, Problem]:
    from botorch.test_functions import Ackley, Branin, DixonPrice, Hartmann, Rosenbrock, SixHumpCamel

    made = [("branin", Branin()), ("six_hump_camel", SixHumpCamel()), ("hartmann3", Hartmann(dim=3)),
            ("hartmann6", Hartmann(dim=6)), ("ackley5", Ackley(dim=5)), ("rosenbrock4", Rosenbrock(dim=4)),
            ("dixon_price4", DixonPrice(dim=4))]
    return {name: Problem(name, f, 50 if f.dim <= 3 else 100) for name, f in made}


def initial_points(problem: Problem, seed: int) -> np.ndarray:
    """The 2d scrambled Sobol points every method starts from (user units)."""
    sobol = qmc.Sobol(problem.dim, scramble=True, seed=derive_seed(31, problem.dim, seed, len(problem.name)))
    u = sobol.random_base2(int(math.ceil(math.log2(2 * problem.dim))))[:2 * problem.dim]
    lo, hi = problem.bounds[:, 0], problem.bounds[:, 1]
    return lo + u * (hi - lo)


# -- methods: each yields suggestions given the observations so far ---------------------------------------------

class PriorfitMethod:
    def __init__(self, problem: Problem, seed: int, model: str | None) -> None:
        from priorfit.bo import Optimizer

        self.opt = Optimizer([tuple(b) for b in problem.bounds], model=model, seed=seed,
                             n_initial=2 * problem.dim)

    def tell(self, x: np.ndarray, y: float) -> None:
        self.opt.tell(x, y)

    def ask(self) -> np.ndarray:
        return self.opt.ask()


class BoTorchMethod:
    def __init__(self, problem: Problem, seed: int, model: str | None) -> None:
        self.bounds = torch.as_tensor(problem.bounds.T, dtype=torch.float64)  # 2 x d
        self.X: list[np.ndarray] = []
        self.y: list[float] = []
        self.seed = seed

    def tell(self, x: np.ndarray, y: float) -> None:
        self.X.append(np.asarray(x, dtype=np.float64))
        self.y.append(y)

    def ask(self) -> np.ndarray:
        from botorch.acquisition import LogExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.optim import optimize_acqf
        from botorch.utils.transforms import normalize, unnormalize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        X = normalize(torch.as_tensor(np.array(self.X)), self.bounds)
        Y = -torch.as_tensor(self.y, dtype=torch.float64)[:, None]  # BoTorch maximises
        gp = SingleTaskGP(X, Y)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        acq = LogExpectedImprovement(gp, best_f=Y.max())
        unit = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).double()
        torch.manual_seed(derive_seed(self.seed, len(self.X)))
        candidate, _ = optimize_acqf(acq, unit, q=1, num_restarts=10, raw_samples=512)
        return unnormalize(candidate.detach(), self.bounds)[0].numpy()


class OptunaMethod:
    def __init__(self, problem: Problem, seed: int, kind: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # n_startup_trials = the shared design's size: otherwise Optuna adds random points before modelling
        startup = 2 * problem.dim
        sampler = (optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup) if kind == "gp" else
                   optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.bounds = problem.bounds
        self.trial = None

    def _suggest(self) -> np.ndarray:
        self.trial = self.study.ask()
        return np.array([self.trial.suggest_float(f"x{j}", lo, hi) for j, (lo, hi) in enumerate(self.bounds)])

    def tell(self, x: np.ndarray, y: float) -> None:
        if self.trial is None:  # an initial point: enqueue it, then ask for it back
            self.study.enqueue_trial({f"x{j}": float(v) for j, v in enumerate(x)})
            self._suggest()
        self.study.tell(self.trial, y)
        self.trial = None

    def ask(self) -> np.ndarray:
        return self._suggest()


class RandomMethod:
    def __init__(self, problem: Problem, seed: int) -> None:
        self.rng = np.random.default_rng(derive_seed(41, seed, problem.dim))
        self.bounds = problem.bounds

    def tell(self, x: np.ndarray, y: float) -> None:
        pass

    def ask(self) -> np.ndarray:
        return self.rng.uniform(self.bounds[:, 0], self.bounds[:, 1])


def make_method(name: str, problem: Problem, seed: int, model: str | None):
    if name == "priorfit":
        return PriorfitMethod(problem, seed, model)
    if name == "botorch":
        return BoTorchMethod(problem, seed, model)
    if name in ("optuna_gp", "optuna_tpe"):
        return OptunaMethod(problem, seed, name.split("_")[1])
    return RandomMethod(problem, seed)


def run_one(problem: Problem, method: str, seed: int, model: str | None) -> dict:
    """One optimisation run: the best value after each evaluation and the timed suggestions."""
    m = make_method(method, problem, seed, model)
    values, timings = [], []
    for x in initial_points(problem, seed):
        y = problem(x)
        m.tell(x, y)
        values.append(y)
    while len(values) < problem.budget:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = m.ask()
        timings.append((len(values), time.perf_counter() - start))
        y = problem(np.clip(x, problem.bounds[:, 0], problem.bounds[:, 1]))
        m.tell(x, y)
        values.append(y)
    best = np.minimum.accumulate(values)
    return dict(function=problem.name, method=method, seed=seed, best_so_far=best.tolist(),
                suggest_seconds=timings)


def log_regret(run: dict, optimum: float) -> np.ndarray:
    return np.log10(np.maximum(np.array(run["best_so_far"]) - optimum, REGRET_FLOOR))


def window_median_seconds(runs: list[dict]) -> float:
    """The median seconds per suggestion of ``runs`` at 45-55 observations (NaN if none)."""
    times = [s for r in runs for n, s in r["suggest_seconds"] if TIMING_WINDOW[0] <= n <= TIMING_WINDOW[1]]
    return float(np.median(times)) if times else math.nan


def summarize(runs: list[dict], probs: dict[str, Problem]) -> dict:
    table = {}
    for name, problem in probs.items():
        for method in METHODS:
            mine = [r for r in runs if r["function"] == name and r["method"] == method]
            if not mine:
                continue
            final = np.array([log_regret(r, problem.optimum)[-1] for r in mine])
            table.setdefault(name, {})[method] = dict(
                seeds=len(mine), median_log10_regret=float(np.median(final)),
                q25=float(np.quantile(final, 0.25)), q75=float(np.quantile(final, 0.75)),
                median_seconds_per_suggestion_45_55=window_median_seconds(mine))
    wins = {}
    for other in METHODS[1:]:
        cells = [(t["priorfit"]["median_log10_regret"], t[other]["median_log10_regret"])
                 for t in table.values() if "priorfit" in t and other in t]
        wins[other] = dict(priorfit_at_most=sum(p <= o for p, o in cells), functions=len(cells))
    speed = {}  # priorfit's median seconds over BoTorch's, among the runs of a process that ran both
    for name in table:
        ours = {r["run_id"] for r in runs if r["function"] == name and r["method"] == "priorfit" and "run_id" in r}
        theirs = {r["run_id"] for r in runs if r["function"] == name and r["method"] == "botorch" and "run_id" in r}
        shared = ours & theirs
        if shared:
            pick = {m: [r for r in runs if r["function"] == name and r["method"] == m and r.get("run_id") in shared]
                    for m in ("priorfit", "botorch")}
            speed[name] = window_median_seconds(pick["priorfit"]) / window_median_seconds(pick["botorch"])
    return dict(table=table, wins=wins, priorfit_seconds_over_botorch=speed)


def format_table(summary: dict) -> str:
    lines = ["Median final log10 simple regret [quartiles] over seeds; seconds per suggestion at 45-55 "
             "observations (median)", ""]
    header = f"{'function':<16}" + "".join(f"{m:>28}" for m in METHODS)
    lines.append(header)
    for name, cells in summary["table"].items():
        row = f"{name:<16}"
        for m in METHODS:
            c = cells.get(m)
            row += (f"{c['median_log10_regret']:>+8.2f} [{c['q25']:+.2f},{c['q75']:+.2f}] n={c['seeds']:<2}"
                    if c else f"{'-':>28}")
        lines.append(row)
    lines += ["", "seconds per suggestion (45-55 observations):"]
    for name, cells in summary["table"].items():
        lines.append(f"{name:<16}" + "".join(
            f"{cells[m]['median_seconds_per_suggestion_45_55']:>12.3f}" if m in cells else f"{'-':>12}"
            for m in METHODS))
    lines += ["", "functions where priorfit's median final regret is <= the other method's:"]
    for other, w in summary["wins"].items():
        lines.append(f"  {other}: {w['priorfit_at_most']} of {w['functions']}")
    if summary.get("priorfit_seconds_over_botorch"):
        lines += ["", "priorfit's seconds per suggestion / BoTorch's (45-55 observations; runs of one process):"]
        lines += [f"  {name:<16}{ratio:.3f}" for name, ratio in summary["priorfit_seconds_over_botorch"].items()]
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], probs: dict[str, Problem], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in probs if any(r["function"] == n for r in runs)]
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for k, method in enumerate(METHODS):
            curves = [log_regret(r, probs[name].optimum) for r in runs if r["function"] == name and
                      r["method"] == method]
            if not curves:
                continue
            c = np.array(curves)
            t = np.arange(1, c.shape[1] + 1)
            ax.plot(t, np.median(c, 0), color=f"C{k}", label=method)
            ax.fill_between(t, np.quantile(c, 0.25, 0), np.quantile(c, 0.75, 0), color=f"C{k}", alpha=0.15)
        ax.set_title(name)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("log10 simple regret")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--functions", default=None, help="comma-separated subset (default: all seven)")
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--model", default="bo", help="priorfit's model (a shipped name or a path; default bo)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "bo"), help="results path without suffix")
    parser.add_argument("--resume", action="store_true", help="keep the runs OUT.partial.json already holds")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="join the runs of these results/partial files and write the summary; run nothing")
    parser.add_argument("--plot", default=str(DOCS / "regret.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    probs = problems()
    out = Path(args.out)
    partial = out.with_suffix(".partial.json")
    if args.merge:
        sources = [json.loads(Path(path).read_text()) for path in args.merge]
        # a later file's run replaces an earlier one's of the same function, method and seed
        runs = list({(r["function"], r["method"], r["seed"]): r for m in sources for r in m["runs"]}.values())
        meta = {k: v for k, v in sources[0].items() if k not in ("runs", "summary", "protocol", "model", "threads")}
        for key, among in (("model", [r for r in runs if r["method"] == "priorfit"]), ("threads", runs)):
            values = {r[key] for r in among if key in r}
            if len(values) > 1:
                parser.error(f"--merge: the runs kept have different {key}s: {sorted(map(str, values))}")
            meta[key] = values.pop() if values else None
        meta["command"] = "python benchmarks/bo.py " + " ".join(argv if argv is not None else sys.argv[1:])
        meta["merged_from"] = {path: m.get("command") for path, m in zip(args.merge, sources)}
    else:
        functions = list(probs) if args.functions is None else args.functions.split(",")
        methods = list(METHODS) if args.methods is None else args.methods.split(",")
        bad = [f for f in functions if f not in probs] + [m for m in methods if m not in METHODS]
        if bad:
            parser.error(f"unknown function(s) or method(s): {bad}")
        runs = json.loads(partial.read_text())["runs"] if args.resume and partial.exists() else []
        done = {(r["function"], r["method"], r["seed"]) for r in runs}
        meta = dict(command="python benchmarks/bo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    model=args.model, threads=args.threads, seeds=args.seeds, torch_version=torch.__version__)
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        for name in functions:
            for seed in range(args.seeds):
                for method in methods:
                    if (name, method, seed) in done:
                        continue
                    run = run_one(probs[name], method, seed, args.model)
                    run.update(run_id=run_id, threads=args.threads)
                    if method == "priorfit":
                        run["model"] = args.model
                    runs.append(run)
                    final = log_regret(run, probs[name].optimum)[-1]
                    times = [s for _, s in run["suggest_seconds"]]
                    print(f"{name} seed={seed} {method}: log10 regret {final:+.2f}, "
                          f"{np.median(times):.3f} s per suggestion (median)", flush=True)
                    atomic_write_json(partial, dict(meta, runs=runs))
    summary = summarize(runs, probs)
    data = dict(meta, protocol=dict(budget={n: p.budget for n, p in probs.items()}, initial="2d scrambled Sobol",
                                    timing_window=TIMING_WINDOW, regret_floor=REGRET_FLOOR),
                summary=summary, runs=runs)
    atomic_write_json(out.with_suffix(".json"), data)
    text = format_table(summary)
    atomic_write_text(out.with_suffix(".txt"), text)
    plot(runs, probs, Path(args.plot))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
