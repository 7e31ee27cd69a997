"""The BoTorch adapter: BoTorch's own acquisitions and optimize_acqf run on the PFN's posterior."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
from botorch.optim import optimize_acqf
from botorch.sampling.normal import SobolQMCNormalSampler

from priorfit.bo.botorch_adapter import PFNModel


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(10, 2, generator=gen, dtype=torch.float64)
    Y = torch.sin(5 * X[:, :1]) + X[:, 1:]
    return PFNModel(X, Y, model=tiny_checkpoint)


BOUNDS = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)


def test_posterior_moments_and_samples_agree_with_the_pfn(model) -> None:
    X = torch.rand(5, 1, 2, dtype=torch.float64)
    posterior = model.posterior(X)
    predictive = model.surrogate.predictive(X[:, 0].numpy())
    np.testing.assert_allclose(posterior.mean[:, 0, 0].detach().numpy(), predictive.mean, rtol=1e-5)
    np.testing.assert_allclose(posterior.variance[:, 0, 0].detach().numpy(), predictive.variance, rtol=1e-5)
    with torch.no_grad():
        samples = posterior.rsample(torch.Size([20_000]))
    assert samples.shape == (20_000, 5, 1, 1)
    # the samples' quantiles are the predictive's (inverse-CDF sampling)
    want = predictive.quantile([0.25, 0.5, 0.75])
    got = torch.quantile(samples[:, :, 0, 0], torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0).T
    np.testing.assert_allclose(got.numpy(), want, atol=0.05 * np.ptp(want) + 0.02)


def test_samples_are_differentiable_and_joint(model) -> None:
    X = torch.rand(3, 2, 2, dtype=torch.float64, requires_grad=True)
    sampler = SobolQMCNormalSampler(torch.Size([16]), seed=0)
    samples = sampler(model.posterior(X))
    assert samples.shape == (16, 3, 2, 1)
    samples.sum().backward()
    assert torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0
    again = sampler(model.posterior(X.detach()))  # fixed base samples: deterministic
    torch.testing.assert_close(again, samples.detach())


def test_q_batch_samples_are_joint() -> None:
    """With the shipped model: at two nearby points beyond the data, where the function (not the noise) is what
    is uncertain, the second sample moves with the first, as the PFN is conditioned on it (measured r = 0.99;
    independent draws would give r ~ 0 +- 0.04)."""
    gen = torch.Generator().manual_seed(1)
    X = 0.5 * torch.rand(10, 1, generator=gen, dtype=torch.float64)
    joint = PFNModel(X, torch.sin(5 * X))
    points = torch.tensor([[[0.70], [0.72]]], dtype=torch.float64)
    with torch.no_grad():
        samples = SobolQMCNormalSampler(torch.Size([512]), seed=0)(joint.posterior(points))[:, 0, :, 0]
    assert np.corrcoef(samples.T.numpy())[0, 1] > 0.8


def test_optimize_acqf_runs_botorch_log_ei_and_q_log_ei(model) -> None:
    best = model.train_targets.max()
    candidate, value = optimize_acqf(LogExpectedImprovement(model, best_f=best), BOUNDS, q=1, num_restarts=2,
                                     raw_samples=32)
    assert candidate.shape == (1, 2) and ((candidate >= 0) & (candidate <= 1)).all() and torch.isfinite(value)
    acq = qLogExpectedImprovement(model, best_f=best, sampler=SobolQMCNormalSampler(torch.Size([8]), seed=0))
    candidate, value = optimize_acqf(acq, BOUNDS, q=2, num_restarts=1, raw_samples=8, options=dict(maxiter=5))
    assert candidate.shape == (2, 2) and torch.isfinite(value)


def test_bad_shapes_are_named(tiny_checkpoint) -> None:
    with pytest.raises(ValueError, match="n x 1"):
        PFNModel(torch.rand(4, 2, dtype=torch.float64), torch.rand(4, dtype=torch.float64), model=tiny_checkpoint)
