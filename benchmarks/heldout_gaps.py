"""Training stages side by side: each model's held-out gap to the oracle on the same datasets of its prior.

  python benchmarks/heldout_gaps.py invariant_default runs/invariant_rb2 --contexts 4,32,128 --datasets 256
  python benchmarks/heldout_gaps.py invariant_default runs/probe --features 4 --contexts 32,64,128

The measure training reports every ``eval_every`` steps (mean NLL per query of the PFN minus the oracle's, the
true hyperparameters', on fixed held-out datasets: ``priorfit.training``'s evaluator), here on ``--datasets``
datasets per context size drawn once from the first model's prior and scored for every model, so that stages with
other evaluation settings compare on one set. Every model must have been trained on that same prior. Prints and
writes benchmarks/results/<stem>.{json,txt}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.config import to_dict
from priorfit.models import load_model
from priorfit.training import TrainConfig, _Evaluator

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="checkpoints, training runs' folders or shipped models' names")
    parser.add_argument("--contexts", default="4,32,128")
    parser.add_argument("--datasets", type=int, default=256)
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--features", type=int, default=None,
                        help="every held-out dataset's feature count (default: the prior's own draw)")
    parser.add_argument("--seed", type=int, default=1, help="the held-out sets' seed (training's own use 0)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stem", default="heldout_gaps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    contexts = tuple(int(v) for v in args.contexts.split(","))
    checkpoints = [load_model(m) for m in args.models]
    prior = checkpoints[0].prior
    for name, ckpt in zip(args.models, checkpoints):
        if to_dict(ckpt.prior) != to_dict(prior):
            raise SystemExit(f"{name} was trained on another prior than {args.models[0]}")
        if ckpt.model_config.n_classes:
            raise SystemExit(f"{name} is a classifier; its training has no oracle gap")
    config = TrainConfig(eval_context=contexts, eval_datasets=args.datasets, eval_queries=args.queries,
                         max_context=max(contexts), n_points=max(contexts) + args.queries, seed=args.seed)
    if args.features is not None and not 1 <= args.features <= checkpoints[0].model_config.max_features:
        raise SystemExit(f"--features must be in 1..{checkpoints[0].model_config.max_features}, got {args.features}")
    evaluator = _Evaluator(prior, config, n_features=args.features)
    rows = []
    for name, ckpt in zip(args.models, checkpoints):
        out = evaluator(ckpt.model, ckpt.bar_distribution, torch.device("cpu"))
        rows.append(dict(model=name, step=ckpt.metadata.get("step"), weights_sha256=ckpt.weights_sha256(),
                         gaps={n: out[f"gap@{n}"] for n in contexts}))
        print(name, {n: round(out[f"gap@{n}"], 4) for n in contexts}, flush=True)
    features = "the prior's feature counts" if args.features is None else f"{args.features} features"
    lines = [f"held-out gap to the oracle (nats per query), {args.datasets} datasets x {args.queries} queries per n, "
             f"{features}, seed {args.seed}", "",
             f"{'model':>40} {'step':>7} | " + " ".join(f"{'n=' + str(n):>8}" for n in contexts)]
    for r in rows:
        lines.append(f"{r['model']:>40} {str(r['step']):>7} | " + " ".join(f"{r['gaps'][n]:8.4f}" for n in contexts))
    text = "\n".join(lines) + "\n"
    data = dict(command="python benchmarks/heldout_gaps.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                rows=rows, contexts=list(contexts), datasets=args.datasets, queries=args.queries, seed=args.seed,
                features=args.features)
    atomic_write_json((RESULTS / args.stem).with_suffix(".json"), data)
    atomic_write_text((RESULTS / args.stem).with_suffix(".txt"), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
