"""PredictiveDistribution: the bar distribution mapped to user units, y = loc + scale * y_model (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from priorfit.model.bar_distribution import BarDistribution
from priorfit.predictive.bar import TAIL_ALPHA, PredictiveDistribution

F64 = torch.float64
BORDERS = torch.tensor([-3.0, -1.7, -1.1, -0.2, 0.05, 0.9, 1.0, 2.4, 4.0], dtype=F64)
LOC = np.array([10.0, -3.0, 0.5])
SCALE = np.array([2.5, 0.1, 1.0])


@pytest.fixture(autouse=True)
def single_thread():
    """Quadrature evaluates tiny tensors once per node: keep torch's thread pool out of it."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def make(loc=LOC, scale=SCALE, seed: int = 0) -> PredictiveDistribution:
    g = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(3, len(BORDERS) - 1, generator=g, dtype=F64)
    return PredictiveDistribution(BarDistribution(BORDERS), logits, loc=loc, scale=scale)


def user_integral(pred: PredictiveDistribution, fn, extra=()) -> np.ndarray:
    """int fn(t) dt over the user's units for every point at once; fn(t) gets ``t`` as an ``m`` vector."""
    m = len(pred)
    cuts = sorted({float(c) for c in (LOC[:, None] + SCALE[:, None] * BORDERS[1:-1].numpy()).ravel()} | set(extra))
    value, err = integrate.quad_vec(
        lambda t: fn(np.full(m, t)), -math.inf, math.inf, points=cuts, epsabs=1e-13, epsrel=1e-11, limit=2000
    )
    assert err < 1e-9
    return np.asarray(value)


def test_log_prob_integrates_to_one_in_user_units():
    pred = make()

    lo, hi = pred.quantile([TAIL_ALPHA, 1 - TAIL_ALPHA]).T

    def integrand(t: np.ndarray) -> np.ndarray:  # m x 6: density, t f, t^2 f, -f log f, the winsorised t f, t^2 f
        lp = pred.log_prob(t)
        f = np.exp(lp)
        c = np.clip(t, lo, hi)
        return np.stack([f, t * f, t * t * f, -f * lp, c * f, c * c * f], axis=-1)

    integrals = user_integral(pred, integrand, extra=(*lo, *hi))
    np.testing.assert_allclose(integrals[:, 0], 1.0, rtol=0, atol=1e-10)
    # mean and variance are the winsorised predictive's (TAIL_ALPHA on each side), not the raw ones
    np.testing.assert_allclose(pred.mean, integrals[:, 4], rtol=1e-9)
    np.testing.assert_allclose(pred.variance, integrals[:, 5] - integrals[:, 4] ** 2, rtol=1e-8)
    raw = pred.bar_distribution
    np.testing.assert_allclose(LOC + SCALE * raw.mean(pred.logits).numpy(), integrals[:, 1], rtol=1e-9)
    np.testing.assert_allclose(SCALE**2 * raw.variance(pred.logits).numpy(), integrals[:, 2] - integrals[:, 1] ** 2,
                               rtol=1e-8)
    np.testing.assert_allclose(pred.entropy, integrals[:, 3], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(pred.pdf(LOC), np.exp(pred.log_prob(LOC)))


def test_mean_quantile_and_cdf_transform_affinely():
    pred = make()
    bd, logits = pred.bar_distribution, pred.logits
    mean, var = bd.winsorized_moments(logits, TAIL_ALPHA)
    np.testing.assert_allclose(pred.mean, LOC + SCALE * mean.numpy(), rtol=1e-14)
    np.testing.assert_allclose(pred.stddev, SCALE * var.sqrt().numpy(), rtol=1e-14)
    np.testing.assert_allclose(pred.entropy, bd.entropy(logits).numpy() + np.log(SCALE), rtol=1e-14)
    q = [1e-5, 0.05, 0.5, 0.95, 1 - 1e-5]
    quantiles = pred.quantile(q)
    assert quantiles.shape == (3, 5) and quantiles.dtype == np.float64
    np.testing.assert_allclose(quantiles, LOC[:, None] + SCALE[:, None] * bd.quantile(logits, q).numpy())
    np.testing.assert_allclose(pred.quantile(0.95), quantiles[:, 3], rtol=1e-14)
    np.testing.assert_allclose(pred.cdf(quantiles.T), np.array(q)[:, None].repeat(3, 1), rtol=1e-10, atol=1e-14)
    # a shift and a scale of the same model distribution
    base = make(loc=0.0, scale=1.0)
    np.testing.assert_allclose(pred.quantile(q), LOC[:, None] + SCALE[:, None] * base.quantile(q))


def test_crps_is_in_user_units():
    pred = make()
    y_obs = np.array([11.0, -3.05, 0.2])
    expected = user_integral(pred, lambda t: (pred.cdf(t) - (t >= y_obs)) ** 2, extra=y_obs.tolist())
    np.testing.assert_allclose(pred.crps(y_obs), expected, rtol=1e-8)


def test_ei_pi_scale_with_scale_and_match_integrals():
    pred, base = make(), make(loc=0.0, scale=1.0)
    z = np.array([0.3, -2.5, 3.1])  # inside a bar, in the left tail, in the right tail (model units)
    best_f = LOC + SCALE * z
    for maximize in (True, False):
        ei = pred.ei(best_f, maximize=maximize)
        np.testing.assert_allclose(ei, SCALE * base.ei(z, maximize=maximize), rtol=1e-13)
        np.testing.assert_allclose(pred.pi(best_f, maximize=maximize), base.pi(z, maximize=maximize), rtol=1e-13)
        sign = 1.0 if maximize else -1.0
        expected = user_integral(
            pred, lambda t: np.maximum(sign * (t - best_f), 0.0) * pred.pdf(t), extra=best_f.tolist()
        )
        np.testing.assert_allclose(ei, expected, rtol=1e-9, atol=1e-13)
    # a float best_f applies to every point; EI grows linearly with the scale
    doubled = make(loc=LOC, scale=2 * SCALE)
    np.testing.assert_allclose(doubled.ei(LOC + 2 * SCALE * 0.3), 2 * pred.ei(LOC + SCALE * 0.3), rtol=1e-13)
    assert pred.ei(0.0).shape == (3,) and pred.pi(0.0).shape == (3,)


def test_sample_shape_and_moments():
    pred = make()
    n = 100_000
    y = pred.sample(n, generator=torch.Generator().manual_seed(0))
    assert y.shape == (n, 3) and y.dtype == np.float64
    se = y.std(axis=0) / math.sqrt(n)
    assert (np.abs(y.mean(axis=0) - pred.mean) < 4 * se).all()
    again = pred.sample(n, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(y, again)


def test_inputs_and_validation():
    pred = make(loc=list(LOC), scale=torch.tensor(SCALE))
    assert len(pred) == 3
    for y in (LOC, list(LOC), torch.tensor(LOC)):
        out = pred.log_prob(y)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (3,)
    assert pred.log_prob(np.stack([LOC, LOC + 1.0])).shape == (2, 3)  # leading dims broadcast
    with pytest.raises(ValueError, match="y must have length m=3"):
        pred.log_prob([0.0, 1.0])
    with pytest.raises(ValueError, match="y must have length m=3"):
        pred.cdf(0.0)
    with pytest.raises(ValueError, match="best_f"):
        pred.ei([0.0, 1.0])
    with pytest.raises(ValueError, match="q must lie in the open interval"):
        pred.quantile([0.5, 1.0])
    with pytest.raises(ValueError, match="n_samples"):
        pred.sample(-1)
    logits = torch.zeros(3, len(BORDERS) - 1, dtype=F64)
    bd = BarDistribution(BORDERS)
    with pytest.raises(ValueError, match="scale must be positive"):
        PredictiveDistribution(bd, logits, scale=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="loc must be a float or have length m=3"):
        PredictiveDistribution(bd, logits, loc=[1.0, 2.0])
    with pytest.raises(ValueError, match="logits must have shape m x 8"):
        PredictiveDistribution(bd, logits[:, :-1])
    with pytest.raises(TypeError, match="bar_distribution"):
        PredictiveDistribution(None, logits)
    # float32 logits (as the model emits) are promoted; zero query points are allowed
    assert make().mean.dtype == np.float64
    assert PredictiveDistribution(bd, logits.float()).mean.dtype == np.float64
    empty = PredictiveDistribution(bd, torch.zeros(0, 8))
    assert len(empty) == 0 and empty.mean.shape == (0,) and empty.quantile([0.1, 0.9]).shape == (0, 2)
