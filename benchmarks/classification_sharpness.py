"""How sharp are a tabular prior's labels, and how confident is a model on real data? Two diagnostics.

``--part prior --config CONFIG``: for each component of the classification prior a training config names, the
distribution over its datasets of the Bayes floor: the mean entropy (nats) of the query labels' true class
probabilities, what even an oracle that knows the dataset's function loses per query. A prior whose datasets
almost never have a floor near 0 teaches its network never to commit, however cleanly a real dataset separates.

``--part temper --model MODEL``: on the real-data benchmark's cells (``classification.py``'s sets, sizes and seeded
splits; by default the tuned and first held-out groups), the PFN's mean log loss after its probabilities are raised to a power t and
renormalised, for each t in ``--powers`` (t > 1 sharpens). A calibrated model's best t is near 1; a best t above 1
says it is under-confident there. It is a diagnosis of the model on each group, not a method: choosing t on these
cells and scoring on them would be tuning on the test data.

    python benchmarks/classification_sharpness.py --part prior --config configs/classifier_tabular_robust_tails.json
    python benchmarks/classification_sharpness.py --part temper --model tabular --threads 1
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from classification import (GROUPS, SIZES, on_classes, oracle_probabilities, real_cells,  # noqa: E402
                            stratified_split, write_results)

from priorfit.config import load_json  # noqa: E402
from priorfit.estimators import PFNClassifier  # noqa: E402
from priorfit.priors import MixturePrior  # noqa: E402
from priorfit.seeding import derive_seed  # noqa: E402
from priorfit.training import TrainJob  # noqa: E402

#: The Bayes floors (nats a query) the prior part counts datasets below.
FLOORS = (0.02, 0.05, 0.1, 0.2)


def bayes_floor(prior, generator: torch.Generator, features: tuple[int, int], n: int, queries: int) -> float:
    """One dataset's mean entropy of its query labels' true class probabilities, at a number of features uniform on
    ``features`` (least, most), as training draws it."""
    d = int(torch.randint(features[0], features[1] + 1, (1,), generator=generator))
    batch = prior.sample(1, n + queries, generator, n_features=d, n_context=n)
    p = oracle_probabilities(batch.params, n).double().clamp_min(1e-300)
    return float(-(p * p.log()).sum(-1).mean())


def run_prior(args) -> dict:
    job = load_json(args.config, TrainJob)
    prior = job.prior
    parts = list(zip(prior.priors, prior.weights)) if isinstance(prior, MixturePrior) else [(prior, 1.0)]
    total = sum(w for _, w in parts)
    components = []
    for index, (component, weight) in enumerate(parts):
        generator = torch.Generator().manual_seed(derive_seed(args.seed, index))
        features = (job.training.min_features, prior.max_features)
        floors = np.array([bayes_floor(component, generator, features, args.context, args.queries)
                           for _ in range(args.datasets)])
        components.append(dict(component=type(component).__name__, weight=weight / total,
                               median=float(np.median(floors)),
                               below={str(f): float(np.mean(floors < f)) for f in FLOORS}))
        print(f"{components[-1]['component']}: median {components[-1]['median']:.3f}", flush=True)
    mixture = {str(f): sum(c["weight"] * c["below"][str(f)] for c in components) for f in FLOORS}
    return dict(part="prior", config=args.config, datasets=args.datasets, context=args.context, queries=args.queries,
                seed=args.seed, components=components, mixture_below=mixture)


def run_temper(args) -> dict:
    from sklearn.metrics import log_loss

    powers = [float(t) for t in args.powers.split(",")]
    cells = []
    for group, source, X, y, classes, n in real_cells(args.groups.split(",")):
        losses = {t: [] for t in powers}
        for split in range(args.splits):
            train, test = stratified_split(y, n, derive_seed(split, len(y), n))
            clf = PFNClassifier(model=args.model, ensemble_size=args.ensemble).fit(X[train], y[train])
            p = np.clip(on_classes(clf.predict_proba(X[test]), clf.classes_, classes), 1e-300, None)
            truth = np.searchsorted(classes, y[test])
            for t in powers:
                q = p ** t
                losses[t].append(float(log_loss(truth, q / q.sum(1, keepdims=True), labels=np.arange(len(classes)))))
        cells.append(dict(group=group, dataset=source.name, n=n,
                          log_loss={str(t): float(np.mean(v)) for t, v in losses.items()}))
        print(f"{group:>8} {source.name:>13} n={n:>3} "
              + " ".join(f"t={t}: {np.mean(v):.3f}" for t, v in losses.items()), flush=True)
    return dict(part="temper", model=args.model, ensemble=args.ensemble, splits=args.splits, powers=powers,
                groups=args.groups.split(","), cells=cells)


def table(data: dict) -> str:
    if data["part"] == "prior":
        lines = [f"{data['config']}: Bayes floor (nats a query) of {data['datasets']} datasets a component, "
                 f"n = {data['context']}, {data['queries']} queries, features drawn as in training",
                 f"{'component':>28} {'weight':>6} {'median':>6} | " + " ".join(f"< {f:<5}" for f in FLOORS),
                 "-" * 76]
        for c in data["components"]:
            lines.append(f"{c['component']:>28} {c['weight']:6.2f} {c['median']:6.3f} | "
                         + " ".join(f"{c['below'][str(f)]:7.2f}" for f in FLOORS))
        lines.append(f"{'mixture':>28} {1:6.2f} {'':>6} | "
                     + " ".join(f"{data['mixture_below'][str(f)]:7.2f}" for f in FLOORS))
        return "\n".join(lines) + "\n"
    powers = [str(t) for t in data["powers"]]
    lines = [f"{data['model']} (ensemble {data['ensemble']}), {data['splits']} splits: mean log loss with the "
             "probabilities raised to t",
             f"{'group':>8} {'dataset':>13} {'n':>4} | " + " ".join(f"t={t:<5}" for t in powers), "-" * 70]
    for c in data["cells"]:
        lines.append(f"{c['group']:>8} {c['dataset']:>13} {c['n']:>4} | "
                     + " ".join(f"{c['log_loss'][t]:7.3f}" for t in powers))
    lines.append("")
    for group in dict.fromkeys(c["group"] for c in data["cells"]):
        for n in SIZES:
            cells = [c for c in data["cells"] if c["group"] == group and c["n"] == n]
            if cells:
                change = [np.mean([c["log_loss"][t] - c["log_loss"][powers[0]] for c in cells]) for t in powers]
                lines.append(f"{group:>8} n = {n:>3} ({len(cells)} cells): mean change against t = {powers[0]}: "
                             + " ".join(f"t={t}: {x:+.4f}" for t, x in zip(powers, change)))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("prior", "temper"), required=True)
    parser.add_argument("--config", help="--part prior: the training config whose prior is described")
    parser.add_argument("--datasets", type=int, default=300, help="--part prior: datasets a component")
    parser.add_argument("--context", type=int, default=128, help="--part prior: context size of each dataset")
    parser.add_argument("--queries", type=int, default=128, help="--part prior: queries of each dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="tabular", help="--part temper: shipped model name or checkpoint path")
    parser.add_argument("--ensemble", type=int, default=1, help="--part temper: the PFN's ensemble_size")
    parser.add_argument("--splits", type=int, default=20, help="--part temper: the first this many splits")
    parser.add_argument("--powers", default="1,1.2,1.4,1.7", help="--part temper: powers, the first the reference")
    parser.add_argument("--groups", default="tuned,held-out",
                        help="--part temper: comma-separated groups of real sets (default tuned,held-out: the second "
                             "held-out group is kept for judging stages)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stem", required=True, help="results file stem under benchmarks/results")
    args = parser.parse_args(argv)
    if args.part == "prior" and not args.config:
        parser.error("--part prior needs --config")
    unknown = set(args.groups.split(",")) - set(GROUPS)
    if unknown:
        parser.error(f"--groups: {sorted(unknown)} are not groups ({', '.join(GROUPS)})")
    for name in ("datasets", "context", "queries", "splits", "ensemble", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # out-of-range queries: the benchmark's own runs say so once, here it is noise
    data = run_prior(args) if args.part == "prior" else run_temper(args)
    data["command"] = " ".join(["python", "benchmarks/classification_sharpness.py", *sys.argv[1:]])
    write_results(args.stem, data, table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
