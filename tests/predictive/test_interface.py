"""Every predictive behind the one interface, against slow, obvious references: numerical integration, scipy's
distributions, Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from priorfit.model.bar_distribution import BarDistribution
from priorfit.predictive import (
    BarPredictive,
    NormalMixturePredictive,
    NormalPredictive,
    Predictive,
    StudentTMixturePredictive,
    StudentTPredictive,
)
from priorfit.predictive.normal import abs_normal_mean
from priorfit.predictive.bar import TAIL_ALPHA

F64 = torch.float64


def _bar() -> BarPredictive:
    borders = torch.linspace(-3.0, 3.0, 61, dtype=F64)
    logits = torch.randn(2, 60, generator=torch.Generator().manual_seed(0), dtype=F64)
    return BarPredictive(BarDistribution(borders), logits, loc=1.0, scale=2.0)


PREDICTIVES = {
    "normal": lambda: NormalPredictive([0.3, -1.0], [0.5, 2.0]),
    "student_t": lambda: StudentTPredictive([0.3, -1.0], [0.7, 1.5], df=[3.5, 6.0]),
    "mixture": lambda: NormalMixturePredictive([[0.0, 1.0], [2.0, -1.0], [0.5, 0.0]], [[1.0, 0.3], [0.5, 0.2],
                                                                                        [2.0, 1.0]],
                                               log_weights=[0.0, -1.0, 0.5]),
    "bar": _bar,
    "student_t_mixture": lambda: StudentTMixturePredictive([[0.0, 1.0], [2.0, -1.0], [0.5, 0.0]],
                                                           [[1.0, 0.3], [0.5, 0.2], [2.0, 1.0]], df=4.5,
                                                           log_weights=[0.0, -1.0, 0.5]),
}


@pytest.mark.parametrize("name", PREDICTIVES)
def test_the_interface_is_one_distribution(name) -> None:
    """For each kind: the density integrates to 1 and to the cdf, quantile inverts cdf, sf = 1 - cdf, the mean
    and variance are the density's moments, the CRPS is the integral of (F(x) - 1{x >= y})^2, and samples follow
    the cdf (KS test)."""
    pred: Predictive = PREDICTIVES[name]()
    assert isinstance(pred, Predictive) and len(pred) == 2
    for j in range(2):
        def at(fn, x: float, j=j) -> float:
            y = np.zeros(2)
            y[j] = x
            return float(fn(y)[j])

        pdf = lambda x, j=j: at(pred.pdf, x, j)  # noqa: E731
        # integrate piece by piece between quantiles, so that quadrature sees every bar's jump and both tails
        cuts = pred.quantile(np.linspace(0.02, 0.98, 49))[j]
        if isinstance(pred, BarPredictive):  # and at the bars' borders, where its density jumps
            cuts = np.concatenate([cuts, 1.0 + 2.0 * pred.bar_distribution.borders.numpy()])
        cuts = np.unique(cuts)

        def quad(f, lo=-np.inf, hi=np.inf) -> float:
            inner = [c for c in cuts if lo < c < hi]
            edges = [lo, *inner, hi]
            return sum(integrate.quad(f, a, b, limit=200, epsabs=1e-11, epsrel=1e-10)[0]
                       for a, b in zip(edges[:-1], edges[1:]))

        assert quad(pdf) == pytest.approx(1.0, abs=1e-7)
        median = float(pred.quantile(0.5)[j])
        for x in (median - 1.0, median + 0.5):
            assert quad(pdf, hi=x) == pytest.approx(at(pred.cdf, x, j), abs=1e-7)
            assert at(pred.sf, x, j) == pytest.approx(1 - at(pred.cdf, x, j), abs=1e-12)
        levels = [0.01, 0.3, 0.9]
        q = pred.quantile(levels)[j]
        assert [at(pred.cdf, v, j) for v in q] == pytest.approx(levels, abs=1e-7)
        # a PFN's moments are its predictive's winsorised at TAIL_ALPHA on each side (predictive/bar.py)
        lo, hi = pred.quantile([TAIL_ALPHA, 1 - TAIL_ALPHA])[j] if isinstance(pred, BarPredictive) else (-np.inf, np.inf)
        cuts = np.unique(np.concatenate([cuts, [lo, hi]])) if isinstance(pred, BarPredictive) else cuts
        mean = quad(lambda x: np.clip(x, lo, hi) * pdf(x))
        assert pred.mean[j] == pytest.approx(mean, abs=1e-6)
        assert pred.variance[j] == pytest.approx(quad(lambda x: (np.clip(x, lo, hi) - mean) ** 2 * pdf(x)), rel=1e-5)
        y_obs = median + 0.8
        crps = quad(lambda x: at(pred.cdf, x, j) ** 2, hi=y_obs) + quad(lambda x: at(pred.sf, x, j) ** 2, lo=y_obs)
        assert at(pred.crps, y_obs, j) == pytest.approx(crps, rel=1e-5, abs=1e-7)
    draws = pred.sample(4000, torch.Generator().manual_seed(1))
    assert draws.shape == (4000, 2)
    for j in range(2):
        cdf = lambda x, j=j: np.array([at(pred.cdf, v, j) for v in np.atleast_1d(x)])  # noqa: E731
        assert stats.kstest(draws[:, j], cdf).pvalue > 1e-3
    again = pred.sample(5, torch.Generator().manual_seed(2))
    assert np.array_equal(again, pred.sample(5, torch.Generator().manual_seed(2)))


def test_student_t_equals_scipy_and_has_heavy_tails() -> None:
    loc, scale, df = np.array([0.5, -2.0, 1.0]), np.array([1.5, 0.2, 3.0]), np.array([1.0, 2.5, 30.0])
    pred = StudentTPredictive(loc, scale, df)
    ref = stats.t(df, loc, scale)
    y = np.array([[3.0, -2.1, 40.0], [-100.0, 0.0, 1.0]])
    np.testing.assert_allclose(pred.log_prob(y), ref.logpdf(y), rtol=1e-12)
    np.testing.assert_allclose(pred.cdf(y), ref.cdf(y), rtol=1e-12)
    np.testing.assert_allclose(pred.sf(y), ref.sf(y), rtol=1e-12)
    np.testing.assert_allclose(pred.quantile([0.05, 0.5, 0.975]), ref.ppf(np.array([[0.05], [0.5], [0.975]])).T,
                               rtol=1e-10)
    # at df = 1 (a Cauchy, the invariant predictive at n = 2) there is no mean and E|Y| is infinite
    assert math.isnan(pred.mean[0]) and pred.mean[1] == -2.0 and np.isinf(pred.variance[0])
    assert np.isinf(pred.crps(y)[:, 0]).all() and np.isfinite(pred.crps(y)[:, 1:]).all()
    assert pred.variance[2] == pytest.approx(ref.var()[2])


def test_normal_equals_scipy_deep_in_the_tails() -> None:
    pred = NormalPredictive([0.0, 1.0], [1.0, 4.0])
    y = np.array([[-9.0, 19.0], [0.5, 1.0]])
    ref = stats.norm([0.0, 1.0], [1.0, 2.0])
    np.testing.assert_allclose(pred.log_prob(y), ref.logpdf(y), rtol=1e-12)
    np.testing.assert_allclose(pred.cdf(y), ref.cdf(y), rtol=1e-12)
    np.testing.assert_allclose(pred.sf(y), ref.sf(y), rtol=1e-12)  # sf(19 / 2 sds) ~ 1e-21: not 1 - cdf
    expected_abs, _ = integrate.quad(lambda z: abs(z) * stats.norm.pdf(z, 1.5, 0.2), -np.inf, np.inf)
    assert float(abs_normal_mean(torch.tensor(1.5, dtype=F64), torch.tensor(0.04, dtype=F64))) == pytest.approx(
        expected_abs, rel=1e-9)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="variance"):
        NormalPredictive([0.0], [-1.0])
    with pytest.raises(ValueError, match="df"):
        StudentTPredictive([0.0], [1.0], df=0.0)
    with pytest.raises(ValueError, match="scale must have the shape"):
        StudentTPredictive([0.0, 1.0], [1.0], df=2.0)
    pred = NormalPredictive([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="y must have length m=2"):
        pred.log_prob([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="q must lie in"):
        pred.quantile(1.0)
    with pytest.raises(ValueError, match="n_samples"):
        pred.sample(-1)


def test_a_large_normal_mixture_takes_its_crps_by_quadrature_and_agrees_with_the_pairs() -> None:
    """Beyond _CRPS_PAIRWISE_MAX components the S^2 pair sums would not fit in memory (a NUTS marginal with
    quadrature nodes per draw has 10^4 components); the quadrature agrees with them where both run."""
    from priorfit.predictive import mixture

    gen = torch.Generator().manual_seed(3)
    means = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    variances = 0.1 + torch.rand(300, 4, generator=gen, dtype=torch.float64)
    pred = mixture.NormalMixturePredictive(means, variances)
    y = np.array([-1.0, 0.0, 0.5, 3.0])
    pairwise = pred.crps(y)
    limit = mixture._CRPS_PAIRWISE_MAX
    try:
        mixture._CRPS_PAIRWISE_MAX = 100
        np.testing.assert_allclose(pred.crps(y), pairwise, rtol=1e-6)
    finally:
        mixture._CRPS_PAIRWISE_MAX = limit


@pytest.mark.parametrize("name", PREDICTIVES)
@pytest.mark.parametrize("alpha", [0.02, TAIL_ALPHA])
def test_winsorized_moments_are_the_clamped_variable_s(name, alpha) -> None:
    """winsorized_moments(alpha) (generic: trapezoid over the survival function; bars: closed form) against the
    moments of clamp(Y, q_alpha, q_{1-alpha}) by adaptive quadrature of the density between the two quantiles,
    plus alpha of mass on each; and, on bars, the generic route against the closed form."""
    pred: Predictive = PREDICTIVES[name]()
    mean, var = pred.winsorized_moments(alpha)
    lo, hi = pred.quantile([alpha, 1 - alpha]).T
    for j in range(2):
        def pdf(x: float, j=j) -> float:
            y = np.zeros(2)
            y[j] = x
            return float(pred.pdf(y)[j])

        edges = np.unique(np.concatenate([[lo[j], hi[j]], pred.quantile(np.linspace(0.05, 0.95, 19))[j]]))
        if isinstance(pred, BarPredictive):
            edges = np.unique(np.concatenate([edges, 1.0 + 2.0 * pred.bar_distribution.borders.numpy()]))
        edges = edges[(edges >= lo[j]) & (edges <= hi[j])]
        moment = [sum(integrate.quad(lambda x, k=k: x**k * pdf(x), a, b, epsabs=1e-12)[0]
                      for a, b in zip(edges[:-1], edges[1:])) + alpha * (lo[j] ** k + hi[j] ** k) for k in (1, 2)]
        assert mean[j] == pytest.approx(moment[0], abs=1e-5)
        assert var[j] == pytest.approx(moment[1] - moment[0] ** 2, rel=1e-4)
    if isinstance(pred, BarPredictive):
        generic = Predictive.winsorized_moments(pred, alpha, grid=20001)
        np.testing.assert_allclose(generic, (mean, var), rtol=1e-5)
        if alpha == TAIL_ALPHA:
            np.testing.assert_allclose((pred.mean, pred.variance), (mean, var), rtol=1e-14)
    with pytest.raises(ValueError, match="alpha"):
        pred.winsorized_moments(0.5)
