"""The Student-t process: its sampler, its closed-form evidence and predictive against Monte Carlo over the
variance factor, the quadrature for other mixing priors, and NUTS over the GP's hyperparameters against
importance sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from priorfit.exact.reference import ReferenceKind, Task
from priorfit.exact.student_t import (
    StudentTEvidence,
    scale_quadrature_predictive,
    student_t_process_log_likelihood,
    student_t_process_marginal_predictive,
    student_t_process_predictive,
)
from priorfit.exceptions import ConfigError
from priorfit.predictive.student_t import StudentTPredictive
from priorfit.priors import (
    NNGP,
    Fixed,
    Gamma,
    GPPrior,
    HalfCauchy,
    InverseGamma,
    LogNormal,
    Matern,
    Scale,
    StudentTNoisePrior,
    StudentTProcessPrior,
)

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fixed_gp(d: int = 2) -> GPPrior:
    return GPPrior(kernel=NNGP(weight_variance=Fixed(2.0), bias_variance=Fixed(0.1)), noise_std=Fixed(0.2),
                   mean=Fixed(0.5), max_features=d)


def covariance(prior: StudentTProcessPrior, params, x: torch.Tensor) -> torch.Tensor:
    s2 = params.noise_std.square() + prior.gp.jitter
    return prior.gp.covariance(params, x, x) + s2[:, None, None] * torch.eye(x.shape[1], dtype=F64)


def monte_carlo(prior, params, x_c, y_c, x_q, y_q, draws: int = 400_000, seed: int = 1):
    """log p(y_c), its Monte Carlo standard error, and log p(y_q | y_c) per query, by averaging the GP's
    densities over draws of the variance factor from its prior: the slow, obvious integral."""
    s = prior.variance_factor(prior.mixing.sample((draws,), gen(seed)))
    cov = covariance(prior, params, x_c[None])[0]
    chol = torch.linalg.cholesky(cov)
    r = y_c - params.mean
    beta = float(torch.cholesky_solve(r[:, None], chol).squeeze(-1) @ r)
    n = y_c.shape[0]
    log_lik = (-0.5 * beta / s - 0.5 * n * s.log() - torch.diagonal(chol).log().sum()
               - 0.5 * n * math.log(2 * math.pi))
    log_evidence = torch.logsumexp(log_lik, 0) - math.log(draws)
    weights = (log_lik - log_lik.max()).exp()
    log_se = float(weights.std() / weights.mean()) / math.sqrt(draws)  # the delta method's s.e. of the log mean
    cross = prior.gp.covariance(params, x_c[None], x_q[None])[0]
    loc = params.mean + cross.T @ torch.cholesky_solve(r[:, None], chol).squeeze(-1)
    var = (prior.gp.kernel.diag(params.kernel, x_q[None])[0] + params.noise_std.square() + prior.gp.jitter
           - torch.linalg.solve_triangular(chol, cross, upper=False).square().sum(0))
    total = s[:, None] * var[None]
    log_normal = -0.5 * (y_q[None] - loc[None]).square() / total - 0.5 * torch.log(2 * math.pi * total)
    log_pred = torch.logsumexp(log_lik[:, None] + log_normal, 0) - torch.logsumexp(log_lik, 0)
    return float(log_evidence), log_se, log_pred.numpy()


def test_sampler_scales_the_whole_covariance() -> None:
    """Whitened by the GP's covariance, y - m is sqrt(s) times iid N(0, 1): divided by sqrt(s) it is standard
    normal, and its second moment is E[s] = b / (a - 1)."""
    prior = StudentTProcessPrior(gp=fixed_gp(), mixing=InverseGamma(3.0, 2.0))
    batch = prior.sample(3000, 10, gen(0), n_features=2)
    chol = torch.linalg.cholesky(covariance(prior, batch.params.gp, batch.x))
    z = torch.linalg.solve_triangular(chol, (batch.y - 0.5)[..., None], upper=False)[..., 0]
    unit = (z / batch.params.variance.sqrt()[:, None]).flatten()
    se = 1 / math.sqrt(unit.numel())
    assert abs(float(unit.mean())) < 4 * se and abs(float(unit.var()) - 1) < 4 * math.sqrt(2) * se
    assert float(z.square().mean()) == pytest.approx(1.0, rel=0.1)  # E[s] = 2 / (3 - 1)
    assert float(batch.params.variance.mean()) == pytest.approx(1.0, rel=0.1)
    std = StudentTProcessPrior(gp=fixed_gp(), mixing=Gamma(2.0, 4.0), mixing_on="std")
    torch.testing.assert_close(std.sample(4, 6, gen(1)).params.variance,
                               Gamma(2.0, 4.0).sample((4,), _after_gp_draw(std, 4, 6, gen(1))).square())


def _after_gp_draw(prior, batch: int, n: int, generator: torch.Generator) -> torch.Generator:
    prior.gp.draw(batch, n, prior.max_features, generator)
    return generator


@pytest.mark.parametrize("n", [1, 5, 20])
def test_closed_form_against_monte_carlo(n: int) -> None:
    prior = StudentTProcessPrior(gp=fixed_gp(), mixing=InverseGamma(2.0, 1.5))
    batch = prior.sample(1, n + 6, gen(n), n_features=2)
    params = batch.params.gp
    x_c, y_c, x_q, y_q = batch.x[0, :n], batch.y[0, :n], batch.x[0, n:], batch.y[0, n:]
    mc_evidence, se, mc_pred = monte_carlo(prior, params, x_c, y_c, x_q, y_q, draws=1_000_000)
    evidence = student_t_process_log_likelihood(prior, params, x_c[None], y_c[None])
    assert se < 0.01 and float(evidence) == pytest.approx(mc_evidence, abs=4 * se)
    loc, scale, df = student_t_process_predictive(prior, params, x_c[None], y_c[None], x_q[None])
    assert df == 2 * 2.0 + n
    np.testing.assert_allclose(StudentTPredictive(loc[0], scale[0], df).log_prob(y_q), mc_pred, atol=5e-3)


def test_quadrature_matches_the_closed_form_and_monte_carlo() -> None:
    ig = StudentTProcessPrior(gp=fixed_gp(), mixing=InverseGamma(2.0, 2.0))
    batch = ig.sample(1, 40, gen(5), n_features=2)
    params = batch.params.gp
    for n in (1, 8, 32):
        x_c, y_c, x_q, y_q = batch.x[0, :n], batch.y[0, :n], batch.x[0, 32:], batch.y[0, 32:]
        loc, scale, df = student_t_process_predictive(ig, params, x_c[None], y_c[None], x_q[None])
        quad = scale_quadrature_predictive(ig, params, x_c, y_c, x_q)
        np.testing.assert_allclose(quad.log_prob(y_q), StudentTPredictive(loc[0], scale[0], df).log_prob(y_q),
                                   atol=1e-8)
        np.testing.assert_allclose(quad.cdf(y_q), StudentTPredictive(loc[0], scale[0], df).cdf(y_q), atol=1e-8)
    for mixing, on in ((HalfCauchy(1.0), "std"), (Gamma(2.0, 2.0), "variance"), (LogNormal(0.0, 1.0), "std")):
        prior = StudentTProcessPrior(gp=fixed_gp(), mixing=mixing, mixing_on=on)
        x_c, y_c, x_q, y_q = batch.x[0, :10], batch.y[0, :10], batch.x[0, 32:], batch.y[0, 32:]
        _, _, mc_pred = monte_carlo(prior, params, x_c, y_c, x_q, y_q)
        quad = scale_quadrature_predictive(prior, params, x_c, y_c, x_q)
        np.testing.assert_allclose(quad.log_prob(y_q), mc_pred, atol=1e-2)
        assert quad.diagnostics["method"] == "quadrature"


def test_jax_evidence_is_the_torch_evidence() -> None:
    import jax.numpy as jnp

    from priorfit.exact.marginal import _x64
    from priorfit.priors import GPParams

    prior = StudentTProcessPrior(gp=GPPrior(kernel=Scale(Matern()), noise_std=LogNormal(-2, 0.5),
                                            mean=Fixed(0.3), max_features=2), mixing=InverseGamma(2.5, 1.5))
    batch = prior.sample(1, 12, gen(6), n_features=2)
    torch_value = float(student_t_process_log_likelihood(prior, batch.params.gp, batch.x, batch.y))
    with _x64():
        one = batch.params.gp.map(lambda t: jnp.asarray(t[0].numpy()))
        jax_value = float(StudentTEvidence(2.5, 1.5)(prior.gp.kernel, GPParams(one.kernel, one.noise_std, one.mean),
                                                     jnp.asarray(batch.x[0].numpy()),
                                                     jnp.asarray(batch.y[0].numpy()), prior.gp.jitter))
    assert jax_value == pytest.approx(torch_value, rel=1e-10)


def test_nuts_marginal_against_importance_sampling() -> None:
    """With hyperpriors on the GP, NUTS under the Student-t evidence agrees with self-normalised importance
    sampling (hyperprior draws weighted by the same evidence, one Student-t each)."""
    from priorfit.predictive.mixture import StudentTMixturePredictive

    prior = StudentTProcessPrior(gp=GPPrior(kernel=Matern(ard=False, lengthscale=LogNormal(-1.2, 0.5)),
                                            noise_std=LogNormal(-2.0, 0.4), max_features=1),
                                 mixing=InverseGamma(2.0, 2.0))
    batch = prior.sample(1, 14, gen(7), n_features=1)
    x_c, y_c, x_q, y_q = batch.x[0, :8], batch.y[0, :8], batch.x[0, 8:], batch.y[0, 8:]
    nuts = student_t_process_marginal_predictive(prior, x_c, y_c, x_q, num_warmup=300, num_samples=400, seed=3)
    assert nuts.diagnostics["max_r_hat"] < 1.05
    draws = prior.gp.sample_params(20000, 1, gen(8))
    log_w = student_t_process_log_likelihood(prior, draws, x_c.expand(20000, -1, -1), y_c.expand(20000, -1))
    loc, scale, df = student_t_process_predictive(prior, draws, x_c.expand(20000, -1, -1), y_c.expand(20000, -1),
                                                  x_q.expand(20000, -1, -1))
    reference = StudentTMixturePredictive(loc, scale, df=df, log_weights=log_w)
    assert reference.weights_ess > 500
    assert np.abs(nuts.log_prob(y_q) - reference.log_prob(y_q)).max() < 0.05


def test_references() -> None:
    prior = StudentTProcessPrior(gp=fixed_gp(1))
    oracle, marginal = prior.references()
    assert (oracle.kind, marginal.kind) == (ReferenceKind.ORACLE, ReferenceKind.MARGINAL)
    batch = prior.sample(1, 9, gen(9), n_features=1)
    task = Task(x_ctx=batch.x[0, :5], y_ctx=batch.y[0, :5], x_qry=batch.x[0, 5:], truth=batch.params)
    a, b = oracle.predict(task, 0), marginal.predict(task, 0)
    np.testing.assert_allclose(a.predictive.log_prob(batch.y[0, 5:]), b.predictive.log_prob(batch.y[0, 5:]),
                               atol=1e-10)  # every GP hyperparameter fixed: the oracle is the Bayes posterior
    other = StudentTProcessPrior(gp=fixed_gp(1), mixing=HalfCauchy(1.0), mixing_on="std")
    assert [r.kind for r in other.references()] == [ReferenceKind.ORACLE, ReferenceKind.MARGINAL]
    free = StudentTProcessPrior(gp=GPPrior(max_features=1), mixing=Gamma(2.0, 1.0))
    assert len(free.references()) == 1  # no exact marginal: said by leaving it out


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="gp"):
        StudentTProcessPrior(gp=Matern())
    with pytest.raises(ValueError, match="mixing_on"):
        StudentTProcessPrior(mixing_on="scale")
    with pytest.raises(ValueError, match="positive"):
        StudentTProcessPrior(mixing=Fixed(-1.0))
    with pytest.raises(ConfigError, match="InverseGamma"):
        student_t_process_predictive(StudentTProcessPrior(mixing=Gamma(2.0, 1.0)), None, torch.zeros(1, 1, 1),
                                     torch.zeros(1, 1), torch.zeros(1, 1, 1))


# ---- Student-t observation noise -------------------------------------------------------------------------------


def noise_prior(df=None) -> StudentTNoisePrior:
    gp = GPPrior(kernel=Scale(Matern(lengthscale=LogNormal(-1.0, 0.5)), outputscale=Fixed(1.0)),
                 noise_std=LogNormal(-2.0, 0.5), max_features=2)
    return StudentTNoisePrior(gp=gp) if df is None else StudentTNoisePrior(gp=gp, df=df)


def test_noise_is_student_t() -> None:
    """With a negligible function, the noise divided by its scale is Student-t with the drawn degrees of
    freedom (Kolmogorov-Smirnov), and the precisions are Gamma(df/2, rate df/2)."""
    from scipy import stats

    from priorfit.priors.student_t import gamma_precisions

    gp = GPPrior(kernel=Scale(Matern(), outputscale=Fixed(1e-12)), noise_std=Fixed(1.0), max_features=1)
    batch = StudentTNoisePrior(gp=gp, df=Fixed(3.0)).sample(400, 20, gen(10))
    assert stats.kstest(batch.y.flatten().numpy(), stats.t(3.0).cdf).pvalue > 1e-3
    assert stats.kstest(batch.y.flatten().numpy(), stats.norm().cdf).pvalue < 1e-6  # it can fail
    lam = gamma_precisions(torch.full((200,), 0.7, dtype=F64), 50, gen(11))
    assert stats.kstest(lam.flatten().numpy(), stats.gamma(0.35, scale=1 / 0.35).cdf).pvalue > 1e-3


def test_noise_oracle_against_monte_carlo() -> None:
    """The oracle's mixture over the query's precision (quadrature) against drawing that precision."""
    from priorfit.exact.invariant import invariant_predictive
    from priorfit.exact.student_t import _noise_covariances, student_t_noise_predictive
    from priorfit.priors.student_t import gamma_precisions

    prior = noise_prior(df=Fixed(1.5))
    batch = prior.sample(1, 14, gen(12), n_features=2)
    truth = batch.params
    x_c, y_c, x_q, y_q = batch.x[0, :10], batch.y[0, :10], batch.x[0, 10:], batch.y[0, 10:]
    quad = student_t_noise_predictive(prior, truth.gp, truth.df, truth.precisions[:, :10], x_c, y_c, x_q)
    draws = gamma_precisions(torch.full((1,), 1.5, dtype=F64), 200_000, gen(13))[0]
    cov, cross, var_f = _noise_covariances(prior, truth.gp, truth.precisions[:, :10], x_c[None], x_q[None])
    noisy = var_f + truth.gp.noise_std.square()[:, None] / draws[:, None]  # draws x m
    loc, scale, df = invariant_predictive(cov.expand(len(draws), -1, -1), cross.expand(len(draws), -1, -1), noisy,
                                          y_c.expand(len(draws), -1))
    mc = torch.logsumexp(torch.distributions.StudentT(df[:, None], loc, scale).log_prob(y_q), 0) - math.log(len(draws))
    np.testing.assert_allclose(quad.log_prob(y_q), mc.numpy(), atol=0.01)


def test_noise_marginal_against_importance_sampling() -> None:
    """NUTS over the latent function (the reference) against self-normalised importance sampling over the
    precisions with everything else integrated in closed form: two formulations, one posterior."""
    import warnings

    from priorfit.exact.student_t import (
        student_t_noise_evidence,
        student_t_noise_marginal_predictive,
        student_t_noise_predictive,
    )
    from priorfit.priors.student_t import gamma_precisions

    prior = noise_prior()
    batch = prior.sample(1, 12, gen(14), n_features=1)
    x_c, y_c, x_q, y_q = batch.x[0, :5], batch.y[0, :5], batch.x[0, 5:], batch.y[0, 5:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nuts = student_t_noise_marginal_predictive(prior, x_c, y_c, x_q, num_warmup=300, num_samples=400, seed=1)
    assert nuts.diagnostics["max_r_hat"] < 1.05 and nuts.diagnostics["min_ess"] > 50
    assert {"df", "loc", "log_scale", "w", "noise_std", "lengthscale"} <= set(nuts.diagnostics["r_hat"])
    g = gen(15)
    params = prior.gp.sample_params(20000, 1, g)
    df = prior.df.sample((20000,), g)
    lam = gamma_precisions(df, 5, g)
    log_w = student_t_noise_evidence(prior, params, lam, x_c, y_c)
    reference = student_t_noise_predictive(prior, params, df, lam, x_c, y_c, x_q, log_weights=log_w, nodes=16)
    assert float(1 / torch.softmax(log_w, 0).square().sum()) > 1000
    assert abs(float(nuts.log_prob(y_q).mean() - reference.log_prob(y_q).mean())) < 0.03
    # per query, looser: a query in the predictive's tail (log density about -2.4) is estimated from few of the
    # NUTS draws (min ESS > 50), and its Monte Carlo error moves with the CPU's floating point (0.10 on AVX-512 AMD)
    assert np.abs(nuts.log_prob(y_q) - reference.log_prob(y_q)).max() < 0.15


def test_noise_prior_references_and_arguments() -> None:
    kinds = [r.kind for r in noise_prior().references()]
    assert kinds == [ReferenceKind.ORACLE, ReferenceKind.MARGINAL, ReferenceKind.FITTED, ReferenceKind.FITTED]
    assert noise_prior().symmetries.negate_targets
    with pytest.raises(ValueError, match="df"):
        StudentTNoisePrior(df=Fixed(0.0))
    with pytest.raises(TypeError, match="gp"):
        StudentTNoisePrior(gp=None)
