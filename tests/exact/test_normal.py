"""Normal scores against slow, obvious references: numerical integration and the closed forms' definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from priorfit.exact.normal import abs_normal_mean, normal_crps, normal_nll, normal_pit

F64 = torch.float64


def test_scores_match_scipy_and_numerical_integration() -> None:
    for mean, var, y in [(0.0, 1.0, 0.3), (1.5, 0.04, 1.2), (-2.0, 9.0, 4.0)]:
        m, v, t = (torch.tensor(a, dtype=F64) for a in (mean, var, y))
        sd = math.sqrt(var)
        assert float(normal_nll(m, v, t)) == approx(-stats.norm.logpdf(y, mean, sd))
        assert float(normal_pit(m, v, t)) == approx(stats.norm.cdf(y, mean, sd))
        # E|Z| by quadrature
        expected_abs, _ = integrate.quad(lambda z: abs(z) * stats.norm.pdf(z, mean, sd), -np.inf, np.inf)
        assert float(abs_normal_mean(m, v)) == approx(expected_abs)
        # CRPS = integral of (F(x) - 1{x >= y})^2 dx
        below, _ = integrate.quad(lambda x: stats.norm.cdf(x, mean, sd) ** 2, -np.inf, y)
        above, _ = integrate.quad(lambda x: (1 - stats.norm.cdf(x, mean, sd)) ** 2, y, np.inf)
        assert float(normal_crps(m, v, t)) == approx(below + above)


def approx(value: float):
    return pytest.approx(value, rel=1e-7, abs=1e-9)
