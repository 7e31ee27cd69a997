"""Acquisitions on a bar distribution against Monte Carlo from the same distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from priorfit.bo.acquisition import Acquisition
from priorfit.model.bar_distribution import BarDistribution


@pytest.fixture(scope="module")
def bars_and_logits():
    gen = torch.Generator().manual_seed(0)
    bars = BarDistribution.from_samples(torch.randn(20_000, generator=gen, dtype=torch.float64), 40,
                                        tail_bars=4, tail_reach=50.0)
    logits = 2.0 * torch.randn(3, 40, generator=gen, dtype=torch.float64)
    return bars, logits


@pytest.mark.parametrize("name", ["ei", "logei", "pi", "quantile"])
@pytest.mark.parametrize("best", [-1.5, 0.0, 0.7])
def test_each_acquisition_matches_monte_carlo(bars_and_logits, name, best) -> None:
    bars, logits = bars_and_logits
    loc, scale = 3.0, 2.0
    y = loc + scale * bars.sample(logits, (400_000,), generator=torch.Generator().manual_seed(1))  # S x 3
    best_user = loc + scale * best
    acq = Acquisition(name, level=0.2)
    got = acq.score(bars, logits, loc, scale, best_user)
    improvement = (best_user - y).clamp_min(0.0)
    if name == "ei":
        want, se = improvement.mean(0), improvement.std(0) / math.sqrt(y.shape[0])
        assert ((got - want).abs() <= 5 * se + 1e-9).all()
    elif name == "logei":
        want, se = improvement.mean(0), improvement.std(0) / math.sqrt(y.shape[0])
        assert ((got.exp() - want).abs() <= 5 * se + 1e-9).all()
    elif name == "pi":
        want = (y < best_user).double().mean(0)
        assert ((got - want).abs() <= 5 * (want * (1 - want) / y.shape[0]).sqrt() + 1e-4).all()
    else:
        want = -torch.quantile(y, 0.2, dim=0)
        assert torch.allclose(got, want, atol=0.02)


def test_log_ei_stays_finite_where_ei_underflows(bars_and_logits) -> None:
    bars, logits = bars_and_logits
    acq_log, acq = Acquisition("logei"), Acquisition("ei")
    for best in (-2.0, -60.0, -1e3, -1e5):
        lei = acq_log.score(bars, logits, 0.0, 1.0, best)
        ei = acq.score(bars, logits, 0.0, 1.0, best)
        assert torch.isfinite(lei).all()
        representable = ei > 1e-290
        assert torch.allclose(lei[representable], ei[representable].log(), atol=1e-9)
    assert (acq.score(bars, logits, 0.0, 1.0, -1e5) == 0).all()  # where plain EI has nothing left to say
    # and its gradient in the logits is finite there too
    x = logits.clone().requires_grad_(True)
    acq_log.score(bars, x, 0.0, 1.0, -1e5).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_fantasy_average_is_the_log_of_the_mean_for_log_ei() -> None:
    scores = torch.log(torch.tensor([[1e-3, 2.0], [3e-3, 4.0]], dtype=torch.float64))
    np.testing.assert_allclose(Acquisition("logei").average(scores).exp().numpy(), [2e-3, 3.0])
    np.testing.assert_allclose(Acquisition("ei").average(scores.exp()).numpy(), [2e-3, 3.0])


def test_unknown_acquisition_is_named() -> None:
    with pytest.raises(ValueError, match="acquisition must be one of"):
        Acquisition("ucb2")
    with pytest.raises(ValueError, match="level"):
        Acquisition("quantile", level=1.5)
