"""The GP-matched functional prior: the assignment distance against brute force, the sliced distance's floor,
and a fit that moves a badly scaled network towards the GP."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from priorfit.priors import Fixed, GPPrior, LogNormal, Matern, Scale
from priorfit.priors.bnn import BNNPrior
from priorfit.priors.functional import _assignment_w2, _sliced_w2, fit_functional_prior, wasserstein

F64 = torch.float64
TARGET = GPPrior(kernel=Scale(Matern(lengthscale=Fixed(0.3)), outputscale=Fixed(1.0)), noise_std=Fixed(0.1))


def test_assignment_w2_is_the_best_matching() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 3, generator=g, dtype=F64) + 0.5
    brute = min(float(torch.stack([(a[i] - b[j]).square().sum() for i, j in enumerate(p)]).mean())
                for p in itertools.permutations(range(6)))
    assert float(_assignment_w2(a, b)) == pytest.approx(math.sqrt(brute), rel=1e-12)
    # 1-D: W2 between N(0, 1) and N(m, s^2) is sqrt(m^2 + (1 - s)^2); sliced in 1-D is the same distance
    x = torch.randn(20000, 1, generator=g, dtype=F64)
    y = 0.7 + 2.0 * torch.randn(20000, 1, generator=g, dtype=F64)
    assert float(_sliced_w2(x, y, torch.ones(1, 1, dtype=F64))) == pytest.approx(math.sqrt(0.49 + 1.0), rel=0.02)


def test_fit_moves_towards_the_gp_and_keeps_the_rest() -> None:
    start = BNNPrior.with_scales(1.0, 1.0, width=16, depth=2, fan_in=False)  # N(0, 1): far too large functions
    fit = fit_functional_prior(start, TARGET, steps=150, draws=128)
    before, after = wasserstein(start, TARGET, repeats=3, sliced_draws=2048), wasserstein(fit.prior, TARGET, repeats=3,
                                                                                              sliced_draws=2048)
    assert after.sliced < 0.2 * before.sliced and after.w2 < before.w2
    assert after.sliced_floor < after.sliced  # the floor is below what a fitted prior reaches
    assert fit.history[-1] < fit.history[0]
    assert (fit.prior.width, fit.prior.depth, fit.prior.fan_in) == (16, 2, False)
    assert all(isinstance(hp, Fixed) for hp in fit.prior.weight_std + fit.prior.bias_std)
    with pytest.raises(ValueError, match="Fixed"):
        fit_functional_prior(BNNPrior(weight_std=(LogNormal(0, 1),) * 3), TARGET, steps=1)
