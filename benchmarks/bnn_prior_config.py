"""Write ``configs/bnn.json``: the training job of the shipped ``bnn`` model, whose prior is a GP-matched BNN.

The network: 2 hidden layers of 16 ReLU units, fan-in scaled weights, its per-layer scales fitted
(:func:`priorfit.priors.functional.fit_functional_prior`, 1000 steps, seed 0) to the GP of
``benchmarks/functional_prior.py`` (Matérn-5/2, lengthscale 0.3) at d = 1; noise LogNormal(-2, 1) relative to
the network's output; d <= 2 (the NUTS reference's range). The model: ``invariant_default``'s architecture for
2 features, warm-started from it (narrowed exactly). Training: as the robust model's (log-uniform context sizes,
learning rate 2e-4).

    python benchmarks/bnn_prior_config.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from priorfit.config import to_dict
from priorfit.priors import Fixed, GPPrior, LogNormal, Matern, Scale
from priorfit.priors.bnn import BNNPrior
from priorfit.priors.functional import fit_functional_prior, wasserstein

ROOT = Path(__file__).parent.parent
TARGET = GPPrior(kernel=Scale(Matern(lengthscale=Fixed(0.3)), outputscale=Fixed(1.0)), noise_std=Fixed(0.1))


def main() -> int:
    torch.set_num_threads(1)
    start = BNNPrior.with_scales(1.0, 1.0, width=16, depth=2, activation="relu", fan_in=True)
    fitted = fit_functional_prior(start, TARGET, steps=1000, seed=0).prior
    prior = BNNPrior(width=16, depth=2, activation="relu", weight_std=fitted.weight_std, bias_std=fitted.bias_std,
                     fan_in=True, noise_std=LogNormal(-2.0, 1.0), max_features=2)
    before, after = wasserstein(start, TARGET, repeats=5), wasserstein(fitted, TARGET, repeats=5)
    base = json.loads((ROOT / "configs" / "invariant_default.json").read_text())
    job = {
        "type": "TrainJob",
        "model": {**base["model"], "max_features": 2},
        "prior": to_dict(prior),
        "training": {**base["training"], "steps": 6000, "lr": 0.0002, "warmup_fraction": 0.01,
                     "checkpoint_every": 250, "eval_every": 1000, "context_sampling": "log_uniform"},
    }
    path = ROOT / "configs" / "bnn.json"
    path.write_text(json.dumps(job, indent=2) + "\n")
    fit = {"command": "python benchmarks/bnn_prior_config.py",
           "train": "priorfit train configs/bnn.json --out runs/bnn --init-from invariant_default", "weight_std": [hp.value for hp in fitted.weight_std],
           "bias_std": [hp.value for hp in fitted.bias_std], "start": vars(before), "fitted": vars(after)}
    (ROOT / "benchmarks" / "results" / "bnn_prior_config.json").write_text(json.dumps(fit, indent=2) + "\n")
    print(f"wrote {path}: scales {[hp.value for hp in fitted.weight_std]} / {[hp.value for hp in fitted.bias_std]}, "
          f"sliced W2 {before.sliced:.3f} -> {after.sliced:.3f} (floor {after.sliced_floor:.3f}); train it with "
          "`priorfit train configs/bnn.json --out runs/bnn --init-from invariant_default`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
