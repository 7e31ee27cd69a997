"""Hyperprior-marginalised GP predictive: the one kernel body on JAX arrays against torch, the NUTS potential
against the torch log posterior, NUTS against importance sampling, and the mixture's methods against quadrature,
Monte Carlo and scipy."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import stats

from priorfit.exact import (
    MarginalPredictive,
    gp_log_marginal_likelihood,
    gp_predictive,
    importance_predictive,
    marginal_predictive,
)
from priorfit.exact.marginal import _log_likelihood, _param_table, _potential_fn_gen, _x64
from priorfit.exceptions import InputDataError
from priorfit.priors import (
    RBF,
    RationalQuadratic,
    Fixed,
    Gamma,
    GPPrior,
    InverseGamma,
    Linear,
    LogNormal,
    Matern,
    Normal,
    Periodic,
    Scale,
    SpectralMixture,
    Uniform,
)

F64 = torch.float64
# NUTS settings of every test that samples: one XLA compilation (n = 8, d = 1) serves them all.
NUTS = {"num_warmup": 300, "num_samples": 300, "num_chains": 2, "seed": 0}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_prior() -> GPPrior:
    return GPPrior(
        kernel=Scale(RBF(lengthscale=LogNormal(-1.0, 0.5)), outputscale=LogNormal(0.0, 0.3)),
        noise_std=LogNormal(-2.0, 0.5),
        mean=Normal(0.0, 0.3),
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The machine is shared: one intra-op thread for torch in this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset():
    """One dataset of the small prior: 8 context points and 5 held-out points, d = 1."""
    batch = small_prior().sample(1, 13, gen(1))
    x, y = batch.x[0], batch.y[0]
    return x[:8], y[:8], x[8:], y[8:]


@pytest.fixture(scope="module")
def nuts_fit(dataset):
    x_c, y_c, x_q, _ = dataset
    return marginal_predictive(small_prior(), x_c, y_c, x_q, **NUTS)


@pytest.fixture(scope="module")
def is_fit(dataset):
    x_c, y_c, x_q, _ = dataset
    return importance_predictive(small_prior(), x_c, y_c, x_q, num_samples=20000, seed=0)


# ----------------------------------------------------------------------------------------------------------------
# JAX twins of the torch code


KERNELS = [
    RBF(ard=True),
    RBF(ard=False),
    Matern(nu=0.5),
    Matern(nu=1.5, ard=False),
    Matern(nu=2.5),
    Periodic(ard=True),
    Linear(),
    SpectralMixture(num_mixtures=2),
    RationalQuadratic(),
    Scale(RBF()),
    Scale(Matern(nu=1.5)) + Periodic(),
    Scale(RBF()) * Matern(nu=0.5) + Linear(),
    (Scale(Matern(nu=2.5)) + Scale(RBF())) * Periodic(),
]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: type(k).__name__)
def test_the_kernel_body_gives_the_same_matrix_on_jax_arrays(kernel) -> None:
    """Kernel.matrix is written against the array API: on JAX arrays (as the NUTS potential runs it) it gives
    torch's matrix."""
    import jax.numpy as jnp

    g = gen(3)
    d = 3
    params = kernel.sample_params(1, d, g)
    x1 = torch.rand(1, 6, d, generator=g, dtype=F64)
    x2 = torch.rand(1, 4, d, generator=g, dtype=F64)
    with _x64():  # arrays made outside would be float32
        p_jax = params.map(lambda t: jnp.asarray(t.numpy()))
        for a, b in ((x1, x2), (x1, x1)):  # (x1, x1) includes r = 0 on the diagonal
            got = np.asarray(kernel.matrix(p_jax, jnp.asarray(a.numpy()), jnp.asarray(b.numpy())))[0]
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, kernel.forward(params, a, b)[0].numpy(), rtol=0, atol=1e-10)


def test_jax_log_likelihood_equals_torch() -> None:
    prior = GPPrior(kernel=Scale(Matern(nu=1.5)) + Periodic(), noise_std=LogNormal(-2.0, 0.5),
                    mean=Normal(0.0, 1.0), max_features=2)
    import jax.numpy as jnp

    batch = prior.sample(3, 9, gen(4))
    ref = gp_log_marginal_likelihood(prior, batch.params, batch.x, batch.y)
    with _x64():
        for i in range(3):
            p = batch.params.map(lambda t: jnp.asarray(t[i].numpy()))
            got = float(_log_likelihood(prior.kernel, p, jnp.asarray(batch.x[i].numpy()),
                                        jnp.asarray(batch.y[i].numpy()), prior.jitter))
            assert abs(got - float(ref[i])) < 1e-10


HYPERPRIORS = [LogNormal(-1.0, 0.5), Normal(0.3, 2.0), Gamma(2.0, 3.0), InverseGamma(3.0, 2.0), Uniform(0.1, 2.0)]


SCIPY_TWINS = [stats.lognorm(s=0.5, scale=math.exp(-1.0)), stats.norm(0.3, 2.0), stats.gamma(2.0, scale=1 / 3.0),
               stats.invgamma(3.0, scale=2.0), stats.uniform(0.1, 1.9)]


@pytest.mark.parametrize("hp, twin", list(zip(HYPERPRIORS, SCIPY_TWINS)), ids=lambda h: type(h).__name__)
def test_hyperprior_densities_are_scipys_on_torch_and_jax(hp, twin) -> None:
    """One log_prob body per hyperprior, scored on torch tensors and on JAX arrays (the NUTS potential's)."""
    import jax.numpy as jnp

    values = hp.sample((7,), gen(5))
    expected = twin.logpdf(values.numpy())
    np.testing.assert_allclose(hp.log_prob(values).numpy(), expected, rtol=1e-12, atol=1e-12)
    with _x64():
        got = np.asarray(hp.log_prob(jnp.asarray(values.numpy())))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert twin.cdf(hp.support.high) - twin.cdf(hp.support.low) == pytest.approx(1.0)


def test_nuts_potential_is_the_log_posterior_in_unconstrained_coordinates() -> None:
    """U(z) = -[log p(theta) + log p(y | theta) + log |d theta / d z|], checked against the torch log prior and
    marginal likelihood with the Jacobians written by hand (log for positive, logit-affine for Uniform)."""
    import jax.numpy as jnp

    prior = GPPrior(
        kernel=Scale(Matern(nu=2.5, lengthscale=Gamma(3.0, 6.0)), outputscale=InverseGamma(3.0, 2.0))
        + Periodic(lengthscale=Uniform(0.2, 2.0), period=Fixed(0.5)),
        noise_std=LogNormal(-2.0, 0.5),
        mean=Normal(0.0, 1.0),
        max_features=2,
    )
    batch = prior.sample(1, 7, gen(6))
    table = _param_table(prior, 2)
    z, log_jac = {}, 0.0
    for name, _, hp in table:
        v = batch.params.flat()[name][0].numpy()
        if isinstance(hp, Fixed):
            continue
        if isinstance(hp, Uniform):
            u = (v - hp.low) / (hp.high - hp.low)
            z[name] = np.log(u) - np.log1p(-u)
            log_jac += np.sum(np.log(hp.high - hp.low) + np.log(u) + np.log1p(-u))
        elif isinstance(hp, Normal):
            z[name] = v
        else:
            z[name] = np.log(v)
            log_jac += np.sum(np.log(v))
    expected = -(float(prior.log_prior(batch.params)[0])
                 + float(gp_log_marginal_likelihood(prior, batch.params, batch.x, batch.y)[0]) + log_jac)
    with _x64():
        potential = _potential_fn_gen(prior.kernel, table, prior.jitter)(
            jnp.asarray(batch.x[0].numpy()), jnp.asarray(batch.y[0].numpy())
        )
        got = float(potential({k: jnp.asarray(v) for k, v in z.items()}))
    assert abs(got - expected) < 1e-9


# ----------------------------------------------------------------------------------------------------------------
# NUTS against importance sampling


def test_nuts_agrees_with_importance_sampling(dataset, nuts_fit, is_fit) -> None:
    """log p(y_j | D) at 5 held-out points from NUTS (600 draws) and from importance sampling (20000 prior draws).

    Tolerance, per point: 4 combined Monte-Carlo standard errors of the two estimates of p(y_j | D) (relative
    errors = errors of the log). NUTS: sd of the per-draw densities p_s over sqrt(ESS), the ESS of that sequence
    from its autocorrelation across chains. Importance sampling: the delta-method error of a self-normalised
    estimate, sqrt(sum_s w_s^2 (p_s - p)^2) / p. With 5 points, a false alarm is a ~3e-4 event; the tolerance
    itself must stay under 0.1 nats for the test to mean anything.
    """
    from numpyro.diagnostics import effective_sample_size

    y_q = dataset[3]
    lp_nuts, lp_is = nuts_fit.log_prob(y_q), is_fit.log_prob(y_q)

    def component_densities(mix):  # S x m
        return torch.exp(-0.5 * (math.log(2 * math.pi) + mix.variances.log() + (y_q - mix.means) ** 2 / mix.variances))

    p_n = component_densities(nuts_fit).numpy()
    chains = p_n.reshape(NUTS["num_chains"], NUTS["num_samples"], -1)
    ess = np.array([effective_sample_size(chains[:, :, j]) for j in range(p_n.shape[1])])
    se_nuts = p_n.std(0) / np.sqrt(ess) / p_n.mean(0)
    p_i, w = component_densities(is_fit).numpy(), is_fit.weights.numpy()
    p_hat = w @ p_i
    se_is = np.sqrt(w**2 @ (p_i - p_hat) ** 2) / p_hat
    tol = 4.0 * np.sqrt(se_nuts**2 + se_is**2)
    diff = np.abs(lp_nuts - lp_is)
    assert tol.max() < 0.1, tol
    assert (diff < tol).all(), (diff, tol)


def test_nuts_diagnostics(nuts_fit) -> None:
    diag = nuts_fit.diagnostics
    assert diag["method"] == "nuts"
    assert diag["max_r_hat"] < 1.05
    assert 50 < diag["min_ess"] <= 10 * 600  # NUTS can be antithetic: ESS above S is possible
    assert diag["num_divergences"] <= 6
    assert set(diag["r_hat"]) == {"outputscale", "lengthscale", "noise_std", "mean"}
    assert nuts_fit.means.shape == nuts_fit.variances.shape == (600, 5)
    torch.testing.assert_close(nuts_fit.weights, torch.full((600,), 1 / 600, dtype=F64))
    assert nuts_fit.weights_ess == pytest.approx(600)


def test_nuts_leaves_jax_in_32_bit_mode(nuts_fit) -> None:
    import jax

    assert not jax.config.jax_enable_x64


def test_nuts_is_reproducible(dataset, nuts_fit) -> None:
    x_c, y_c, x_q, _ = dataset
    again = marginal_predictive(small_prior(), x_c.numpy(), y_c.numpy(), x_q.numpy(), **NUTS)  # numpy in
    assert torch.equal(again.means, nuts_fit.means) and torch.equal(again.variances, nuts_fit.variances)


def test_importance_weights(is_fit) -> None:
    assert is_fit.diagnostics["method"] == "importance"
    assert is_fit.weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert 500 < is_fit.diagnostics["weights_ess"] == is_fit.weights_ess < 20000


# ----------------------------------------------------------------------------------------------------------------
# the mixture's methods


@pytest.mark.parametrize("which", ["nuts", "importance"])
def test_mixture_density_integrates_to_one_and_matches_cdf_and_quantile(which, nuts_fit, is_fit) -> None:
    mix = nuts_fit if which == "nuts" else is_fit
    if which == "importance":  # its 600 heaviest components, still unequally weighted (keeps the grid small)
        keep = mix.weights.argsort(descending=True)[:600]
        mix = MarginalPredictive(mix.means[keep], mix.variances[keep], mix.log_weights[keep])
    sd = mix.variances.sqrt()
    lo, hi = (mix.means - 12 * sd).min(0).values, (mix.means + 12 * sd).max(0).values  # m
    t = torch.linspace(0, 1, 3001, dtype=F64)[:, None]
    grid = lo + t * (hi - lo)  # G x m
    pdf = torch.as_tensor(mix.log_prob(grid)).exp()
    integral = torch.trapezoid(pdf, grid, dim=0)
    torch.testing.assert_close(integral, torch.ones_like(integral), rtol=0, atol=1e-8)
    cum = torch.cat([torch.zeros(1, grid.shape[1], dtype=F64),
                     torch.cumulative_trapezoid(pdf, grid, dim=0)])
    # composite trapezoid error bound (b - a) h^2 max|f''| / 12, f'' from second differences on the grid
    h = (hi - lo) / (grid.shape[0] - 1)
    f2 = (pdf[2:] - 2 * pdf[1:-1] + pdf[:-2]).abs().max(0).values / h**2
    bound = (hi - lo) * h**2 * f2 / 12
    assert ((torch.as_tensor(mix.cdf(grid)) - cum).abs().max(0).values <= 1.1 * bound + 1e-12).all()
    q = torch.tensor([0.01, 0.25, 0.5, 0.9, 0.999], dtype=F64)
    quant = torch.as_tensor(mix.quantile(q))  # m x Q
    assert quant.shape == (len(mix), 5) and (quant.diff(dim=1) > 0).all()
    torch.testing.assert_close(torch.as_tensor(mix.cdf(quant.T)), q[:, None].expand(5, len(mix)), rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.as_tensor(mix.quantile(0.5)), quant[:, 2])


@pytest.mark.parametrize("which", ["nuts", "importance"])
def test_mixture_moments_match_monte_carlo(which, nuts_fit, is_fit) -> None:
    mix = nuts_fit if which == "nuts" else is_fit
    g = gen(7)
    n_draws = 200_000
    comp = torch.multinomial(mix.weights, n_draws, replacement=True, generator=g)  # n_draws
    draws = mix.means[comp] + mix.variances[comp].sqrt() * torch.randn(n_draws, len(mix), generator=g, dtype=F64)
    mc_mean, mc_var = draws.mean(0), draws.var(0)
    se_mean = (mc_var / n_draws).sqrt()
    se_var = ((draws - mc_mean).square().var(0) / n_draws).sqrt()
    assert ((torch.as_tensor(mix.mean) - mc_mean).abs() < 5 * se_mean).all()
    assert ((torch.as_tensor(mix.variance) - mc_var).abs() < 5 * se_var).all()


def test_mixture_methods_equal_scipy_on_a_hand_made_mixture() -> None:
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.0]], dtype=F64)
    variances = torch.tensor([[1.0, 0.5], [0.25, 2.0], [4.0, 1.0]], dtype=F64)
    w = np.array([0.2, 0.5, 0.3])
    mix = MarginalPredictive(means, variances, torch.tensor(np.log(w) + 3.0))  # unnormalised log weights
    y = torch.tensor([[0.3, -0.7], [5.0, 2.0]], dtype=F64)
    sd = variances.sqrt().numpy()
    ref_pdf = (w[:, None, None] * stats.norm.pdf(y.numpy()[None], means.numpy()[:, None], sd[:, None])).sum(0)
    ref_cdf = (w[:, None, None] * stats.norm.cdf(y.numpy()[None], means.numpy()[:, None], sd[:, None])).sum(0)
    np.testing.assert_allclose(mix.log_prob(y), np.log(ref_pdf), rtol=1e-12)
    np.testing.assert_allclose(mix.cdf(y), ref_cdf, rtol=1e-12)
    ref_mean = w @ means.numpy()
    ref_var = w @ (variances.numpy() + means.numpy() ** 2) - ref_mean**2
    np.testing.assert_allclose(mix.mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(mix.variance, ref_var, rtol=1e-12)
    assert mix.weights_ess == pytest.approx(1 / np.sum(w**2))
    equal = MarginalPredictive(means, variances)
    np.testing.assert_allclose(equal.mean, means.numpy().mean(0), rtol=1e-12)


def test_mixture_crps_is_the_integral_of_the_squared_cdf_error() -> None:
    from scipy import integrate

    means = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.0]], dtype=F64)
    variances = torch.tensor([[1.0, 0.5], [0.25, 2.0], [4.0, 1.0]], dtype=F64)
    mix = MarginalPredictive(means, variances, torch.log(torch.tensor([0.2, 0.5, 0.3], dtype=F64)))
    y = np.array([0.3, -2.5])
    sd, w = variances.sqrt().numpy(), np.array([0.2, 0.5, 0.3])

    def cdf(t: float) -> np.ndarray:  # both query points' mixture cdf at t
        return (w[:, None] * stats.norm.cdf(t, means.numpy(), sd)).sum(0)

    expected = integrate.quad_vec(lambda t: (cdf(t) - (t >= y)) ** 2, -np.inf, np.inf, points=sorted(y),
                                  epsabs=1e-12, epsrel=1e-10)[0]
    np.testing.assert_allclose(mix.crps(torch.tensor(y)), expected, rtol=1e-8)
    np.testing.assert_allclose(mix.crps(np.stack([y, y])), np.stack([expected, expected]), rtol=1e-8)


# ----------------------------------------------------------------------------------------------------------------
# special cases


def test_all_fixed_hyperparameters_give_the_closed_form_exactly(dataset) -> None:
    prior = GPPrior.fixed_rbf(lengthscale=0.3, outputscale=1.5, noise_std=0.2)
    x_c, y_c, x_q, _ = dataset
    mix = marginal_predictive(prior, x_c, y_c, x_q)
    params = prior.sample_params(1, 1, gen(0))
    mean, var = gp_predictive(prior, params, x_c[None], y_c[None], x_q[None])
    assert mix.diagnostics["method"] == "fixed" and mix.num_components == 1
    assert torch.equal(mix.means, mean) and torch.equal(mix.variances, var)
    assert torch.equal(torch.as_tensor(mix.mean), mean[0]) and torch.equal(torch.as_tensor(mix.variance), var[0])
    normal = torch.distributions.Normal(mean[0], var[0].sqrt())
    torch.testing.assert_close(torch.as_tensor(mix.log_prob(dataset[3])), normal.log_prob(dataset[3]), rtol=0, atol=1e-12)


def test_no_context_gives_the_prior_predictive() -> None:
    """n = 0: y_* = m + f + noise with E = 0 and Var = E[outputscale] + E[noise_std^2] + jitter + Var[m]."""
    prior = small_prior()
    x_q = torch.rand(4, 1, generator=gen(8), dtype=F64)
    empty_x, empty_y = torch.zeros(0, 1, dtype=F64), torch.zeros(0, dtype=F64)
    expected_var = math.exp(0.3**2 / 2) + math.exp(2 * -2.0 + 2 * 0.5**2) + prior.jitter + 0.3**2
    mix = marginal_predictive(prior, empty_x, empty_y, x_q, num_samples=5000, num_chains=1)
    assert mix.diagnostics["method"] == "prior" and mix.num_components == 5000
    # MC errors over 5000 draws: sd(m) / sqrt(5000) ~ 0.004, sd(outputscale) / sqrt(5000) ~ 0.005
    assert (np.abs(mix.mean) < 0.02).all()
    assert (np.abs(mix.variance - expected_var) < 0.03).all()
    is_mix = importance_predictive(prior, empty_x, empty_y, x_q, num_samples=5000)
    assert is_mix.weights_ess == pytest.approx(5000)


# ----------------------------------------------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class Cauchy(RBF):
    """A user's kernel, written once in ``matrix`` (array API): k = 1 / (1 + r^2), r^2 scaled by the lengthscale.
    NUTS marginalises it with no other code."""

    def matrix(self, params, x1, x2):
        from array_api_compat import array_namespace

        xp = array_namespace(x1, x2)
        ls = params.lengthscale[:, None, :]
        diff = (x1 / ls)[:, :, None, :] - (x2 / ls)[:, None, :, :]
        return 1.0 / (1.0 + xp.sum(diff * diff, axis=-1))


def test_a_users_kernel_is_marginalised_by_nuts_with_no_other_code(dataset) -> None:
    """The NUTS potential of a kernel defined only by its ``matrix`` is the torch log posterior, and NUTS runs."""
    import jax.numpy as jnp

    prior = GPPrior(kernel=Scale(Cauchy(ard=False)), noise_std=LogNormal(-2.0, 0.5), max_features=1)
    batch = prior.sample(1, 8, gen(9))
    table = _param_table(prior, 1)
    z = {name: np.log(batch.params.flat()[name][0].numpy()) for name, _, hp in table if not isinstance(hp, Fixed)}
    log_jac = sum(float(np.sum(v)) for v in z.values())
    expected = -(float(prior.log_prior(batch.params)[0])
                 + float(gp_log_marginal_likelihood(prior, batch.params, batch.x, batch.y)[0]) + log_jac)
    with _x64():
        potential = _potential_fn_gen(prior.kernel, table, prior.jitter)(
            jnp.asarray(batch.x[0].numpy()), jnp.asarray(batch.y[0].numpy()))
        assert float(potential({k: jnp.asarray(v) for k, v in z.items()})) == pytest.approx(expected, abs=1e-9)
    with warnings.catch_warnings():  # a 30-step chain, only to show that it runs
        warnings.simplefilter("ignore", RuntimeWarning)
        mix = marginal_predictive(prior, batch.x[0, :6], batch.y[0, :6], batch.x[0, 6:], num_warmup=20,
                                  num_samples=10, num_chains=1)
    assert mix.num_components == 10 and np.isfinite(mix.log_prob(batch.y[0, 6:])).all()


def test_bad_inputs_name_the_argument(dataset) -> None:
    prior = small_prior()
    x_c, y_c, x_q, _ = dataset
    with pytest.raises(InputDataError, match="y_ctx"):
        marginal_predictive(prior, x_c, y_c[:-1], x_q)
    with pytest.raises(InputDataError, match="x_ctx"):
        marginal_predictive(prior, x_c[:, 0], y_c, x_q)
    with pytest.raises(InputDataError, match="x_qry"):
        marginal_predictive(prior, x_c, y_c, torch.rand(3, 2, dtype=F64))
    bad_y = y_c.clone()
    bad_y[2] = math.nan
    with pytest.raises(InputDataError, match="y_ctx contains NaN"):
        marginal_predictive(prior, x_c, bad_y, x_q)
    with pytest.raises(InputDataError, match="x_qry contains NaN"):
        importance_predictive(prior, x_c, y_c, torch.full((2, 1), math.nan))
    with pytest.raises(InputDataError, match="y_ctx"):
        importance_predictive(prior, x_c, y_c[:-1], x_q)
    with pytest.raises(ValueError, match="num_samples"):
        marginal_predictive(prior, x_c, y_c, x_q, num_samples=0)
    with pytest.raises(ValueError, match="num_chains"):
        marginal_predictive(prior, x_c, y_c, x_q, num_chains=1.5)
    with pytest.raises(ValueError, match="num_samples"):
        importance_predictive(prior, x_c, y_c, x_q, num_samples=-1)
    with pytest.raises(TypeError, match="prior"):
        marginal_predictive("rbf", x_c, y_c, x_q)
    with pytest.raises(ValueError, match="'lengthscale'"):
        marginal_predictive(GPPrior(kernel=Scale(RBF(lengthscale=Normal(0.3, 0.1)))), x_c, y_c, x_q)


def test_mixture_bad_arguments() -> None:
    means, variances = torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64)
    mix = MarginalPredictive(means, variances)
    with pytest.raises(ValueError, match="y"):
        mix.log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="q"):
        mix.quantile(1.5)
    with pytest.raises(ValueError, match="variances"):
        MarginalPredictive(means, -variances)
    with pytest.raises(ValueError, match="variances"):
        MarginalPredictive(means, variances[:2])
    with pytest.raises(ValueError, match="log_weights"):
        MarginalPredictive(means, variances, torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="log_weights"):
        MarginalPredictive(means, variances, torch.tensor([0.0, math.nan, 1.0]))
