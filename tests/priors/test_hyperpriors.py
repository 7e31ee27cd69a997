"""Hyperprior densities against their samplers: each integrates to 1 and its sample moments match."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from priorfit.config import from_dict, to_dict
from priorfit.priors.hyperpriors import (
    DimensionScaledLogNormal,
    Gamma,
    HalfCauchy,
    InverseGamma,
    LogNormal,
    Shifted,
)


@pytest.mark.parametrize("prior", [LogNormal(1.95, 1.0), Gamma(2.0, 0.1), InverseGamma(3.0, 2.0), HalfCauchy(1.0),
                                   Shifted(LogNormal(1.95, 1.0), 1.0), Shifted(Gamma(2.0, 0.5), -3.0)])
def test_density_integrates_to_one_and_matches_samples(prior) -> None:
    low, high = prior.support.low, prior.support.high

    def pdf(v: float) -> float:
        return math.exp(float(prior.log_prob(torch.tensor(v, dtype=torch.float64))))

    total = integrate.quad(pdf, low, high, limit=400)[0]
    assert total == pytest.approx(1.0, abs=1e-6)
    draws = prior.sample((200_000,), torch.Generator().manual_seed(0)).numpy()
    assert draws.min() > low
    # the sampler's quartiles against the density's CDF at them
    for q in (0.25, 0.5, 0.75):
        cdf = integrate.quad(pdf, low, float(np.quantile(draws, q)), limit=400)[0]
        assert cdf == pytest.approx(q, abs=0.005)


def test_shifted_bounds_the_support_and_round_trips() -> None:
    prior = Shifted(LogNormal(1.95, 1.0), 1.0)
    values = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    log_p = prior.log_prob(values)
    assert torch.isinf(log_p[:2]).all() and torch.isfinite(log_p[2])
    assert log_p[2] == LogNormal(1.95, 1.0).log_prob(torch.tensor(1.0, dtype=torch.float64))
    assert from_dict(to_dict(prior)) == prior
    with pytest.raises(TypeError, match="base"):
        Shifted(1.0, 1.0)
    with pytest.raises(ValueError, match="shift"):
        Shifted(LogNormal(0.0, 1.0), math.nan)


def test_dimension_scaled_log_normal_is_a_log_normal_whose_median_grows_with_the_dimension() -> None:
    prior = DimensionScaledLogNormal()  # BoTorch's: LN(sqrt 2 + log(d) / 2, sqrt 3)
    gen = torch.Generator().manual_seed(0)
    for d in (1, 4, 8):
        draws = prior.sample((50_000, d), gen)
        assert draws.log().median().item() == pytest.approx(math.sqrt(2) + 0.5 * math.log(d), abs=0.03)
        value = draws[:3]
        want = LogNormal(math.sqrt(2) + 0.5 * math.log(d), math.sqrt(3)).log_prob(value)
        torch.testing.assert_close(prior.log_prob(value), want)
    with pytest.raises(ValueError, match="feature axis"):
        prior.sample((), gen)
