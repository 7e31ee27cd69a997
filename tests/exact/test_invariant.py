"""The invariant posterior (targets' location and scale integrated out under p(mu, sigma) ~ 1/sigma) against
its defining properties: the integral it is, the ratio of evidences it is, calibration for any units, and the
equivariance a model trained in the same units inherits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from priorfit.estimators import PFNRegressor
from priorfit.exact.invariant import invariant_log_likelihood, invariant_predictive
from priorfit.exact.reference import Task
from priorfit.model.transformer import ModelConfig
from priorfit.predictive import StudentTPredictive
from priorfit.priors import GPPrior, LogNormal, Matern, Scale
from priorfit.priors.invariant import InvariantGPPrior
from priorfit.training import TrainConfig, train

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shape_cov(n: int, seed: int) -> torch.Tensor:
    a = torch.randn(n, n, generator=gen(seed), dtype=F64)
    return (a @ a.T / n + 0.3 * torch.eye(n, dtype=F64))[None]


def test_the_evidence_is_the_integral_over_location_and_scale() -> None:
    """p(y | theta) = int int N(y | mu 1, sigma^2 C) / sigma dmu dsigma, by quadrature over mu and log sigma."""
    cov = shape_cov(3, 0)
    y = torch.tensor([[0.4, -1.1, 2.0]], dtype=F64)
    c, yy = cov[0].numpy(), y[0].numpy()

    def integrand(log_sigma: float, mu: float) -> float:  # dsigma / sigma = dlog sigma
        return stats.multivariate_normal(mean=np.full(3, mu), cov=math.exp(2 * log_sigma) * c).pdf(yy)

    value, _ = integrate.dblquad(integrand, -np.inf, np.inf, lambda _: -12.0, lambda _: 14.0, epsabs=1e-13,
                                 epsrel=1e-9)
    assert float(invariant_log_likelihood(cov, y)) == pytest.approx(math.log(value), abs=1e-6)


def test_the_predictive_is_the_ratio_of_evidences() -> None:
    """log t(y* | ...) = log p(y, y* | theta) - log p(y | theta), for several n, including n = 2 (a Cauchy)."""
    for n in (2, 3, 7):
        full = shape_cov(n + 1, n)
        y_all = torch.randn(1, n + 1, generator=gen(10 + n), dtype=F64) * 3.0 + 5.0
        loc, scale, df = invariant_predictive(full[:, :n, :n], full[:, :n, n:], full[:, n, n:], y_all[:, :n])
        assert float(df) == n - 1
        t = StudentTPredictive(loc[0], scale[0], df[0])
        ratio = invariant_log_likelihood(full, y_all) - invariant_log_likelihood(full[:, :n, :n], y_all[:, :n])
        assert float(t.log_prob(y_all[0, n:])[0]) == pytest.approx(float(ratio), abs=1e-9)


def test_calibrated_in_any_units() -> None:
    """Fixed shape hyperparameters, any location and scale: the PIT of a held-out y is uniform (KS over 4000
    datasets), and the predictive moves exactly with the units."""
    n, b = 5, 4000
    x = torch.rand(b, n + 1, 1, generator=gen(1), dtype=F64)
    k = torch.exp(-0.5 * (x - x.transpose(1, 2)).square() / 0.3**2) + 0.05 * torch.eye(n + 1, dtype=F64)
    z = (torch.linalg.cholesky(k) @ torch.randn(b, n + 1, 1, generator=gen(2), dtype=F64))[..., 0]
    for mu, sigma in ((0.0, 1.0), (1e4, 1e-3), (-3.0, 50.0)):
        y = mu + sigma * z
        loc, scale, df = invariant_predictive(k[:, :n, :n], k[:, :n, n:], k[:, n, n:], y[:, :n])
        pit = stats.t.cdf(((y[:, n:] - loc) / scale).numpy()[:, 0], df.numpy())
        assert stats.kstest(pit, "uniform").pvalue > 1e-3
        base_loc, base_scale, _ = invariant_predictive(k[:, :n, :n], k[:, :n, n:], k[:, n, n:], z[:, :n])
        torch.testing.assert_close(loc, mu + sigma * base_loc, rtol=1e-7, atol=1e-12 * max(1.0, abs(mu)))
        torch.testing.assert_close(scale, sigma * base_scale, rtol=1e-7, atol=0.0)


def invariant_prior() -> InvariantGPPrior:
    return InvariantGPPrior(GPPrior(kernel=Scale(Matern(nu=2.5, lengthscale=LogNormal(-1.0, 0.5))),
                                    noise_std=LogNormal(-2.0, 0.5), max_features=2))


def test_the_prior_draws_in_its_contexts_units_and_its_oracle_is_calibrated() -> None:
    prior = invariant_prior()
    batch = prior.sample(1500, 9, gen(3), n_features=2, n_context=8)
    oracle = prior.references()[0]
    pits = []
    for i in range(batch.batch_size):
        task = Task(batch.x[i, :8], batch.y[i, :8], batch.x[i, 8:], batch.params.map(lambda t: t[i:i + 1]))
        pits.append(float(oracle.predict(task, 0).predictive.cdf(batch.y[i, 8:])[0]))
    assert stats.kstest(pits, "uniform").pvalue > 1e-3
    # the function is drawn on context-scaled inputs: the same draw for inputs in other units
    again = prior.sample(1500, 9, gen(3), n_features=2, n_context=8)
    torch.testing.assert_close(again.y, batch.y)
    task = Task(3.0 * batch.x[0, :8] - 7.0, batch.y[0, :8], 3.0 * batch.x[0, 8:] - 7.0,
                batch.params.map(lambda t: t[:1]))
    moved = oracle.predict(task, 0).predictive
    same = oracle.predict(Task(batch.x[0, :8], batch.y[0, :8], batch.x[0, 8:], task.truth), 0).predictive
    np.testing.assert_allclose(moved.quantile([0.1, 0.9]), same.quantile([0.1, 0.9]), rtol=1e-9)


def test_an_invariant_model_is_exactly_equivariant(tmp_path) -> None:
    """A model that sees only its context's units (trained a few steps on the invariant prior): predictions move
    with y -> a y + b and x_j -> c_j x_j + d_j to within 1e-5, through PFNRegressor as users call it."""
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_bars=100, invariant=True)
    config = TrainConfig(steps=6, batch_size=8, n_points=24, min_context=2, max_context=20, border_datasets=64,
                         eval_every=6, eval_datasets=8, eval_context=(8,), checkpoint_every=6)
    result = train(invariant_prior(), model, config, tmp_path, resume=False, progress=False)
    assert math.isfinite(result.history[-1]["exact@8"])
    rng = np.random.default_rng(0)
    X, y, Xq = rng.uniform(size=(15, 2)), rng.normal(size=15), rng.uniform(-0.2, 1.2, size=(6, 2))
    a, b, c, d = 250.0, -1e3, np.array([1e-3, 40.0]), np.array([5.0, -2.0])
    for normalize in (True, False):
        base = PFNRegressor(model=str(result.checkpoint), normalize=normalize).fit(X, y)
        moved = PFNRegressor(model=str(result.checkpoint), normalize=normalize).fit(X * c + d, a * y + b)
        p, q = base.predict_distribution(Xq), moved.predict_distribution(Xq * c + d)
        np.testing.assert_allclose(q.quantile([0.05, 0.5, 0.95]), a * p.quantile([0.05, 0.5, 0.95]) + b,
                                   rtol=1e-5, atol=1e-5 * a)
        np.testing.assert_allclose(q.log_prob(a * np.zeros(6) + b), p.log_prob(np.zeros(6)) - math.log(a),
                                   rtol=1e-5, atol=1e-5)


def test_the_jax_evidence_is_the_torch_one() -> None:
    import jax.numpy as jnp

    from priorfit.exact.marginal import _invariant_log_likelihood, _x64

    prior = invariant_prior()
    batch = prior.sample(3, 9, gen(5), n_context=9)
    cov, _, _ = prior.shape_covariances(batch.params, batch.x, batch.x[:, :1])
    ref = invariant_log_likelihood(cov, batch.y)
    from priorfit.preprocessing import context_input_scaling, scale_inputs

    x = scale_inputs(batch.x, *context_input_scaling(batch.x))
    with _x64():
        for i in range(3):
            p = batch.params.map(lambda t: jnp.asarray(t[i].numpy()))
            got = _invariant_log_likelihood(prior.gp.kernel, p, jnp.asarray(x[i].numpy()),
                                            jnp.asarray(batch.y[i].numpy()), prior.gp.jitter)
            assert float(got) == pytest.approx(float(ref[i]), abs=1e-9)


def test_nuts_over_the_shape_agrees_with_importance_sampling_in_any_units() -> None:
    from priorfit.exact.invariant import invariant_importance_predictive, invariant_marginal_predictive

    prior = InvariantGPPrior(GPPrior(kernel=Scale(Matern(nu=2.5, lengthscale=LogNormal(-1.0, 0.5))),
                                     noise_std=LogNormal(-2.0, 0.5), max_features=1))
    batch = prior.sample(1, 14, gen(0), n_context=8)
    x, y = batch.x[0] * 10 + 3, batch.y[0] * 5 - 2  # other units: the same posterior, mapped
    nuts = invariant_marginal_predictive(prior, x[:8], y[:8], x[8:], num_warmup=300, num_samples=300, seed=1)
    assert nuts.diagnostics["max_r_hat"] < 1.05 and nuts.diagnostics["min_ess"] > 100
    ref = invariant_importance_predictive(prior, x[:8], y[:8], x[8:], num_samples=20000, seed=2)
    assert ref.diagnostics["weights_ess"] > 2000
    assert np.abs(nuts.log_prob(y[8:]) - ref.log_prob(y[8:])).max() < 0.05
    unit = invariant_importance_predictive(prior, batch.x[0, :8], batch.y[0, :8], batch.x[0, 8:], num_samples=20000,
                                           seed=2)
    np.testing.assert_allclose(ref.log_prob(y[8:]), unit.log_prob(batch.y[0, 8:]) - math.log(5.0), rtol=1e-8)


def test_quadrature_over_the_shape_agrees_with_importance_sampling() -> None:
    """Two slow references that share nothing but the integrand: Gauss-Hermite over the log-normal shape
    hyperparameters and self-normalised importance sampling from the hyperprior."""
    from priorfit.exact.invariant import invariant_importance_predictive, invariant_quadrature_predictive

    prior = InvariantGPPrior(GPPrior(kernel=Scale(Matern(nu=2.5, lengthscale=LogNormal(-1.0, 0.5))),
                                     noise_std=LogNormal(-2.0, 0.5), max_features=1))
    for n in (3, 10):
        batch = prior.sample(1, n + 12, gen(n), n_context=n)
        x, y = batch.x[0], batch.y[0]
        quad = invariant_quadrature_predictive(prior, x[:n], y[:n], x[n:], nodes=16)
        assert quad.diagnostics["points"] == 16 ** 3  # outputscale, lengthscale and noise
        ref = invariant_importance_predictive(prior, x[:n], y[:n], x[n:], num_samples=40000, seed=3)
        assert np.abs(quad.log_prob(y[n:]) - ref.log_prob(y[n:])).max() < 0.02
    with pytest.raises(Exception, match="LogNormal or Fixed"):
        from priorfit.priors import Gamma

        invariant_quadrature_predictive(InvariantGPPrior(GPPrior(
            kernel=Scale(Matern(nu=2.5, lengthscale=Gamma(2.0, 4.0))), max_features=1)), x[:n], y[:n], x[n:])
