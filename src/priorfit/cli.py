"""Command line: ``priorfit train | predict | demo | evaluate | bo``."""

from __future__ import annotations

import argparse
import dataclasses
import csv
import io
import math
import sys
import time
from pathlib import Path

import numpy as np

from priorfit.exceptions import InputDataError, PriorfitError
from priorfit.evaluate.config import PATHS
from priorfit.model.precision import PRECISIONS


def _cmd_train(args: argparse.Namespace) -> int:
    from priorfit.config import load_json
    from priorfit.training import TrainJob, train

    job = load_json(args.config, expected=TrainJob)
    if args.threads is not None:
        job = dataclasses.replace(job, training=dataclasses.replace(job.training, num_threads=args.threads))
    try:
        result = train(job.prior, job.model, job.training, args.out, resume=not args.no_resume,
                       progress=not args.quiet, stop_after=args.stop_after, reschedule=args.reschedule,
                       init_from=args.init_from)
    finally:  # a torchrun rank: close its process group, whose threads otherwise may abort the exit (SIGABRT)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    rate = "no steps left to train" if math.isnan(result.datasets_per_second) else (
        f"{result.datasets_per_second:.0f} datasets/s")
    print(f"wrote {result.checkpoint} at step {result.step} ({rate})")
    return 0


def _read_rows(path: str, what: str) -> tuple[list[str], list[list[str]]]:
    """A CSV file's header and rows of strings, each row as long as the header."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise PriorfitError(f"{what} file {path!r} does not exist") from None
    if len(rows) < 2:
        raise PriorfitError(f"{what} file {path!r} needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise PriorfitError(f"{what} file {path!r}, line {line}: {len(row)} values, the header names "
                                f"{len(header)}")
    return header, body


def _numbers(header: list[str], body: list[list[str]], columns: list[str], path: str, what: str) -> np.ndarray:
    """The named columns as a float64 array, with an error naming the line and column of a value that is not a
    finite number."""
    index = [header.index(c) for c in columns]
    out = np.empty((len(body), len(columns)), dtype=np.float64)
    for line, row in enumerate(body, start=2):
        for j, i in enumerate(index):
            try:
                number = float(row[i])
            except ValueError:
                raise PriorfitError(f"{what} file {path!r}, line {line}, column {header[i]!r}: {row[i]!r} is not a "
                                    "number") from None
            if not np.isfinite(number):
                raise PriorfitError(f"{what} file {path!r}, line {line}, column {header[i]!r}: {row[i]!r} is not a "
                                    "finite number (missing values must be removed or filled first)")
            out[line - 2, j] = number
    return out


def _all_text(values) -> bool:
    """Whether no value parses as a number: a target of class labels. A target with some numbers and some text
    (a missing-value marker, a typo) stays a regression target, whose checks name the line of the text."""
    for value in values:
        try:
            float(value)
        except ValueError:
            continue
        return False
    return True


def _write_csv(out_path: str, header: list[str], rows: list[list[str]]) -> None:
    from priorfit.atomic import atomic_write_text

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    if out_path == "-":
        sys.stdout.write(out.getvalue())
    else:
        atomic_write_text(out_path, out.getvalue())
        print(f"wrote {len(rows)} predictions to {out_path}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from priorfit.estimators import PFNClassifier, PFNRegressor
    from priorfit.models import load_model

    header, train = _read_rows(args.train, "--train")
    target = args.target or header[-1]
    if target not in header:
        raise PriorfitError(f"--target {target!r} is not a column of {args.train} (columns: {header})")
    features = [h for h in header if h != target]
    q_header, query = _read_rows(args.query, "--query")
    missing = [h for h in features if h not in q_header]
    if missing:
        raise PriorfitError(f"--query file {args.query!r} lacks the feature column(s) {missing}")
    X = _numbers(header, train, features, args.train, "--train")
    Xq = _numbers(q_header, query, features, args.query, "--query")
    inputs = [[repr(float(v)) for v in row] for row in Xq]
    if args.model is None and _all_text(row[header.index(target)] for row in train):
        from priorfit.estimators import DEFAULT_CLASSIFIER

        args.model = DEFAULT_CLASSIFIER  # text labels: a classification task, whatever the default regressor
        print(f"priorfit predict: no value of the target {target!r} is a number, so they are taken as class labels and "
              f"the default classifier ({DEFAULT_CLASSIFIER}) is used; --model chooses another", file=sys.stderr)
    if load_model(args.model).model_config.n_classes:  # a classifier: the labels stay strings
        y = np.array([row[header.index(target)] for row in train])
        clf = PFNClassifier(model=args.model, ensemble_size=args.ensemble, precision=args.precision).fit(X, y)
        proba = clf.predict_proba(Xq)
        names = ["predicted"] + [f"p_{c}" for c in clf.classes_]
        rows = [inputs[i] + [str(clf.classes_[proba[i].argmax()])] + [f"{p:.6g}" for p in proba[i]]
                for i in range(len(Xq))]
        _write_csv(args.out, features + names, rows)
        return 0
    try:
        y = _numbers(header, train, [target], args.train, "--train")[:, 0]
    except PriorfitError as err:
        raise PriorfitError(f"{err}. For a target of class labels, pass --model tabular (the shipped "
                            "classifier for tabular data), --model classifier (the GP classifier) or another "
                            "classifier checkpoint") from None
    try:
        quantiles = [float(q) for q in args.quantiles.split(",")]
    except ValueError:
        raise PriorfitError(f"--quantiles must be comma-separated numbers, got {args.quantiles!r}") from None
    reg = PFNRegressor(model=args.model, ensemble_size=1 if args.ensemble is None else args.ensemble,
                       precision=args.precision).fit(X, y)
    dist = reg.predict_distribution(Xq)
    columns = [dist.quantile([0.5])[:, 0], dist.mean, dist.stddev] + list(dist.quantile(quantiles).T)
    names = ["median", "mean", "std"] + [f"q{q:g}" for q in quantiles]
    _write_csv(args.out, features + names, [inputs[i] + [f"{float(c[i]):.6g}" for c in columns]
                                            for i in range(len(Xq))])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from priorfit.demo import run_demo

    run_demo(model=args.model, out=args.out, seed=args.seed)
    return 0


def _int_tuple(name: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputDataError(f"--{name} must be comma-separated integers, got {text!r}") from None
    return values


def _gap_targets(text: str) -> tuple[tuple[int, float], ...]:
    try:
        pairs = tuple((int(d), float(t)) for d, t in (item.split(":") for item in text.split(",")))
    except ValueError:
        raise InputDataError(f"--gap-targets must be comma-separated D:GAP pairs, e.g. 1:0.05,3:0.1; got {text!r}"
                             ) from None
    return pairs


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from priorfit.atomic import atomic_write_json, atomic_write_text
    from priorfit.evaluate import EvaluateConfig, evaluate, format_table, plot_report, reference_protocol
    from priorfit.exact.store import ReferenceStore
    from priorfit.models import load_model

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ckpt = load_model(args.model)
    config = EvaluateConfig.quick() if args.quick else EvaluateConfig()
    overrides = dict(
        n_context=_int_tuple("context", args.context), n_features=_int_tuple("features", args.features),
        n_datasets=args.datasets, marginal_datasets=args.marginal_datasets, ml2_datasets=args.ml2_datasets,
        nuts_warmup=args.nuts_warmup, nuts_samples=args.nuts_samples, seed=args.seed, ensemble_size=args.ensemble,
        precision=args.precision, path=args.path,
        gap_targets=None if args.gap_targets is None else _gap_targets(args.gap_targets),
    )
    try:
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise InputDataError(str(exc)) from None
    store = ReferenceStore(reference_protocol(ckpt.prior, config))
    for path in args.references or []:
        try:
            store.update(ReferenceStore.load(path))
        except (OSError, ValueError) as exc:
            raise InputDataError(f"--references {path}: {exc}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial, store_path = out / "cells.partial.json", out / "references.json"
    last_saved = [time.monotonic()]

    def save_references(force: bool = False) -> None:  # at most every 10 s while references are computed
        if force or time.monotonic() - last_saved[0] > 10:
            store.save(store_path)
            last_saved[0] = time.monotonic()

    def save_partial(cells: list) -> None:  # a long run that is stopped keeps the cells it finished
        atomic_write_json(partial, [c.to_json() for c in cells])
        save_references(force=True)

    report = evaluate(ckpt, config, progress=not args.quiet, examples=not args.no_plots, on_cell=save_partial,
                      references=store, new_references=not args.no_new_references, on_reference=save_references)
    save_references(force=True)
    table = format_table(report.cells)
    print(table)
    data = dict(model=str(args.model), threads=torch.get_num_threads(), **report.to_json())
    atomic_write_json(out / "evaluate.json", data)
    atomic_write_text(out / "evaluate.txt", table + "\n")
    written = [out / "evaluate.json", out / "evaluate.txt", store_path]
    if not args.no_plots:
        written += plot_report(report, out)
    partial.unlink(missing_ok=True)
    print(f"wrote {', '.join(str(p) for p in written)} in {report.seconds / 60:.1f} min")
    return 0


def _objective(spec: str):
    """The function ``module:function`` or ``path/to/file.py:function`` names."""
    import importlib
    import importlib.util

    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise PriorfitError(f"objective {spec!r} must be MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise PriorfitError(f"objective file {module_name!r} does not exist")
            # importable as it would be run: its folder on the path (sibling imports), itself in sys.modules
            sys.path.insert(0, str(path.resolve().parent))
            loader = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[path.stem] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except PriorfitError:
        raise
    except Exception as exc:  # noqa: BLE001 (whatever importing the user's module raised)
        raise PriorfitError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    fun = getattr(module, attr, None)
    if not callable(fun):
        raise PriorfitError(f"{module_name!r} has no function {attr!r}")
    return fun


def _space(args: argparse.Namespace):
    """The search space from ``--bounds LOW:HIGH,...`` or repeated ``--param NAME:LOW:HIGH[:int][:log]``."""
    from priorfit.bo.space import Integer, Real, Space

    if (args.bounds is None) == (not args.param):
        raise PriorfitError("give the search space by --bounds or by --param (one of them)")
    params = []
    try:
        if args.bounds is not None:
            for i, pair in enumerate(args.bounds.split(",")):
                low, high = pair.split(":")
                params.append(Real(f"x{i}", float(low), float(high)))
        else:
            for spec in args.param:
                name, low, high, *flags = spec.split(":")
                unknown = set(flags) - {"int", "log"}
                if unknown:
                    raise PriorfitError(f"--param {spec!r}: unknown flag(s) {sorted(unknown)}; use int and/or log")
                kind = Integer if "int" in flags else Real
                params.append(kind(name, float(low), float(high), log="log" in flags))
        return Space(tuple(params))
    except PriorfitError:
        raise
    except ValueError as exc:
        raise PriorfitError(f"search space: {exc} (--bounds=LOW:HIGH,LOW:HIGH or --param NAME:LOW:HIGH[:int][:log])") from None


def _cmd_bo(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from priorfit.bo import minimize
    from priorfit.bo.report import write_report

    fun = _objective(args.objective)
    space = _space(args)
    if args.budget < 1:
        raise PriorfitError(f"--budget must be a positive integer, got {args.budget}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    bar = tqdm(total=args.budget, disable=args.quiet, desc="priorfit bo")

    def progress(trial, optimizer) -> None:
        best = optimizer.best()
        bar.set_postfix(best=f"{best[1]:.6g}" if best else "none", failed=sum(not t.ok for t in optimizer.history))
        bar.update(1)

    try:
        result = minimize(fun, space, args.budget, seed=args.seed, maximize=args.maximize,
                          acquisition=args.acquisition, model=args.model, callback=progress)
    except ValueError as exc:
        raise PriorfitError(str(exc)) from None
    finally:
        bar.close()
    paths = write_report(result, args.out, title=args.objective)
    if result.n_failures == result.n_evaluations:
        print(f"every one of {result.n_evaluations} evaluations failed; the first error: "
              f"{result.history[0].error}", file=sys.stderr)
    else:
        point = ", ".join(f"{name}={value:.6g}" for name, value in zip(space.names, result.x))
        print(f"best {result.fun:.6g} at {point} after {result.n_evaluations} evaluations "
              f"({result.n_failures} failed)")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from priorfit.evaluate.config import EvaluateConfig  # light: the defaults the help quotes

    defaults = EvaluateConfig()
    parser = argparse.ArgumentParser(prog="priorfit", description="Bayesian inference in one forward pass.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a PFN on a prior", description=(
        "Train a PFN. CONFIG is a JSON file holding a TrainJob: {\"type\": \"TrainJob\", \"prior\": {...}, "
        "\"model\": {...}, \"training\": {...}} (see examples/). Resumes from OUT/train_state.pt if present."))
    p.add_argument("config", help="JSON file with the prior, model and training configuration")
    p.add_argument("--out", required=True, help="output folder (model.safetensors, train_state.pt)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a training state")
    p.add_argument("--stop-after", type=int, default=None, help="stop this run after step N (resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="warm-start a new run from this checkpoint or shipped model (the same model config, or one for more features or a non-invariant one)")
    p.add_argument("--reschedule", action="store_true",
                   help="resume although training.steps changed; the learning rate follows the new schedule")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (overrides the config's num_threads; a run resumes with any value)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="predict from CSV files", description=(
        "Condition a PFN on a training CSV and write the predictive median, mean, standard deviation and quantiles "
        "at the rows of a query CSV; for a classifier (--model of a prior of labels, or no --model and a target "
        "with no numbers), the most probable class and a column p_CLASS per class."))
    p.add_argument("--train", required=True, help="CSV with a header; features and the target column")
    p.add_argument("--query", required=True, help="CSV with the same feature columns")
    p.add_argument("--target", default=None, help="name of the target column (default: the last one); a "
                   "classifier's labels may be any text")
    p.add_argument("--model", default=None, help="checkpoint path or shipped model name (default: invariant_default; "
                   "tabular, the default classifier, when no target value is a number)")
    p.add_argument("--quantiles", default="0.05,0.5,0.95", help="comma-separated (default: 0.05,0.5,0.95)")
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="average over up to K transforms of the data under which the model's prior is invariant "
                        "(default: the model's own, as its metadata states it, else 1, the plain model; of the "
                        "shipped models only the tabular classifier states one, 2)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="arithmetic of the forward pass: bfloat16 is faster on CPUs with bfloat16 instructions, "
                        "within 0.0005 nats KL on the shipped model (default float32)")
    p.add_argument("--out", default="-", help="output CSV (default: standard output)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="fit the default model to a small dataset, compare with exact Bayes (NUTS)",
                       description="Condition the default model on a small noisy 1-D dataset, print its "
                                   "predictive mean and 90%% interval beside exact Bayes under its own prior (NUTS), "
                                   "and plot both.")
    p.add_argument("--model", default=None, help="checkpoint path or shipped model name (default: invariant_default)")
    p.add_argument("--out", default="priorfit_demo.png", help="PNG file to write (default: priorfit_demo.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo dataset")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("evaluate", help="measure a GP-prior PFN against exact inference on its own prior",
                       description="The fidelity report of DESIGN.md: on datasets from the model's own prior, per "
                                   "input dimension d and context size n, the NLL of the PFN, the oracle GP, the "
                                   "NUTS-marginalised Bayes posterior and ML-II; the PFN's gaps; 50%%/90%% "
                                   "coverage; CRPS; ms per dataset. Writes OUT/evaluate.json, evaluate.txt and "
                                   "PNG plots (nll_vs_context, calibration, examples), and OUT/references.json, the "
                                   "per-dataset NUTS and ML-II results that later runs reuse. While it runs, "
                                   "OUT/cells.partial.json holds the cells finished so far.")
    p.add_argument("model", nargs="?", default=None, help="checkpoint path or shipped model name (default: invariant_default)")
    p.add_argument("--out", default="priorfit_evaluate", help="output folder (default: priorfit_evaluate)")
    p.add_argument("--quick", action="store_true", help="a small run of seconds (d=1, n in 4,16, few datasets)")
    p.add_argument("--context", default=None, help="context sizes, e.g. 2,4,8,16,32,64,128")
    p.add_argument("--features", default=None, help="input dimensions, e.g. 1,2 (default: all the model takes)")
    p.add_argument("--datasets", type=int, default=None,
                   help=f"datasets per cell (default {defaults.n_datasets})")
    p.add_argument("--marginal-datasets", type=int, default=None,
                   help=f"of which the marginal reference (NUTS) scores the first N (default "
                        f"{defaults.marginal_datasets}; 0: no marginal column)")
    p.add_argument("--ml2-datasets", type=int, default=None,
                   help=f"of which the fitted reference (ML-II) scores the first N (default {defaults.ml2_datasets}; "
                        "0: no ML-II column)")
    p.add_argument("--nuts-warmup", type=int, default=None,
                   help=f"NUTS warm-up iterations per chain (default {defaults.nuts_warmup})")
    p.add_argument("--nuts-samples", type=int, default=None,
                   help=f"NUTS draws per chain (default {defaults.nuts_samples})")
    p.add_argument("--seed", type=int, default=None, help=f"seed of the datasets (default {defaults.seed})")
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="average the PFN over up to K transforms of each dataset under which its prior is "
                        "invariant (feature reflections and orderings, y -> -y); default 1: the plain PFN")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="arithmetic of the PFN's forward passes (default float32; bfloat16 is faster on CPUs "
                        "with bfloat16 instructions)")
    p.add_argument("--path", choices=PATHS, default=None,
                   help="user (default): each dataset in random units through PFNRegressor's defaults, as users "
                        "call it; raw: the prior's units straight into the network")
    p.add_argument("--gap-targets", default=None, metavar="D:GAP,...",
                   help="e.g. 1:0.05,2:0.05,3:0.1,4:0.1: a cell whose gap to the marginal is within two standard "
                        "errors of its target gets the marginal on all of its datasets")
    p.add_argument("--references", nargs="+", default=None, metavar="JSON",
                   help="references.json files of earlier runs on the same protocol (any model): their NUTS and "
                        "ML-II results are reused, not recomputed. OUT/references.json holds them and the new ones")
    p.add_argument("--no-new-references", action="store_true",
                   help="run no NUTS or ML-II: score those columns on the datasets --references hold")
    p.add_argument("--no-plots", action="store_true", help="write the table and JSON only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("bo", help="minimise (or maximise) a Python function by Bayesian optimisation",
                       description="Bayesian optimisation with the PFN as surrogate. OBJECTIVE is MODULE:FUNCTION "
                                   "or FILE.py:FUNCTION; the function takes the point as a float array and returns "
                                   "a number (an exception or NaN is recorded as a failed evaluation). Writes "
                                   "OUT/history.csv and OUT/best_so_far.png.")
    p.add_argument("objective", help="MODULE:FUNCTION or FILE.py:FUNCTION")
    p.add_argument("--bounds", default=None, metavar="LOW:HIGH,...",
                   help="real parameters x0, x1, ... (write --bounds=-5:10,0:15 when a bound is negative)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:LOW:HIGH[:int][:log]",
                   help="a named parameter, integer and/or log-scaled by the flags; repeat for each")
    p.add_argument("--budget", type=int, required=True, help="number of evaluations")
    p.add_argument("--maximize", action="store_true", help="maximise instead of minimise")
    p.add_argument("--acquisition", choices=("quantile", "logei", "ei", "pi", "thompson"), default="quantile",
                   help="acquisition function (default quantile: minus the predictive's 10%% quantile)")
    p.add_argument("--model", default="bo", help="checkpoint path or shipped model name (default: bo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial design and the candidates")
    p.add_argument("--out", default="priorfit_bo", help="output folder (default: priorfit_bo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_cmd_bo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PriorfitError as exc:
        print(f"priorfit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
