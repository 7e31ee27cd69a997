"""The practitioners' fitted GP baselines: close to the exact GP when it is identifiable, and in the user's units
whatever they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from priorfit.exact.baselines import BoTorchGP, SklearnGP
from priorfit.exact.gp import GPOracle
from priorfit.exact.reference import ReferenceKind, Task
from priorfit.priors import Fixed, GPPrior, Matern, Scale


def _gp_data(n: int, m: int, seed: int):
    """One 1-D dataset from a Matérn-5/2 GP with fixed hyperparameters, which ML-II and MAP can identify."""
    prior = GPPrior(kernel=Scale(Matern(nu=2.5, lengthscale=Fixed(0.3)), outputscale=Fixed(1.0)),
                    noise_std=Fixed(0.1), max_features=1)
    batch = prior.sample(1, n + m, torch.Generator().manual_seed(seed), n_features=1)
    x, y = batch.x[0], batch.y[0]
    return prior, Task(x[:n], y[:n], x[n:], batch.params), y[n:]


@pytest.mark.parametrize("baseline", [SklearnGP(restarts=1), BoTorchGP()], ids=["sklearn", "botorch"])
def test_a_fitted_baseline_is_near_the_exact_gp_on_identifiable_data(baseline) -> None:
    assert baseline.kind is ReferenceKind.FITTED
    gaps = []
    for seed in range(4):
        prior, task, y_qry = _gp_data(64, 64, seed)
        exact = GPOracle(prior).predict(task, 0).predictive
        fitted = baseline.predict(task, seed).predictive
        gaps.append(float(np.mean(exact.log_prob(y_qry) - fitted.log_prob(y_qry))))
    assert np.mean(gaps) < 0.1, gaps


@pytest.mark.parametrize("baseline", [SklearnGP(restarts=1), BoTorchGP()], ids=["sklearn", "botorch"])
def test_a_fitted_baseline_moves_with_the_units(baseline) -> None:
    """Both put data in their own units (unit cube, standardised targets) as their users do: in other units
    the predictive moves with them (up to the optimiser's tolerance)."""
    _, task, _ = _gp_data(24, 5, 7)
    a, b, c, e = 300.0, -4e4, 1e-3, 12.0
    moved = Task(c * task.x_ctx + e, a * task.y_ctx + b, c * task.x_qry + e)
    p, q = baseline.predict(task, 0).predictive, baseline.predict(moved, 0).predictive
    np.testing.assert_allclose((q.mean - b) / a, p.mean, atol=2e-3)
    np.testing.assert_allclose(q.stddev / a, p.stddev, rtol=2e-2)
