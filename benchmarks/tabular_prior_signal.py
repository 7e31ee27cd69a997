"""How much of a dataset's labels a logistic regression explains: real tabular sets against a prior's draws.

  python benchmarks/tabular_prior_signal.py                 # the SCM prior's defaults
  python benchmarks/tabular_prior_signal.py --prior configs/classifier_tabular.json

A prior for real tabular data should draw datasets whose labels are about as predictable from the features as
real sets' are. The figure per dataset: 1 - (test log loss of a logistic regression, C = 1, on standardised
features) / (test log loss of the training labels' class frequencies), trained on n = 128 points, tested on up to
300 others. Real sets: those of benchmarks/classification.py (one random split each). Prior draws: ``--draws``
datasets, d uniform on 3 ... 8 and 2 or 3 classes, from each component of the prior (a MixturePrior's
components apart). Prints and writes benchmarks/results/tabular_prior_signal.{json,txt}.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.config import load_json, to_dict
from priorfit.priors import MixturePrior, SCMClassificationPrior
from priorfit.training import TrainJob

sys.path.insert(0, str(Path(__file__).parent))
from classification import RESULTS, SOURCES, load  # noqa: E402

N_TRAIN = 128
N_TEST = 300


def explained(X: np.ndarray, y: np.ndarray, seed: int = 0) -> float | None:
    """The share of the class frequencies' test log loss a logistic regression removes (None when the training
    rows miss a class)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[:N_TRAIN], order[N_TRAIN:N_TRAIN + N_TEST]
    classes = np.unique(y[train])
    if len(classes) < len(np.unique(y)) or len(classes) < 2:
        return None
    scaler = StandardScaler().fit(X[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(X[train]), y[train])
    truth = np.searchsorted(classes, y[test])
    frequencies = np.array([(y[train] == c).mean() for c in classes])
    labels = np.arange(len(classes))
    fitted = log_loss(truth, model.predict_proba(scaler.transform(X[test])), labels=labels)
    base = log_loss(truth, np.tile(frequencies, (len(test), 1)), labels=labels)
    return float(1.0 - fitted / base)


def prior_draws(prior, draws: int, seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    values = []
    while len(values) < draws:
        d = int(torch.randint(3, min(8, prior.max_features) + 1, (1,), generator=generator))
        n_classes = int(torch.randint(2, 4, (1,), generator=generator))
        batch = prior.sample(1, N_TRAIN + N_TEST, generator, n_features=d, n_context=N_TRAIN, n_classes=n_classes)
        value = explained(batch.x[0].numpy(), batch.y[0].numpy())
        if value is not None:
            values.append(value)
    return values


def summary(values: list[float]) -> dict:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return dict(median=float(median), q1=float(q1), q3=float(q3), count=len(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default=None, help="a training config whose prior to draw from (default: the "
                                                      "SCM prior's defaults)")
    parser.add_argument("--draws", type=int, default=100, help="datasets per prior component (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stem", default="tabular_prior_signal")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    real = {}
    for source in SOURCES:
        X, y, _ = load(source)
        real[source.name] = explained(X, np.asarray(y))
    prior = SCMClassificationPrior() if args.prior is None else load_json(args.prior, TrainJob).prior
    components = prior.priors if isinstance(prior, MixturePrior) else (prior,)
    priors = []
    for component in components:
        values = prior_draws(component, args.draws, args.seed)
        priors.append(dict(prior=to_dict(component), **summary(values)))
    data = dict(command="python benchmarks/tabular_prior_signal.py " + " ".join(argv if argv is not None else
                                                                                 sys.argv[1:]),
                real=real, real_summary=summary(list(real.values())), priors=priors)
    lines = ["share of the labels' log loss a logistic regression explains, n = 128 (1 = all, 0 = none)", "",
             "real sets: " + ", ".join(f"{k} {v:.2f}" for k, v in real.items()),
             f"real sets: median {data['real_summary']['median']:.2f}, quartiles {data['real_summary']['q1']:.2f}"
             f" - {data['real_summary']['q3']:.2f}"]
    for p in priors:
        lines.append(f"{p['prior']['type']}: median {p['median']:.2f}, quartiles {p['q1']:.2f} - {p['q3']:.2f} "
                     f"({p['count']} datasets)")
    text = "\n".join(lines) + "\n"
    out = RESULTS / args.stem
    atomic_write_json(out.with_suffix(".json"), data)
    atomic_write_text(out.with_suffix(".txt"), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
