r"""The Bayes posterior predictive of a :class:`~priorfit.priors.gp.GPPrior`, marginalised over its hyperpriors.

This is the target a PFN trained on the prior approximates:

.. math::
    p(y_* \mid x_*, D) = \int N\!\left(y_* \mid \mu_\theta(x_*), v_\theta(x_*)\right) p(\theta \mid D)\, d\theta
    \approx \sum_{s=1}^{S} w_s\, N\!\left(y_* \mid \mu_s, v_s\right),
    \qquad p(\theta \mid D) \propto p(\theta)\, N(y \mid m \mathbf 1, K_\theta + (\sigma^2 + \epsilon) I)

with :math:`(\mu_s, v_s)` the closed-form GP predictive of noisy y (:func:`priorfit.exact.gp.gp_predictive`) at
hyperparameters :math:`\theta_s`. The likelihood is exactly the generative model of ``GPPrior.sample``: the prior's
``jitter`` :math:`\epsilon` is part of the noise variance, as in :mod:`priorfit.exact.gp`. Two estimators:

- :func:`marginal_predictive`: :math:`\theta_s` from NUTS [HG2014]_ in NumPyro [PPJ2019]_, :math:`w_s = 1/S`.
- :func:`importance_predictive`: :math:`\theta_s \sim p(\theta)`, :math:`w_s \propto p(D \mid \theta_s)`
  (self-normalised importance sampling with the hyperprior as proposal). A slow but simple cross-check, good
  while the posterior is not much narrower than the prior (small n); the weights' effective sample size says so.

Why NumPyro: its NUTS kernel is written in JAX, so the whole chain (tree building, leapfrog steps, the Cholesky of
K, step-size and mass-matrix adaptation) compiles with XLA into one program; a leapfrog step on a small GP then
costs microseconds, where Pyro's NUTS goes through Python and torch autograd for every step and is dominated by
that overhead on problems of n <= a few hundred points. We use NumPyro's functional ``hmc(potential_fn_gen=...,
algo="NUTS")`` and jit one chain as a function of the data, cached per (kernel, hyperpriors, settings): compiling
costs seconds, and later datasets of the same size reuse it (see ``_chain_fn``). The potential has no formula of
its own: it runs the prior's kernel (:meth:`~priorfit.priors.kernels.Kernel.matrix`) and hyperpriors
(``Hyperprior.log_prob``), written once against the array API, on JAX arrays. So any kernel the prior can sample
from, NUTS can marginalise. The predictive of each posterior sample is then computed by the torch closed form, so
the JAX code only decides which :math:`\theta_s` are drawn.

JAX runs in float64 inside ``jax.enable_x64(True)`` blocks only: priorfit does not change JAX's process-wide
configuration. JAX and NumPyro are imported when first needed, not when :mod:`priorfit.exact` is imported.

References:
    .. [HG2014] M. D. Hoffman, A. Gelman. The No-U-Turn Sampler. JMLR 15, 2014.
    .. [PPJ2019] D. Phan, N. Pradhan, M. Jankowiak. Composable effects for flexible and accelerated probabilistic
        programming in NumPyro. arXiv:1912.11554, 2019.
    .. [BDA3] A. Gelman, J. B. Carlin, H. S. Stern, D. B. Dunson, A. Vehtari, D. B. Rubin. Bayesian Data Analysis,
        3rd ed. CRC Press, 2013, sec. 11.4 (split R-hat, effective sample size).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from priorfit.exact.gp import gp_log_marginal_likelihood, gp_predictive
from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.exceptions import InputDataError
from priorfit.validation import check_int
from priorfit.predictive.mixture import NormalMixturePredictive
from priorfit.priors.gp import GPParams, GPPrior
from priorfit.priors.hyperpriors import Fixed, Hyperprior
from priorfit.priors.kernels import Kernel

__all__ = [
    "MarginalPredictive",
    "GPMarginal",
    "marginal_predictive",
    "importance_predictive",
]

_LOG_2PI = math.log(2.0 * math.pi)
# Elements of the S x n x (n + m) kernel blocks that one chunk of gp_predictive may hold (~64 MB of float64).
_CHUNK_ELEMENTS = 8_000_000
# Warn when NUTS's diagnostics say the samples should not be trusted.
_RHAT_WARN = 1.05
_DIVERGENCE_WARN = 0.01


# ----------------------------------------------------------------------------------------------------------------
# the mixture


#: The mixture this module returns, under its earlier name.
MarginalPredictive = NormalMixturePredictive


# ----------------------------------------------------------------------------------------------------------------
# the hyperparameters NUTS samples


def _constraint(hp: Hyperprior) -> Any:
    """NumPyro's constraint for a hyperprior's support; ``biject_to`` of it maps unconstrained reals onto it."""
    from numpyro.distributions import constraints

    low, high = hp.support.low, hp.support.high
    if math.isinf(low) and math.isinf(high):
        return constraints.real
    if math.isinf(high):
        return constraints.positive if low == 0 else constraints.greater_than(low)
    if math.isinf(low):
        return constraints.less_than(high)
    return constraints.interval(low, high)


def _param_table(prior: GPPrior, d: int) -> tuple[tuple[str, tuple[int, ...], Hyperprior], ...]:
    """(name, per-dataset shape, hyperprior) of every hyperparameter of ``prior`` with d features."""
    hps = prior.kernel.hyperpriors()
    table = []
    for name, shape in prior.kernel.param_shapes(d).items():
        hp = hps[name]
        if hp.support.low < 0:
            raise ValueError(
                f"the hyperprior of kernel hyperparameter {name!r} must have positive support for NUTS "
                f"(LogNormal, Gamma, InverseGamma, Uniform with low >= 0, positive Fixed), got {hp!r}"
            )
        table.append((name, tuple(shape), hp))
    for name in ("noise_std", "mean"):
        table.append((name, (), getattr(prior, name)))
    return tuple(table)


# ----------------------------------------------------------------------------------------------------------------
# validation


def _as_float64(name: str, value: object) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(device="cpu", dtype=torch.float64)
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of numbers, got {type(value).__name__}") from err


def _check_data(x_ctx: object, y_ctx: object, x_qry: object) -> tuple[Tensor, Tensor, Tensor]:
    def matrix(name: str, value: object, doc: str, dims: int) -> Tensor:
        try:
            t = _as_float64(name, value)
        except TypeError as err:
            raise InputDataError(str(err)) from err
        if t.dim() != dims:
            raise InputDataError(f"{name} must have shape {doc} ({dims} dims), got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise InputDataError(f"{name} contains NaN or infinite values")
        return t

    x_ctx = matrix("x_ctx", x_ctx, "n x d", 2)
    y_ctx = matrix("y_ctx", y_ctx, "n", 1)
    x_qry = matrix("x_qry", x_qry, "m x d", 2)
    n, d = x_ctx.shape
    if d < 1:
        raise InputDataError(f"x_ctx must have at least one feature column, got shape {tuple(x_ctx.shape)}")
    if tuple(y_ctx.shape) != (n,):
        raise InputDataError(f"y_ctx must have shape ({n},) (n, from x_ctx), got {tuple(y_ctx.shape)}")
    if x_qry.shape[1] != d:
        raise InputDataError(f"x_qry must have {d} columns (d, from x_ctx), got shape {tuple(x_qry.shape)}")
    return x_ctx, y_ctx, x_qry


def _check_prior(prior: object) -> GPPrior:
    if not isinstance(prior, GPPrior):
        raise TypeError(f"prior must be a GPPrior, got {type(prior).__name__}")
    return prior


# ----------------------------------------------------------------------------------------------------------------
# per-sample predictives


def _mixture_moments(
    prior: GPPrior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor
) -> tuple[Tensor, Tensor]:
    """`S x m` means and variances of :func:`gp_predictive` for S hyperparameter samples (``params`` each `S x
    ...`) on one dataset, in chunks of bounded memory."""
    total = params.batch_size
    n, m = x_ctx.shape[0], x_qry.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * (n + m) + m))
    means, variances = [], []
    for start in range(0, total, chunk):
        p = params.map(lambda t: t[start : start + chunk])
        b = p.batch_size
        mu, var = gp_predictive(
            prior, p, x_ctx.expand(b, -1, -1), y_ctx.expand(b, -1), x_qry.expand(b, -1, -1)
        )
        means.append(mu)
        variances.append(var)
    return torch.cat(means), torch.cat(variances)


def _log_marginal_likelihoods(prior: GPPrior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor) -> Tensor:
    """`S` exact log marginal likelihoods of one dataset under S hyperparameter samples, in chunks."""
    total = params.batch_size
    n = x_ctx.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * n))
    out = []
    for start in range(0, total, chunk):
        p = params.map(lambda t: t[start : start + chunk])
        b = p.batch_size
        out.append(gp_log_marginal_likelihood(prior, p, x_ctx.expand(b, -1, -1), y_ctx.expand(b, -1)))
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------------------------
# NUTS


def _x64() -> Any:
    """Context manager that runs JAX in float64 (``jax.enable_x64``; ``jax.experimental.enable_x64`` on older
    JAX) without touching the process-wide setting."""
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def _log_likelihood(kernel: Kernel, params: GPParams, x: Any, y: Any, jitter: float) -> Any:
    r"""JAX twin of :func:`gp_log_marginal_likelihood` for one dataset (x `n x d`, y `n`), [RW2006] Alg. 2.1:

    .. math:: \log N(y \mid m \mathbf 1, K + s^2 I) = -\tfrac12 a^\top a - \sum_i \log L_{ii} - \tfrac n2 \log 2\pi,
        \quad L L^\top = K + s^2 I, \; a = L^{-1} (y - m), \; s^2 = \sigma^2 + \epsilon

    ``params`` holds one dataset's JAX arrays (no batch dimension). NaN where the Cholesky fails (NUTS then
    treats the step as divergent).
    """
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl

    n = x.shape[0]
    s2 = jnp.square(params.noise_std) + jitter
    batched = params.kernel.map(lambda a: a[None])  # the kernel's body takes a batch of one
    k = kernel.matrix(batched, x[None], x[None])[0] + s2 * jnp.eye(n)
    chol = jnp.linalg.cholesky(k)
    a = jsl.solve_triangular(chol, y - params.mean, lower=True)
    return -0.5 * jnp.dot(a, a) - jnp.log(jnp.diagonal(chol)).sum() - 0.5 * n * _LOG_2PI


def _invariant_log_likelihood(kernel: Kernel, params: GPParams, x: Any, y: Any, jitter: float) -> Any:
    r"""JAX twin of :func:`priorfit.exact.invariant.invariant_log_likelihood` for one dataset (x already in its
    context's units): the evidence with the targets' location and scale integrated out,
    :math:`\log[\Gamma(\frac{n-1}{2}) / (2\pi^{(n-1)/2})] - \tfrac12\log|C| - \tfrac12 \log a -
    \tfrac{n-1}{2}\log S^2`. ``params.mean`` is not used."""
    import jax.numpy as jnp

    n = x.shape[0]
    s2 = jnp.square(params.noise_std) + jitter
    cov = kernel.matrix(params.kernel.map(lambda a: a[None]), x[None], x[None])[0] + s2 * jnp.eye(n)
    return _invariant_evidence(cov, y)


def _invariant_evidence(cov: Any, y: Any) -> Any:
    """The invariant evidence of one dataset (JAX) from its shape covariance ``cov`` (`n x n`, noise included)."""
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl

    n = y.shape[0]
    chol = jnp.linalg.cholesky(cov)
    c_inv_1 = jsl.cho_solve((chol, True), jnp.ones(n))
    a = c_inv_1.sum()
    r = y - jnp.dot(c_inv_1, y) / a
    s_sq = jnp.dot(r, jsl.cho_solve((chol, True), r))
    const = math.lgamma((n - 1) / 2) - math.log(2.0) - (n - 1) / 2 * math.log(math.pi)
    return const - jnp.log(jnp.diagonal(chol)).sum() - 0.5 * jnp.log(a) - (n - 1) / 2 * jnp.log(s_sq)


def _potential_fn_gen(kernel: Kernel, table: tuple, jitter: float, likelihood: Any = None) -> Any:
    r"""``gen(x, y)`` -> the NUTS potential :math:`U(z) = -\log p(\theta(z)) - \log|\det \partial\theta/\partial z|
    - \log p(y \mid \theta(z))` of unconstrained :math:`z` (a dict over the sampled hyperparameters), each
    hyperparameter mapped onto its hyperprior's support by NumPyro's ``biject_to`` (log for positive ones). The
    densities are the hyperpriors' own ``log_prob`` and the kernel's own ``matrix``, run on JAX arrays.
    ``likelihood(kernel, params, x, y, jitter)`` is the evidence of one dataset (default: the GP's,
    :func:`_log_likelihood`; the invariant prior's and the Student-t process's integrate a scale out)."""
    likelihood = _log_likelihood if likelihood is None else likelihood
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to

    def gen(x: Any, y: Any) -> Any:
        def potential(z: dict[str, Any]) -> Any:
            flat: dict[str, Any] = {}
            log_density = 0.0
            for name, shape, hp in table:
                if isinstance(hp, Fixed):
                    flat[name] = jnp.full(shape, float(hp.value))
                    continue
                transform = biject_to(_constraint(hp))
                value = transform(z[name])
                log_density = log_density + hp.log_prob(value).sum()
                log_density = log_density + transform.log_abs_det_jacobian(z[name], value).sum()
                flat[name] = value
            mean = flat["mean"] if "mean" in flat else jnp.zeros(())
            params = GPParams(kernel=kernel.params_from(flat), noise_std=flat["noise_std"], mean=mean)
            return -(log_density + likelihood(kernel, params, x, y, jitter))

        return potential

    return gen


_NUM_INIT_CANDIDATES = 16


@functools.lru_cache(maxsize=32)
def _chain_fn(
    kernel: Kernel, table: tuple, jitter: float, num_warmup: int, num_samples: int, target_accept_prob: float,
    likelihood: Any = None,
) -> Any:
    """A jitted ``chain(rng_key, candidates, x, y) -> (draws, diverging, num_steps)`` running one NUTS chain
    (NumPyro's ``hmc`` kernel, step size and diagonal mass matrix adapted during the first ``num_warmup``
    iterations), started from the first of ``candidates`` (hyperprior draws, each sampled hyperparameter
    `_NUM_INIT_CANDIDATES x *shape`, constrained) whose potential is finite, as NumPyro's ``init_to_sample``.
    ``draws`` maps each sampled hyperparameter to `num_samples x *shape` constrained values, ``diverging`` is
    `num_samples`, ``num_steps`` (`num_warmup + num_samples`) counts each iteration's leapfrog steps. Cached, so
    datasets of the same size reuse one XLA compilation (compiling costs seconds, sampling a small GP less)."""
    import jax
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer.hmc import hmc

    gen = _potential_fn_gen(kernel, table, jitter, likelihood)
    transforms = {name: biject_to(_constraint(hp)) for name, _, hp in table if not isinstance(hp, Fixed)}
    init_kernel, sample_kernel = hmc(potential_fn_gen=gen, algo="NUTS")

    def chain(rng_key: Any, candidates: dict[str, Any], x: Any, y: Any) -> Any:
        unconstrained = {name: transforms[name].inv(value) for name, value in candidates.items()}
        energies = jax.vmap(gen(x, y))(unconstrained)
        best = jnp.argmax(jnp.isfinite(energies))
        z0 = {name: value[best] for name, value in unconstrained.items()}
        state = init_kernel(
            z0, num_warmup, target_accept_prob=target_accept_prob, model_args=(x, y), rng_key=rng_key
        )

        def step(state: Any, _: Any) -> Any:
            state = sample_kernel(state, model_args=(x, y))
            return state, (state.z, state.diverging, state.num_steps)

        _, (zs, diverging, num_steps) = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
        draws = {name: transform(zs[name][num_warmup:]) for name, transform in transforms.items()}
        return draws, diverging[num_warmup:], num_steps

    return jax.jit(chain)


def _nuts_diagnostics(grouped: dict[str, np.ndarray], diverging: np.ndarray) -> dict[str, Any]:
    """Diagnostics from draws `chains x samples x *shape` per hyperparameter and `chains x samples` divergences."""
    from numpyro.diagnostics import summary

    names = list(grouped)
    if next(iter(grouped.values())).shape[1] < 4:  # split R-hat needs >= 4 draws per chain
        stats = {k: {"r_hat": np.full(v.shape[2:], np.nan), "n_eff": np.full(v.shape[2:], np.nan)}
                 for k, v in grouped.items()}
    else:
        stats = summary(grouped, group_by_chain=True)
    r_hat = np.concatenate([np.atleast_1d(stats[k]["r_hat"]).ravel() for k in names])
    n_eff = np.concatenate([np.atleast_1d(stats[k]["n_eff"]).ravel() for k in names])
    return {
        "method": "nuts",
        "max_r_hat": float(np.max(r_hat)),
        "min_ess": float(np.min(n_eff)),
        "num_divergences": int(diverging.sum()),
        "r_hat": {k: np.asarray(stats[k]["r_hat"]) for k in names},
        "ess": {k: np.asarray(stats[k]["n_eff"]) for k in names},
    }


def run_numpyro(mcmc: Any, seed: int, *args: Any,
                watched: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run a NumPyro ``MCMC`` (NUTS) on ``args`` (numpy arrays, made JAX float64 arrays here) with ``seed``:
    its draws per site (`chains x samples x *shape`, float64) and the diagnostics of :func:`_nuts_diagnostics`
    over the sites for which ``watched(name)`` is true (default: all), with leapfrog counts; warns when R-hat
    exceeds 1.05. The samplers of the Student-t noise and BNN references run through it."""
    import jax
    import jax.numpy as jnp

    with _x64():
        mcmc.run(jax.random.PRNGKey(seed), *(jax.tree_util.tree_map(jnp.asarray, a) for a in args),
                 extra_fields=("diverging", "num_steps"))
        samples = {k: np.array(v, dtype=np.float64) for k, v in mcmc.get_samples(group_by_chain=True).items()}
        extra = mcmc.get_extra_fields(group_by_chain=True)
        diverging, num_steps = np.asarray(extra["diverging"]), np.asarray(extra["num_steps"])
    diag = _nuts_diagnostics({k: v for k, v in samples.items() if watched is None or watched(k)}, diverging)
    diag["mean_leapfrog_steps"] = float(num_steps.mean())
    diag["total_leapfrog_steps"] = int(num_steps.sum())
    if diag["max_r_hat"] > _RHAT_WARN:
        warnings.warn(f"NUTS may not have converged: max R-hat {diag['max_r_hat']:.3f} (want <= {_RHAT_WARN})",
                      RuntimeWarning, stacklevel=3)
    return samples, diag


def _run_nuts(prior: GPPrior, table: tuple, x_ctx: Tensor, y_ctx: Tensor, num_warmup: int, num_samples: int,
              num_chains: int, seed: int, target_accept_prob: float,
              likelihood: Any = None) -> tuple[GPParams, dict[str, Any]]:
    """NUTS chains over the sampled hyperparameters of ``table`` (see :func:`marginal_predictive`), one dataset:
    the draws as a :class:`GPParams` with `num_chains * num_samples` rows (chain-major) and the diagnostics.
    ``likelihood`` is the evidence as :func:`_potential_fn_gen` takes it (hashable: it keys the compiled chain),
    e.g. :func:`_invariant_log_likelihood`, with the targets' location and scale integrated out (x then in its
    context's units and no "mean" in the table)."""
    import jax
    import jax.numpy as jnp

    d = x_ctx.shape[1]
    total = num_chains * num_samples
    sampled = [name for name, _, hp in table if not isinstance(hp, Fixed)]
    with _x64():
        chain = _chain_fn(
            prior.kernel, table, float(prior.jitter), num_warmup, num_samples, float(target_accept_prob), likelihood
        )
        x_j, y_j = jnp.asarray(x_ctx.numpy()), jnp.asarray(y_ctx.numpy())
        # each chain's initial candidates: hyperprior draws by the prior's own sampler
        inits = prior.sample_params(num_chains * _NUM_INIT_CANDIDATES, d, torch.Generator().manual_seed(seed))
        outputs = []
        for c, key in enumerate(jax.random.split(jax.random.PRNGKey(seed), num_chains)):
            rows = slice(c * _NUM_INIT_CANDIDATES, (c + 1) * _NUM_INIT_CANDIDATES)
            candidates = {name: jnp.asarray(inits.flat()[name][rows].numpy()) for name in sampled}
            outputs.append(chain(key, candidates, x_j, y_j))
        grouped = {name: np.stack([np.array(out[0][name], dtype=np.float64) for out in outputs]) for name in sampled}
        diverging = np.stack([np.asarray(out[1]) for out in outputs])  # chains x samples
        num_steps = np.stack([np.asarray(out[2]) for out in outputs])  # chains x (warmup + samples)
    diag = _nuts_diagnostics(grouped, diverging)
    diag["mean_leapfrog_steps"] = float(num_steps[:, num_warmup:].mean())
    diag["total_leapfrog_steps"] = int(num_steps.sum())
    flat = {}
    for name, shape, hp in table:
        if isinstance(hp, Fixed):
            flat[name] = torch.full((total, *shape), float(hp.value), dtype=torch.float64)
        else:
            flat[name] = torch.from_numpy(grouped[name]).reshape(total, *shape)  # chain-major
    if "mean" not in flat:
        flat["mean"] = torch.zeros(total, dtype=torch.float64)
    params = prior.params_from(flat)
    if diag["max_r_hat"] > _RHAT_WARN or diag["num_divergences"] > _DIVERGENCE_WARN * total:
        warnings.warn(
            f"NUTS may not have converged: max R-hat {diag['max_r_hat']:.3f} (want <= {_RHAT_WARN}), "
            f"{diag['num_divergences']} divergent draws of {total}; try more num_warmup or a higher "
            "target_accept_prob",
            RuntimeWarning,
            stacklevel=3,
        )
    return params, diag


def marginal_predictive(
    prior: GPPrior,
    x_ctx: object,
    y_ctx: object,
    x_qry: object,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    *,
    target_accept_prob: float = 0.9,
) -> NormalMixturePredictive:
    r"""Bayes posterior predictive of noisy y at the queries for ONE dataset, the hyperparameters integrated out
    by NUTS (see the module docstring for the model and the mixture).

    The first call for a given kernel, hyperpriors, jitter, NUTS settings and data size (n, d) compiles the
    chain with XLA (seconds); later calls with the same ones reuse it.

    Args:
        prior: the GP prior, any kernel; its kernel hyperparameters' hyperpriors need positive support.
        x_ctx: `n x d` context inputs (torch or numpy); n may be 0.
        y_ctx: `n` context targets.
        x_qry: `m x d` query inputs.
        num_warmup: NUTS adaptation steps per chain (>= 0).
        num_samples: kept draws per chain (>= 1); the mixture has S = ``num_chains * num_samples`` components.
        num_chains: chains (>= 1), run one after another, each starting from the first of 16 hyperprior draws
            with a finite log posterior.
        seed: seeds JAX's PRNG (NUTS) or the torch generator (direct prior draws).
        target_accept_prob: NUTS's step-size adaptation target (higher: smaller steps, fewer divergences).

    Returns:
        A :class:`~priorfit.predictive.NormalMixturePredictive` with equal weights. Its ``diagnostics["method"]`` says how it was made:

        - ``"nuts"``: ``max_r_hat`` (split R-hat [BDA3]_, largest over every hyperparameter element),
          ``min_ess`` (smallest effective sample size), ``num_divergences``, per-parameter ``r_hat`` and
          ``ess`` arrays, ``mean_leapfrog_steps`` (per kept draw) and ``total_leapfrog_steps`` (warmup included;
          each costs one gradient, i.e. one Cholesky of an n x n matrix). A ``RuntimeWarning`` is issued if
          R-hat exceeds 1.05 or over 1% of draws diverged.
        - ``"prior"`` (n = 0, nothing to condition on): S independent draws from the hyperprior (the prior
          predictive); ``min_ess`` = S, ``max_r_hat`` NaN, no divergences.
        - ``"fixed"`` (every hyperparameter ``Fixed``): the single closed-form predictive, S = 1, no sampling.
    """
    prior = _check_prior(prior)
    x_ctx, y_ctx, x_qry = _check_data(x_ctx, y_ctx, x_qry)
    num_warmup = check_int("num_warmup", num_warmup, minimum=0)
    num_samples = check_int("num_samples", num_samples, minimum=1)
    num_chains = check_int("num_chains", num_chains, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if not (isinstance(target_accept_prob, (int, float)) and 0 < target_accept_prob < 1):
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {target_accept_prob!r}")
    n, d = x_ctx.shape
    table = _param_table(prior, d)
    sampled = [name for name, _, hp in table if not isinstance(hp, Fixed)]

    if not sampled:  # every hyperparameter known: the closed form, no sampling
        params = prior.params_from(
            {name: torch.full((1, *shape), float(hp.value), dtype=torch.float64) for name, shape, hp in table})
        means, variances = _mixture_moments(prior, params, x_ctx, y_ctx, x_qry)
        diag = {"method": "fixed", "max_r_hat": math.nan, "min_ess": math.nan, "num_divergences": 0}
        return NormalMixturePredictive(means=means, variances=variances, diagnostics=diag)

    total = num_chains * num_samples
    if n == 0:  # the posterior is the prior: draw it directly
        params = prior.sample_params(total, d, torch.Generator().manual_seed(seed))
        means, variances = _mixture_moments(prior, params, x_ctx, y_ctx, x_qry)
        diag = {"method": "prior", "max_r_hat": math.nan, "min_ess": float(total), "num_divergences": 0}
        return NormalMixturePredictive(means=means, variances=variances, diagnostics=diag)

    params, diag = _run_nuts(prior, table, x_ctx, y_ctx, num_warmup, num_samples, num_chains, seed,
                             target_accept_prob)
    means, variances = _mixture_moments(prior, params, x_ctx, y_ctx, x_qry)
    return NormalMixturePredictive(means=means, variances=variances, diagnostics=diag)


# ----------------------------------------------------------------------------------------------------------------
# importance sampling


def importance_predictive(
    prior: GPPrior, x_ctx: object, y_ctx: object, x_qry: object, num_samples: int = 20000, seed: int = 0
) -> NormalMixturePredictive:
    r"""The marginal predictive by self-normalised importance sampling, the hyperprior as proposal:

    .. math:: \theta_s \sim p(\theta), \qquad w_s = \frac{p(D \mid \theta_s)}{\sum_r p(D \mid \theta_r)}

    with :math:`p(D \mid \theta)` the exact marginal likelihood (:func:`gp_log_marginal_likelihood`). Consistent
    for any prior (no JAX needed, any kernel), but its variance grows as the posterior narrows: check
    ``diagnostics["weights_ess"]`` (Kish's :math:`1/\sum_s w_s^2`), also :attr:`NormalMixturePredictive.weights_ess`.

    Args:
        prior: the GP prior.
        x_ctx, y_ctx, x_qry: one dataset, as for :func:`marginal_predictive` (n may be 0: equal weights).
        num_samples: S, hyperparameter draws (>= 1). Memory is about ``2 * S * m`` floats for the mixture.
        seed: seeds the ``torch.Generator`` passed to ``prior.sample_params``.

    Returns:
        A weighted :class:`~priorfit.predictive.NormalMixturePredictive` with ``diagnostics`` ``{"method": "importance", "num_samples": S,
        "weights_ess": ...}``.
    """
    prior = _check_prior(prior)
    x_ctx, y_ctx, x_qry = _check_data(x_ctx, y_ctx, x_qry)
    num_samples = check_int("num_samples", num_samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    d = x_ctx.shape[1]
    params = prior.sample_params(num_samples, d, torch.Generator().manual_seed(seed))
    log_lik = _log_marginal_likelihoods(prior, params, x_ctx, y_ctx)  # S
    means, variances = _mixture_moments(prior, params, x_ctx, y_ctx, x_qry)
    mix = NormalMixturePredictive(means=means, variances=variances, log_weights=log_lik)
    mix.diagnostics.update({"method": "importance", "num_samples": num_samples, "weights_ess": mix.weights_ess})
    return mix


# ----------------------------------------------------------------------------------------------------------------
# the GP prior's marginal reference (see priorfit.exact.reference)


@dataclass(frozen=True)
class GPMarginal:
    """The Bayes posterior predictive of a GP prior, its hyperparameters integrated out by NUTS
    (:func:`marginal_predictive`), with the chains' diagnostics. A chain that did not converge shows in the
    diagnostics, not as a warning."""

    prior: GPPrior
    num_warmup: int = 200
    num_samples: int = 200
    num_chains: int = 2
    name = "marginal"
    label = "marginal (NUTS)"
    kind = ReferenceKind.MARGINAL

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        return nuts_reference_result(self, marginal_predictive, task, seed)


def nuts_reference_result(reference: Any, predictive: Any, task: Task, seed: int) -> ReferenceResult:
    """What an MCMC reference (``prior``, ``num_warmup``, ``num_samples``, ``num_chains``) returns for ``task``:
    ``predictive`` (e.g. :func:`marginal_predictive`) run quietly, a chain that did not converge showing in the
    diagnostics rather than as a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mix = predictive(reference.prior, task.x_ctx, task.y_ctx, task.x_qry, num_warmup=reference.num_warmup,
                         num_samples=reference.num_samples, num_chains=reference.num_chains, seed=seed)
    return ReferenceResult.from_mcmc(mix)
