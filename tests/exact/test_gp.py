"""Exact GP references: closed forms against naive numpy / scipy, and ML-II against the oracle."""

from __future__ import annotations

import dataclasses

import math

import numpy as np
import pytest
import torch
from scipy import stats

from priorfit.exact import MLIIFit, gp_log_marginal_likelihood, gp_predictive, ml2_fit
from priorfit.exceptions import InputDataError
from priorfit.priors import RBF, Fixed, GPPrior, LogNormal, Matern, Normal, Periodic, Scale

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_prior(jitter: float = 1e-6) -> GPPrior:
    return GPPrior(
        kernel=Scale(Matern(nu=2.5)) + Periodic(),
        noise_std=LogNormal(-2.0, 0.5),
        mean=Normal(0.0, 1.0),
        max_features=2,
        jitter=jitter,
    )


def naive_predictive(prior, params, x_ctx, y_ctx, x_qry):
    """Textbook formulas with an explicit inverse, one dataset at a time, numpy."""
    means, variances = [], []
    for i in range(x_ctx.shape[0]):
        p = params.map(lambda t: t[i : i + 1])
        s2 = float(p.noise_std ** 2) + prior.jitter
        m = float(p.mean)
        k = prior.covariance(p, x_ctx[i : i + 1], x_ctx[i : i + 1])[0].numpy()
        ks = prior.covariance(p, x_ctx[i : i + 1], x_qry[i : i + 1])[0].numpy()
        kss = prior.covariance(p, x_qry[i : i + 1], x_qry[i : i + 1])[0].numpy()
        inv = np.linalg.inv(k + s2 * np.eye(len(k)))
        means.append(m + ks.T @ inv @ (y_ctx[i].numpy() - m))
        variances.append(np.diag(kss - ks.T @ inv @ ks) + s2)
    return np.stack(means), np.stack(variances)


def split(batch, n_ctx):
    return batch.x[:, :n_ctx], batch.y[:, :n_ctx], batch.x[:, n_ctx:], batch.y[:, n_ctx:]


def test_predictive_equals_naive_inverse() -> None:
    prior = random_prior()
    batch = prior.sample(4, 30, gen(0))
    x_c, y_c, x_q, _ = split(batch, 20)
    mean, var = gp_predictive(prior, batch.params, x_c, y_c, x_q)
    assert mean.shape == var.shape == (4, 10) and mean.dtype == var.dtype == F64
    ref_mean, ref_var = naive_predictive(prior, batch.params, x_c, y_c, x_q)
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(var.numpy(), ref_var, rtol=1e-7, atol=1e-8)


def test_predictive_without_context_is_the_prior() -> None:
    prior = random_prior(jitter=1e-5)
    batch = prior.sample(3, 6, gen(1))
    x_q = batch.x
    empty_x, empty_y = x_q[:, :0], batch.y[:, :0]
    mean, var = gp_predictive(prior, batch.params, empty_x, empty_y, x_q)
    torch.testing.assert_close(mean, batch.params.mean[:, None].expand(3, 6))
    expected_var = prior.kernel.diag(batch.params.kernel, x_q) + batch.params.noise_std[:, None] ** 2 + 1e-5
    torch.testing.assert_close(var, expected_var)
    assert torch.equal(gp_log_marginal_likelihood(prior, batch.params, empty_x, empty_y), torch.zeros(3, dtype=F64))


def test_predictive_mean_interpolates_nearly_noiseless_data() -> None:
    prior = GPPrior(kernel=Scale(RBF(lengthscale=Fixed(0.3))), noise_std=Fixed(1e-3), mean=Fixed(0.5))
    batch = prior.sample(2, 15, gen(2))
    mean, var = gp_predictive(prior, batch.params, batch.x, batch.y, batch.x)
    assert (mean - batch.y).abs().max() < 1e-2
    # at a context point Var[f | y] <= s^2, so s^2 <= Var[y] <= 2 s^2 with s^2 = noise^2 + jitter = 2e-6
    s2 = 1e-6 + prior.jitter
    assert (var >= s2).all() and (var <= 2 * s2 + 1e-12).all()


def test_log_marginal_likelihood_equals_scipy() -> None:
    prior = random_prior()
    batch = prior.sample(3, 12, gen(3))
    lml = gp_log_marginal_likelihood(prior, batch.params, batch.x, batch.y)
    assert lml.shape == (3,)
    for i in range(3):
        p = batch.params.map(lambda t: t[i : i + 1])
        cov = prior.covariance(p, batch.x[i : i + 1], batch.x[i : i + 1])[0].numpy()
        cov += (float(p.noise_std) ** 2 + prior.jitter) * np.eye(12)
        ref = stats.multivariate_normal(mean=np.full(12, float(p.mean)), cov=cov).logpdf(batch.y[i].numpy())
        assert lml[i].item() == pytest.approx(ref, rel=1e-10, abs=1e-9)


def test_predictive_density_is_ratio_of_marginal_likelihoods() -> None:
    """log p(y_q | y_c) = log p(y_c, y_q) - log p(y_c) for one query: predictive and LML agree."""
    prior = random_prior()
    batch = prior.sample(3, 9, gen(4))
    x_c, y_c, x_q, y_q = split(batch, 8)
    mean, var = gp_predictive(prior, batch.params, x_c, y_c, x_q)
    log_pred = -0.5 * torch.log(2 * math.pi * var) - 0.5 * (y_q - mean) ** 2 / var
    ratio = gp_log_marginal_likelihood(prior, batch.params, batch.x, batch.y) - gp_log_marginal_likelihood(
        prior, batch.params, x_c, y_c
    )
    torch.testing.assert_close(log_pred[:, 0], ratio, rtol=1e-9, atol=1e-9)


def test_bad_inputs_name_the_argument() -> None:
    prior = random_prior()
    batch = prior.sample(2, 10, gen(5))
    x_c, y_c, x_q, _ = split(batch, 6)
    with pytest.raises(InputDataError, match="x_ctx"):
        gp_predictive(prior, batch.params, x_c[0], y_c, x_q)
    with pytest.raises(InputDataError, match="y_ctx"):
        gp_predictive(prior, batch.params, x_c, y_c[:, :3], x_q)
    with pytest.raises(InputDataError, match="x_qry"):
        gp_predictive(prior, batch.params, x_c, y_c, x_q[..., :1])
    bad = y_c.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(InputDataError, match="y_ctx.*NaN"):
        gp_predictive(prior, batch.params, x_c, bad, x_q)
    with pytest.raises(TypeError, match="GPParams"):
        gp_predictive(prior, batch.params.flat(), x_c, y_c, x_q)
    with pytest.raises(ValueError, match="noise_std"):
        gp_predictive(prior, dataclasses.replace(batch.params, noise_std=batch.params.noise_std[:1]), x_c, y_c, x_q)
    with pytest.raises(ValueError, match="mean"):
        gp_predictive(prior, dataclasses.replace(batch.params, mean=batch.params.mean[:1]), x_c, y_c, x_q)
    with pytest.raises(InputDataError, match="y"):
        gp_log_marginal_likelihood(prior, batch.params, batch.x, batch.y[:, :4])
    with pytest.raises(TypeError, match="prior"):
        gp_predictive(prior.kernel, batch.params, x_c, y_c, x_q)


# ---- ML-II -------------------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """ML-II makes hundreds of tiny GPyTorch calls; on shared cores intra-op threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gaussian_nll(y, mean, var):
    return (0.5 * torch.log(2 * math.pi * var) + 0.5 * (y - mean) ** 2 / var).mean()


def test_ml2_recovers_hyperparameters_and_is_close_to_the_oracle(one_thread) -> None:
    prior = GPPrior.fixed_rbf(lengthscale=0.2, outputscale=1.0, noise_std=0.1)
    batch = prior.sample(3, 150, gen(6))
    x_c, y_c, x_q, y_q = split(batch, 50)
    oracle_mean, oracle_var = gp_predictive(prior, batch.params, x_c, y_c, x_q)
    gaps = []
    for i in range(3):
        fit = ml2_fit(prior, x_c[i], y_c[i], generator=gen(7))
        assert isinstance(fit, MLIIFit)
        assert 0.1 < fit.params.kernel.base.lengthscale.item() < 0.4
        assert 0.05 < fit.params.noise_std.item() < 0.2
        assert 0.2 < fit.params.kernel.outputscale.item() < 5.0
        # the maximum is at least the likelihood at the true hyperparameters
        truth = gp_log_marginal_likelihood(
            GPPrior.fixed_rbf(), batch.params.map(lambda t: t[i : i + 1]), x_c[i : i + 1], y_c[i : i + 1]
        )
        assert fit.log_marginal_likelihood >= truth.item() - 1e-3
        mean, var = fit.predict(x_q[i])
        gaps.append((gaussian_nll(y_q[i], mean, var) - gaussian_nll(y_q[i], oracle_mean[i], oracle_var[i])).item())
    assert np.mean(gaps) < 0.15, gaps


def test_ml2_prediction_matches_closed_form_at_fitted_params(one_thread) -> None:
    prior = GPPrior(kernel=Scale(Matern(nu=1.5)) + Periodic(), noise_std=LogNormal(-2.0, 0.5), max_features=2)
    batch = prior.sample(1, 40, gen(8))
    x_c, y_c, x_q, _ = split(batch, 30)
    fit = ml2_fit(prior, x_c[0], y_c[0], restarts=2, max_iter=50, generator=gen(9))
    assert set(fit.params.flat()) == set(prior.param_shapes(2))
    mean, var = fit.predict(x_q[0])
    no_jitter = GPPrior(kernel=prior.kernel, noise_std=prior.noise_std, max_features=2, jitter=0.0)
    params = fit.params.map(lambda t: t[None])
    ref_mean, ref_var = gp_predictive(no_jitter, params, x_c, y_c, x_q)
    torch.testing.assert_close(mean, ref_mean[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(var, ref_var[0], rtol=1e-6, atol=1e-6)
    lml = gp_log_marginal_likelihood(no_jitter, params, x_c, y_c)
    assert fit.log_marginal_likelihood == pytest.approx(lml.item(), rel=1e-6, abs=1e-6)
    # reproducible
    m2, v2 = ml2_fit(prior, x_c[0], y_c[0], restarts=2, max_iter=50, generator=gen(9)).predict(x_q[0])
    assert torch.equal(m2, mean) and torch.equal(v2, var)


def test_ml2_bad_inputs() -> None:
    prior = GPPrior.fixed_rbf()
    batch = prior.sample(1, 10, gen(10))
    x, y = batch.x[0], batch.y[0]
    with pytest.raises(InputDataError, match="x_ctx"):
        ml2_fit(prior, x[:0], y[:0])
    with pytest.raises(InputDataError, match="x_ctx"):
        ml2_fit(prior, batch.x, y)
    with pytest.raises(InputDataError, match="y_ctx"):
        ml2_fit(prior, x, y[:5])
    fit = ml2_fit(prior, x, y, restarts=1, max_iter=5)
    with pytest.raises(InputDataError, match="x_qry"):
        fit.predict(torch.rand(3, 2, dtype=F64))
    with pytest.raises(InputDataError, match="x_qry.*NaN"):
        fit.predict(torch.full((3, 1), float("nan"), dtype=F64))
    with pytest.raises(ValueError, match="restarts"):
        ml2_fit(prior, x, y, restarts=0)
    with pytest.raises(TypeError, match="generator"):
        ml2_fit(prior, x, y, generator=1)
