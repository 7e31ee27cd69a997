"""Would a per-feature input transform help the tabular classifier? A preview before training with one.

On the real-data benchmark's splits (``classification.py``'s sets, sizes and seeded stratified splits; the first
``--splits`` of them), a classifier that was *not* trained on transformed inputs is fitted three ways: on the raw
features (``raw``); on the features after a transform fitted on the training rows and applied to both (named by
``--transform``: ``power``, :class:`priorfit.preprocessing.PowerTransform`, what ``ModelConfig.power_transform``
does inside the network; ``robust``, :class:`priorfit.preprocessing.RobustInputTransform`, what
``ModelConfig.robust_inputs`` does; ``rank``, each feature's mid-rank within the training rows, which no model
option does; ``axes``, the context's principal axes, :class:`priorfit.principal_axes.PrincipalAxes`, the view
``TrainConfig.principal_axes_rate`` trains on); and the average of those two's probabilities (``both``). Mean log loss per cell, and its excess over
the best of the five baselines stored by the real-data benchmark. It says which cells a stage trained with the
transform might move, not what that stage will give: the network here never saw transformed inputs in training.

    python benchmarks/input_transform_preview.py --model tabular --transform robust --splits 20 --threads 1
    python benchmarks/input_transform_preview.py --model tabular --transform axes --splits 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from classification import RESULTS, on_classes, real_cells, stratified_split, write_results  # noqa: E402

from priorfit.estimators import PFNClassifier  # noqa: E402
from priorfit.models import load_model  # noqa: E402
from priorfit.preprocessing import PowerTransform, RobustInputTransform  # noqa: E402
from priorfit.principal_axes import PrincipalAxes, trained_on_principal_axes  # noqa: E402
from priorfit.seeding import derive_seed  # noqa: E402

#: The baselines' figures on the same splits, per group, as the real-data benchmark stored them.
BASELINES = {"tuned": RESULTS / "classification_real.json",
             "held-out": RESULTS / "classification_real_heldout_tabular.json"}


def ranks(X_train: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Each feature of X as its mid-rank among the training rows' values, in [0, 1]."""
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        s = np.sort(X_train[:, j])
        out[:, j] = (np.searchsorted(s, X[:, j], "left") + np.searchsorted(s, X[:, j], "right")) / (2 * len(s))
    return out


def transformed(name: str, X_train: np.ndarray, X: np.ndarray) -> np.ndarray:
    """X under the transform ``name`` fitted to the training rows."""
    if name == "rank":
        return ranks(X_train, X)
    fitted = {"power": PowerTransform, "robust": RobustInputTransform,
              "axes": PrincipalAxes}[name].fit(torch.as_tensor(X_train)[None])
    return fitted(torch.as_tensor(X)[None])[0].numpy()


def best_baselines(splits: int) -> dict:
    """(group, dataset, n) -> the lowest mean log loss of the five baselines, where they were measured over the
    same splits (none otherwise: a mean over other splits is no comparison)."""
    best = {}
    for group, path in BASELINES.items():
        stored = json.loads(path.read_text())
        if stored.get("splits", 20) != splits:
            continue
        for cell in stored["cells"]:
            best[group, cell["dataset"], cell["n"]] = min(v["log_loss"] for m, v in cell["methods"].items()
                                                          if m != "pfn")
    return best


def probabilities(model: str, X_train, y_train, X_test, classes) -> np.ndarray:
    """The classifier's probabilities over all of the dataset's ``classes`` (zero for any the split lacks)."""
    clf = PFNClassifier(model=model, ensemble_size=1).fit(X_train, y_train)  # the network alone
    return on_classes(clf.predict_proba(X_test), clf.classes_, classes)


def run(args) -> dict:
    from sklearn.metrics import log_loss

    checkpoint = load_model(args.model)
    config = checkpoint.model_config
    if args.transform == "axes":
        if trained_on_principal_axes(checkpoint):
            raise SystemExit(f"--model {args.model} was trained on the principal-axes view; the preview is for a "
                             "model trained without it")
    elif config.power_transform or config.robust_inputs:
        raise SystemExit(f"--model {args.model} already transforms its inputs (power_transform or robust_inputs); "
                         "the preview is for a model trained without one")
    ways = ("raw", args.transform, "both")
    best = best_baselines(args.splits)
    cells = []
    for group, source, X, y, classes, n in real_cells(("tuned", "held-out")):
        losses = {way: [] for way in ways}
        for split in range(args.splits):
            train, test = stratified_split(y, n, derive_seed(split, len(y), n))
            changed = transformed(args.transform, X[train], X)
            raw = probabilities(args.model, X[train], y[train], X[test], classes)
            other = probabilities(args.model, changed[train], y[train], changed[test], classes)
            truth = np.searchsorted(classes, y[test])
            for way, p in zip(ways, (raw, other, 0.5 * (raw + other))):  # as the benchmark scores it
                losses[way].append(float(log_loss(truth, p, labels=np.arange(len(classes)))))
        cell = dict(group=group, dataset=source.name, n=n,
                    log_loss={way: float(np.mean(v)) for way, v in losses.items()},
                    log_loss_se={way: float(np.std(v, ddof=1) / np.sqrt(len(v))) for way, v in losses.items()},
                    best_baseline=best.get((group, source.name, n)))
        cells.append(cell)
        print(f"{group:>8} {source.name:>13} n={n:>3} "
              + " ".join(f"{w}={cell['log_loss'][w]:.3f}" for w in ways), flush=True)
    return dict(model=args.model, model_step=checkpoint.metadata.get("step"),
                model_weights_sha256=checkpoint.weights_sha256(), splits=args.splits, threads=args.threads,
                transform=args.transform, ways=list(ways), cells=cells,
                command=" ".join(["python", "benchmarks/input_transform_preview.py", *sys.argv[1:]]))


def table(data: dict) -> str:
    ways = data.get("ways", ["raw", "power", "both"])  # a results file from before --transform named no ways
    other = ways[1]
    lines = [f"{'group':>8} {'dataset':>13} {'n':>4} | " + " ".join(f"{w:>7}" for w in ways) + f" | {other} - raw"
             + " | best baseline", "-" * 82]
    for c in data["cells"]:
        loss = c["log_loss"]
        best = c.get("best_baseline")
        lines.append(f"{c['group']:>8} {c['dataset']:>13} {c['n']:>4} | " + " ".join(f"{loss[w]:7.3f}" for w in ways)
                     + f" | {loss[other] - loss['raw']:+.3f}" + ("" if best is None else f" | {best:.3f}"))
    better = sum(c["log_loss"][other] < c["log_loss"]["raw"] for c in data["cells"])
    lines.append(f"\n{data['model']} (step {data['model_step']}, weights sha256 {data['model_weights_sha256'][:12]}), "
                 f"{data['splits']} splits: {other} below raw in {better} of {len(data['cells'])} cells (a network "
                 "never trained on transformed inputs)")
    for group in ("tuned", "held-out"):
        cells = [c for c in data["cells"] if c["group"] == group and c.get("best_baseline") is not None]
        if not cells:
            continue
        for way in ways:
            excess = np.array([c["log_loss"][way] - c["best_baseline"] for c in cells])
            lines.append(f"{group} cells, {way}: mean excess over the best baseline {excess.mean():+.4f}, within 0.02 "
                         f"in {int((excess <= 0.02).sum())} of {len(cells)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tabular", help="shipped model name or checkpoint path")
    parser.add_argument("--splits", type=int, default=20,
                        help="the first this many of the benchmark's splits (the excess over the stored baselines "
                             "is given only for all 20)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--transform", choices=("power", "robust", "rank", "axes"), default="power")
    parser.add_argument("--stem", default=None, help="results file stem (default: TRANSFORM_transform_preview)")
    args = parser.parse_args(argv)
    if args.splits < 2:
        parser.error("--splits must be at least 2 (a standard error needs two)")
    args.stem = args.stem or f"{args.transform}_transform_preview"
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # out-of-range queries: the benchmark's own runs say so once, here it is noise
    data = run(args)
    write_results(args.stem, data, table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
