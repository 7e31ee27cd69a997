"""The NNGP kernel: against the empirical covariance of wide random networks, its GPyTorch twin, the exact GP and
ML-II, NUTS on its array-API body, and its symmetries."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from priorfit.exact import importance_predictive, marginal_predictive
from priorfit.exact.gp import ml2_fit
from priorfit.priors import NNGP, Fixed, GPPrior, LogNormal, Scale

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def wide_network_covariance(x: torch.Tensor, activation: str, depth: int, sw: float, sb: float,
                            width: int = 4096, networks: int = 8, seed: int = 0) -> torch.Tensor:
    """The output covariance of random networks (weights N(0, sw / fan_in), biases N(0, sb)) at the rows of x
    (`n x d`, already the network's input), averaged over the read-out layer exactly and over the hidden layers
    by drawing `networks` networks of `width` units."""
    g = gen(seed)
    phi = torch.relu if activation == "relu" else torch.erf
    total = torch.zeros(x.shape[0], x.shape[0], dtype=F64)
    for _ in range(networks):
        h = x @ torch.randn(x.shape[1], width, generator=g, dtype=F64) * math.sqrt(sw / x.shape[1])
        h = h + math.sqrt(sb) * torch.randn(width, generator=g, dtype=F64)
        for _ in range(depth - 1):
            h = phi(h) @ torch.randn(width, width, generator=g, dtype=F64) * math.sqrt(sw / width)
            h = h + math.sqrt(sb) * torch.randn(width, generator=g, dtype=F64)
        a = phi(h)
        total += sb + sw * (a @ a.T) / width  # E over the read-out weights and bias, exactly
    return total / networks


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("depth", [1, 3])
def test_matches_wide_random_networks(activation: str, depth: int) -> None:
    kernel = NNGP(activation=activation, depth=depth, weight_variance=Fixed(1.7), bias_variance=Fixed(0.2))
    x = torch.rand(1, 6, 3, generator=gen(1), dtype=F64)
    params = kernel.sample_params(1, 3, gen(2))
    got = kernel.forward(params, x, x)[0]
    empirical = wide_network_covariance(2 * x[0] - 1, activation, depth, 1.7, 0.2)
    # finite width (1/sqrt(4096 * 8)) and Monte Carlo error: about 1% of the largest entry
    assert float((got - empirical).abs().max()) < 0.03 * float(got.abs().max())
    # a wrong recursion (one layer too many) is far off
    deeper = NNGP(activation=activation, depth=depth + 1, weight_variance=Fixed(1.7), bias_variance=Fixed(0.2))
    assert float((deeper.forward(params, x, x)[0] - empirical).abs().max()) > 0.05 * float(got.abs().max())


def test_closed_forms_of_one_layer() -> None:
    """Depth 1, one point pair, against E[phi(u) phi(v)] integrated numerically: u = L00 a, v = L10 a + L11 b
    with a, b iid N(0, 1); the inner expectation over b in closed form for ReLU (E relu(mu + s Z) = mu Phi(mu/s)
    + s phi(mu/s)), by 2-D Gauss-Hermite for the smooth erf."""
    from scipy import integrate, stats

    x = torch.tensor([[[0.9, 0.2], [0.3, 0.7]]], dtype=F64)
    sw, sb = 1.3, 0.4
    z = 2 * x[0] - 1
    chol = np.linalg.cholesky((sb + sw * (z @ z.T) / 2).numpy())
    l00, l10, l11 = chol[0, 0], chol[1, 0], chol[1, 1]

    def relu_inner(a: float) -> float:
        mu = l10 * a
        return l00 * a * (mu * stats.norm.cdf(mu / l11) + l11 * stats.norm.pdf(mu / l11)) * stats.norm.pdf(a)

    relu_expected = integrate.quad(relu_inner, 0, 12, epsabs=1e-12, epsrel=1e-10)[0]
    t, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    u, v = l00 * t[:, None] + 0 * t[None, :], l10 * t[:, None] + l11 * t[None, :]
    erf = np.vectorize(math.erf)
    erf_expected = float((w[:, None] * w[None, :] * erf(u) * erf(v)).sum())
    for activation, expected in (("relu", relu_expected), ("erf", erf_expected)):
        kernel = NNGP(activation=activation, depth=1, weight_variance=Fixed(sw), bias_variance=Fixed(sb))
        got = kernel.forward(kernel.sample_params(1, 2, gen(0)), x, x)[0, 0, 1]
        assert float(got) == pytest.approx(sb + sw * expected, rel=1e-8)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_gpytorch_twin_diag_and_psd(activation: str) -> None:
    kernel = NNGP(activation=activation, depth=2)
    params = kernel.sample_params(3, 2, gen(3))
    x1, x2 = torch.rand(3, 7, 2, generator=gen(4), dtype=F64), torch.rand(3, 5, 2, generator=gen(5), dtype=F64)
    matrix = kernel.forward(params, x1, x1)
    torch.testing.assert_close(kernel.diag(params, x1), torch.diagonal(matrix, dim1=-2, dim2=-1))
    assert (torch.linalg.eigvalsh(matrix) > -1e-10).all()
    for i in range(3):
        twin = kernel.to_gpytorch(2)
        kernel.set_gpytorch_params(twin, params.map(lambda t: t[i]))
        with torch.no_grad():
            torch.testing.assert_close(twin(x1[i], x2[i]).to_dense(), kernel.forward(params, x1, x2)[i])
            torch.testing.assert_close(twin(x1[i], diag=True), kernel.diag(params, x1)[i])
        back = kernel.get_gpytorch_params(twin)
        torch.testing.assert_close(back.weight_variance, params.weight_variance[i])
        torch.testing.assert_close(back.bias_variance, params.bias_variance[i])


def test_symmetries() -> None:
    """Centred, reflecting a feature or reordering features leaves the kernel unchanged; uncentred, reflecting
    does not (and the GP prior says so)."""
    x = torch.rand(2, 6, 3, generator=gen(6), dtype=F64)
    flipped = x.clone()
    flipped[..., 1] = 1 - flipped[..., 1]
    for center in (True, False):
        kernel = NNGP(center=center)
        params = kernel.sample_params(2, 3, gen(7))
        same = torch.allclose(kernel.forward(params, x, x), kernel.forward(params, flipped, flipped))
        assert same is center
        assert GPPrior(kernel=kernel, max_features=3).symmetries.reflect_inputs is center
        torch.testing.assert_close(kernel.forward(params, x, x), kernel.forward(params, x[..., [2, 0, 1]],
                                                                                 x[..., [2, 0, 1]]))
    assert not NNGP().stationary


def test_exact_gp_ml2_and_nuts() -> None:
    """The kernel works through every reference: ML-II with the twin finds positive variances, and NUTS on the
    JAX body agrees with importance sampling on the torch body."""
    prior = GPPrior(kernel=NNGP(weight_variance=LogNormal(0.7, 0.3), bias_variance=LogNormal(-2.3, 0.5)),
                    noise_std=LogNormal(-2.0, 0.3), max_features=2)
    batch = prior.sample(1, 14, gen(8), n_features=2)
    x_c, y_c, x_q, y_q = batch.x[0, :8], batch.y[0, :8], batch.x[0, 8:], batch.y[0, 8:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml2_fit(prior, x_c, y_c, restarts=2, generator=gen(9))
    assert float(fit.params.kernel.weight_variance) > 0 and math.isfinite(fit.log_marginal_likelihood)
    nuts = marginal_predictive(prior, x_c, y_c, x_q, num_warmup=200, num_samples=300, num_chains=2, seed=1)
    assert nuts.diagnostics["max_r_hat"] < 1.05
    assert set(nuts.diagnostics["r_hat"]) == {"weight_variance", "bias_variance", "noise_std"}
    ref = importance_predictive(prior, x_c, y_c, x_q, num_samples=20000, seed=2)
    assert np.abs(nuts.log_prob(y_q) - ref.log_prob(y_q)).max() < 0.1


def test_scaled_and_bad_arguments() -> None:
    kernel = Scale(NNGP(activation="erf"))
    params = kernel.sample_params(2, 1, gen(10))
    x = torch.rand(2, 4, 1, generator=gen(11), dtype=F64)
    torch.testing.assert_close(kernel.forward(params, x, x),
                               params.outputscale[:, None, None] * kernel.base.forward(params.base, x, x))
    with pytest.raises(ValueError, match="activation"):
        NNGP(activation="tanh")
    with pytest.raises(ValueError, match="depth"):
        NNGP(depth=0)
    with pytest.raises(TypeError, match="weight_variance"):
        NNGP(weight_variance=2.0)
