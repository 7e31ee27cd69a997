"""The rational-quadratic kernel, added as one class in priors/kernels.py and nothing else: the proof that a new
kernel works everywhere (the prior's sampler, the exact GP, ML-II with its GPyTorch twin, and NUTS on the same
array-API body)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from priorfit.exact import gp_log_marginal_likelihood, gp_predictive, importance_predictive, marginal_predictive
from priorfit.exact.gp import ml2_fit
from priorfit.priors import Fixed, GPPrior, LogNormal, RationalQuadratic, Scale

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rq_prior(**fixed) -> GPPrior:
    kernel = RationalQuadratic(lengthscale=fixed.get("lengthscale", LogNormal(-1.2, 0.4)),
                               alpha=fixed.get("alpha", LogNormal(0.0, 0.5)), ard=False)
    return GPPrior(kernel=Scale(kernel, outputscale=fixed.get("outputscale", LogNormal(0.0, 0.3))),
                   noise_std=fixed.get("noise_std", LogNormal(-2.0, 0.3)), max_features=2)


def test_formula_gpytorch_twin_and_limits() -> None:
    k = RationalQuadratic()
    params = k.sample_params(3, 2, gen(0))
    x1, x2 = torch.rand(3, 5, 2, generator=gen(1), dtype=F64), torch.rand(3, 4, 2, generator=gen(2), dtype=F64)
    got = k.forward(params, x1, x2)
    for i in range(3):
        ls, a = params.lengthscale[i].numpy(), float(params.alpha[i])
        ref = np.array([[(1 + np.sum(((u - v) / ls) ** 2) / (2 * a)) ** -a for v in x2[i].numpy()]
                        for u in x1[i].numpy()])
        np.testing.assert_allclose(got[i].numpy(), ref, rtol=1e-12)
        twin = k.to_gpytorch(2)
        k.set_gpytorch_params(twin, params.map(lambda t: t[i]))
        with torch.no_grad():
            np.testing.assert_allclose(twin(x1[i], x2[i]).to_dense().numpy(), ref, rtol=1e-10)
        back = k.get_gpytorch_params(twin)
        torch.testing.assert_close(back.alpha, params.alpha[i])
    # alpha -> infinity is the RBF
    big = type(params)(lengthscale=params.lengthscale, alpha=torch.full((3,), 1e8, dtype=F64))
    rbf = torch.exp(-0.5 * ((x1[:, :, None] - x2[:, None]) / params.lengthscale[:, None, None]).square().sum(-1))
    torch.testing.assert_close(k.forward(big, x1, x2), rbf, rtol=1e-6, atol=1e-7)


def test_the_prior_samples_with_the_kernel() -> None:
    """Whitened by the kernel's own covariance, the prior's targets are iid N(0, 1)."""
    prior = rq_prior()
    batch = prior.sample(400, 12, gen(3), n_features=2)
    cov = prior.covariance(batch.params, batch.x, batch.x)
    cov = cov + (batch.params.noise_std.square() + prior.jitter)[:, None, None] * torch.eye(12, dtype=F64)
    z = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), (batch.y - batch.params.mean[:, None])[..., None],
                                      upper=False)[..., 0].flatten()
    se = 1 / math.sqrt(z.numel())
    assert abs(float(z.mean())) < 4 * se and abs(float(z.var()) - 1) < 4 * math.sqrt(2) * se


def test_exact_gp_and_ml2() -> None:
    prior = rq_prior()
    batch = prior.sample(2, 30, gen(4), n_features=1)
    x_c, y_c, x_q = batch.x[:, :24], batch.y[:, :24], batch.x[:, 24:]
    mean, var = gp_predictive(prior, batch.params, x_c, y_c, x_q)
    for i in range(2):  # the textbook formulas with an explicit inverse
        p = batch.params.map(lambda t: t[i:i + 1])
        s2 = float(p.noise_std) ** 2 + prior.jitter
        k = prior.covariance(p, x_c[i:i + 1], x_c[i:i + 1])[0].numpy() + s2 * np.eye(24)
        ks = prior.covariance(p, x_c[i:i + 1], x_q[i:i + 1])[0].numpy()
        kss = prior.covariance(p, x_q[i:i + 1], x_q[i:i + 1])[0].numpy()
        inv = np.linalg.inv(k)
        np.testing.assert_allclose(mean[i].numpy(), float(p.mean) + ks.T @ inv @ (y_c[i].numpy() - float(p.mean)),
                                   rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(var[i].numpy(), np.diag(kss - ks.T @ inv @ ks) + s2, rtol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml2_fit(prior, x_c[0], y_c[0], restarts=2, generator=gen(5))
    assert float(fit.params.kernel.base.alpha) > 0 and float(fit.params.kernel.base.lengthscale) > 0
    at_fit = fit.params.map(lambda t: t[None])
    no_jitter = GPPrior(kernel=prior.kernel, noise_std=prior.noise_std, max_features=2, jitter=0.0)
    lml = gp_log_marginal_likelihood(no_jitter, at_fit, x_c[:1], y_c[:1])
    assert fit.log_marginal_likelihood == pytest.approx(float(lml), rel=1e-6, abs=1e-6)
    m_fit, v_fit = fit.predict(x_q[0])
    m_ref, v_ref = gp_predictive(no_jitter, at_fit, x_c[:1], y_c[:1], x_q[:1])
    torch.testing.assert_close(m_fit, m_ref[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(v_fit, v_ref[0], rtol=1e-6, atol=1e-6)


def test_nuts_marginalises_it() -> None:
    """NUTS (the kernel's own body on JAX arrays) and importance sampling (torch) agree on a small dataset."""
    prior = rq_prior(outputscale=Fixed(1.0))
    batch = prior.sample(1, 10, gen(6), n_features=1)
    x_c, y_c, x_q, y_q = batch.x[0, :6], batch.y[0, :6], batch.x[0, 6:], batch.y[0, 6:]
    nuts = marginal_predictive(prior, x_c, y_c, x_q, num_warmup=200, num_samples=300, num_chains=2, seed=1)
    assert nuts.diagnostics["max_r_hat"] < 1.05
    assert set(nuts.diagnostics["r_hat"]) == {"lengthscale", "alpha", "noise_std"}
    ref = importance_predictive(prior, x_c, y_c, x_q, num_samples=20000, seed=2)
    assert np.abs(nuts.log_prob(y_q) - ref.log_prob(y_q)).max() < 0.1
