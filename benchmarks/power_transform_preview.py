"""Would a per-feature power transform help the tabular classifier? A preview before training one.

On the real-data benchmark's splits (``classification.py``'s sets, sizes and seeded stratified splits; the first
``--splits`` of them), a classifier that was *not* trained on transformed inputs is fitted three ways: on the raw
features (``raw``); on the features after :class:`priorfit.preprocessing.PowerTransform`, fitted on the training
rows and applied to both (``power``: what a model with ``ModelConfig.power_transform`` does inside, here done
outside it); and the average of those two's probabilities (``both``). Mean log loss per cell. It says which cells a
stage trained with the transform might move, not what that stage will give: the network here never saw
transformed inputs in training.

    python benchmarks/power_transform_preview.py --model tabular --splits 10 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from classification import GROUPS, MIN_TEST, RESULTS, SIZES, load, stratified_split  # noqa: E402

from priorfit.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from priorfit.estimators import PFNClassifier  # noqa: E402
from priorfit.models import load_model  # noqa: E402
from priorfit.preprocessing import PowerTransform  # noqa: E402
from priorfit.seeding import derive_seed  # noqa: E402

WAYS = ("raw", "power", "both")


def probabilities(model: str, X_train, y_train, X_test, classes) -> np.ndarray:
    """The classifier's probabilities over all of the dataset's ``classes`` (zero for any the split lacks)."""
    clf = PFNClassifier(model=model).fit(X_train, y_train)
    full = np.zeros((len(X_test), len(classes)))
    full[:, np.searchsorted(classes, clf.classes_)] = clf.predict_proba(X_test)
    return full


def run(args) -> dict:
    cells = []
    for group in ("tuned", "held-out"):
        for source in GROUPS[group]:
            X, y, _ = load(source)
            classes = np.unique(y)
            for n in SIZES:
                if len(y) - n < MIN_TEST:
                    continue
                losses = {way: [] for way in WAYS}
                for split in range(args.splits):
                    train, test = stratified_split(y, n, derive_seed(split, len(y), n))
                    transform = PowerTransform.fit(torch.as_tensor(X[train])[None])
                    power_X = transform(torch.as_tensor(X)[None])[0].numpy()
                    raw = probabilities(args.model, X[train], y[train], X[test], classes)
                    power = probabilities(args.model, power_X[train], y[train], power_X[test], classes)
                    truth = np.searchsorted(classes, y[test])
                    for way, p in (("raw", raw), ("power", power), ("both", 0.5 * (raw + power))):
                        losses[way].append(float(-np.log(np.clip(p[np.arange(len(truth)), truth], 1e-300, 1)).mean()))
                cell = dict(group=group, dataset=source.name, n=n,
                            log_loss={way: float(np.mean(v)) for way, v in losses.items()},
                            log_loss_se={way: float(np.std(v, ddof=1) / np.sqrt(len(v))) for way, v in losses.items()})
                cells.append(cell)
                print(f"{group:>8} {source.name:>13} n={n:>3} "
                      + " ".join(f"{w}={cell['log_loss'][w]:.3f}" for w in WAYS), flush=True)
    checkpoint = load_model(args.model)
    return dict(model=args.model, model_step=checkpoint.metadata.get("step"),
                model_weights_sha256=checkpoint.weights_sha256(), splits=args.splits, threads=args.threads,
                cells=cells, command=" ".join(["python", "benchmarks/power_transform_preview.py", *sys.argv[1:]]))


def table(data: dict) -> str:
    lines = [f"{'group':>8} {'dataset':>13} {'n':>4} | " + " ".join(f"{w:>7}" for w in WAYS) + " | power - raw",
             "-" * 66]
    for c in data["cells"]:
        loss = c["log_loss"]
        lines.append(f"{c['group']:>8} {c['dataset']:>13} {c['n']:>4} | " + " ".join(f"{loss[w]:7.3f}" for w in WAYS)
                     + f" | {loss['power'] - loss['raw']:+.3f}")
    better = sum(c["log_loss"]["power"] < c["log_loss"]["raw"] for c in data["cells"])
    lines.append(f"\n{data['model']} (step {data['model_step']}, weights sha256 {data['model_weights_sha256'][:12]}), "
                 f"{data['splits']} splits: power below raw in {better} of {len(data['cells'])} cells (a network never "
                 "trained on transformed inputs)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tabular", help="shipped model name or checkpoint path")
    parser.add_argument("--splits", type=int, default=10, help="the first this many of the benchmark's splits")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stem", default="power_transform_preview")
    args = parser.parse_args(argv)
    if args.splits < 2:
        parser.error("--splits must be at least 2 (a standard error needs two)")
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # out-of-range queries: the benchmark's own runs say so once, here it is noise
    data = run(args)
    atomic_write_json(RESULTS / f"{args.stem}.json", data)
    text = table(data)
    atomic_write_text(RESULTS / f"{args.stem}.txt", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
