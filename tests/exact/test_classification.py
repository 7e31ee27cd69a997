"""The exact GP-classification posterior (NUTS over hyperparameters, class means and latents) against a slow,
obvious reference: self-normalised importance sampling with the prior as proposal, on a context small enough for
it to be exact to its Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from priorfit.exact.classification import _predictive_diagnostics, classification_predictive
from priorfit.exceptions import InputDataError
from priorfit.priors import RBF, GPClassificationPrior, GPPrior, LogNormal, Normal, Scale

from conftest import gp_classification_importance_sampling


def _prior() -> GPClassificationPrior:
    gp = GPPrior(kernel=Scale(RBF(lengthscale=LogNormal(-1.0, 0.5)), outputscale=LogNormal(1.0, 0.5)),
                 noise_std=LogNormal(-1.5, 0.5), mean=Normal(0.0, 1.0), max_features=1)
    return GPClassificationPrior(gp=gp, max_classes=3)


def test_nuts_matches_importance_sampling_on_a_small_context():
    prior = _prior()
    x_ctx = torch.tensor([[0.1], [0.35], [0.5], [0.8], [0.95]], dtype=torch.float64)
    y_ctx = torch.tensor([0.0, 0.0, 1.0, 2.0, 1.0], dtype=torch.float64)
    x_qry = torch.tensor([[0.0], [0.4], [0.7], [1.2]], dtype=torch.float64)
    exact, ess = gp_classification_importance_sampling(prior, x_ctx, y_ctx, x_qry, 3)
    assert ess > 10_000
    nuts = classification_predictive(prior, x_ctx, y_ctx, x_qry, num_warmup=300, num_samples=300, num_chains=2)
    assert nuts.diagnostics["max_r_hat"] < 1.05
    assert nuts.diagnostics["predictive_max_r_hat"] < 1.05 and nuts.diagnostics["predictive_min_ess"] > 50
    np.testing.assert_allclose(nuts.probs.sum(1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(nuts.probs.numpy(), exact.numpy(), atol=0.03)
    # and the data mattered: far from the prior's 1/3 near the points labelled 0
    assert exact[1, 0] > 0.45


def test_predictive_diagnostics_read_the_draws_chain_major():
    """The draws come chain-major (chain 0's, then chain 1's): the diagnostics equal NumPyro's on the explicit
    chains x draws array, and a shift of every other draw, which a chain-major reading spreads within both chains,
    is not flagged, while one of the second chain's draws alone is."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    gen = torch.Generator().manual_seed(0)
    grouped = 0.5 + 0.05 * torch.randn(2, 400, 3, 2, generator=gen, dtype=torch.float64)
    grouped[1] += 0.03 * torch.arange(400, dtype=torch.float64)[:, None, None] / 400  # chains that differ a little
    diag = _predictive_diagnostics(grouped.reshape(800, 3, 2), num_chains=2)
    assert diag["predictive_max_r_hat"] == pytest.approx(float(np.max(split_gelman_rubin(grouped.numpy()))))
    assert diag["predictive_min_ess"] == pytest.approx(float(np.min(effective_sample_size(grouped.numpy()))))
    flat = 0.5 + 0.05 * torch.randn(800, 3, 2, generator=gen, dtype=torch.float64)
    alternating = flat.clone()
    alternating[1::2] += 0.2  # every other draw: within each chain, not between them
    assert _predictive_diagnostics(alternating, num_chains=2)["predictive_max_r_hat"] < 1.05
    second = flat.clone()
    second[400:] += 0.2  # the second chain's 400 draws
    assert _predictive_diagnostics(second, num_chains=2)["predictive_max_r_hat"] > 1.5


def test_the_context_must_hold_every_class():
    with pytest.raises(InputDataError, match="every class"):
        classification_predictive(_prior(), torch.rand(4, 1), torch.tensor([0.0, 2.0, 0.0, 2.0]), torch.rand(2, 1))
    with pytest.raises(InputDataError, match="class indices"):
        classification_predictive(_prior(), torch.rand(4, 1), torch.tensor([0.0, 1.5, 0.0, 1.0]), torch.rand(2, 1))


def test_the_ml2_baseline_is_scikit_learn_s_laplace_fit_on_the_unit_cube():
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    from priorfit.exact.baselines import SklearnGPClassifier
    from priorfit.exact.reference import Task

    generator = torch.Generator().manual_seed(3)
    x_ctx = torch.rand(30, 2, generator=generator, dtype=torch.float64) * 50 + 7
    y_ctx = (x_ctx[:, 0] > 32).double() + (x_ctx[:, 1] > 40).double()
    x_qry = torch.rand(6, 2, generator=generator, dtype=torch.float64) * 50 + 7
    result = SklearnGPClassifier(restarts=0).predict(Task(x_ctx, y_ctx, x_qry), 0)
    probs = result.predictive.probs.numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
    lo, width = x_ctx.min(0).values, x_ctx.max(0).values - x_ctx.min(0).values
    gpc = GaussianProcessClassifier(ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.ones(2), (1e-2, 1e3), nu=2.5),
                                    random_state=0).fit(((x_ctx - lo) / width).numpy(), y_ctx.long().numpy())
    np.testing.assert_allclose(probs, gpc.predict_proba(((x_qry - lo) / width).numpy()), atol=1e-10)
    assert np.mean(probs.argmax(1) == ((x_qry[:, 0] > 32).long() + (x_qry[:, 1] > 40).long()).numpy()) >= 0.5
