r"""Exact posteriors of the Student-t process (:class:`~priorfit.priors.student_t.StudentTProcessPrior`).

Given the GP's hyperparameters :math:`\theta`, write :math:`C = K_\theta + s_n^2 I` (noise and jitter included),
:math:`r = y - m\mathbf 1` and :math:`\beta = r^\top C^{-1} r`. With :math:`y \mid s \sim N(m\mathbf 1, sC)` and
:math:`s \sim \mathrm{IG}(a, b)` [SWG2014]_:

.. math::
    \log p(y \mid \theta) = \log\Gamma(a + \tfrac n2) - \log\Gamma(a) - \tfrac n2 \log(2\pi b)
        - \tfrac12 \log|C| - (a + \tfrac n2)\log\left(1 + \frac{\beta}{2b}\right)

the variance factor's posterior is :math:`\mathrm{IG}(a + n/2,\ b + \beta/2)`, and a query with covariances
:math:`c_*` to the context and variance :math:`c_{**}` (noise included) has the predictive

.. math::
    y_* \mid y, \theta \sim t_{2a + n}\!\left(m + c_*^\top C^{-1} r,\;
        \frac{b + \beta/2}{a + n/2}\,\big(c_{**} - c_*^\top C^{-1} c_*\big)\right)

(location and squared *scale*; the variance is the squared scale times :math:`\nu / (\nu - 2)`): its degrees of
freedom grow with n, and its width with how surprising the context was. Another mixing prior has no closed form;
:func:`scale_quadrature_predictive` integrates the variance factor numerically on a fine grid in its logarithm.

With hyperpriors on :math:`\theta`, the Bayes posterior integrates :math:`\theta` by NUTS under the evidence above
(:func:`student_t_process_marginal_predictive`), one Student-t per draw.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.exceptions import ConfigError, InputDataError
from priorfit.predictive.mixture import NormalMixturePredictive, StudentTMixturePredictive
from priorfit.predictive.student_t import StudentTPredictive
from priorfit.priors.gp import GPParams, cholesky_with_jitter
from priorfit.priors.hyperpriors import Fixed
from priorfit.validation import check_int

__all__ = ["student_t_process_log_likelihood", "student_t_process_predictive", "scale_quadrature_predictive",
           "student_t_process_marginal_predictive", "StudentTProcessOracle", "StudentTProcessMarginal",
           "StudentTEvidence", "student_t_noise_predictive", "student_t_noise_evidence",
           "student_t_noise_marginal_predictive", "StudentTNoiseOracle", "StudentTNoiseMarginal"]


def _pieces(prior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cholesky of C, C^-1 r and beta for `batch` datasets (the GP's own covariance, noise and jitter)."""
    n = x_ctx.shape[1]
    s2 = params.noise_std.square() + prior.gp.jitter
    cov = prior.gp.kernel.forward(params.kernel, x_ctx, x_ctx) + s2[:, None, None] * torch.eye(n, dtype=torch.float64)
    chol = cholesky_with_jitter(cov, 0.0)
    r = y_ctx - params.mean[:, None]
    c_inv_r = torch.cholesky_solve(r[..., None], chol)[..., 0]
    return chol, c_inv_r, (r * c_inv_r).sum(-1)


def _shape(prior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per dataset: the GP's conditional mean and variance of the query's y given s = 1 (`batch x m` each), and
    beta (`batch`)."""
    chol, c_inv_r, beta = _pieces(prior, params, x_ctx, y_ctx)
    cross = prior.gp.kernel.forward(params.kernel, x_ctx, x_qry)  # b x n x m
    var_qry = prior.gp.kernel.diag(params.kernel, x_qry) + (params.noise_std.square() + prior.gp.jitter)[:, None]
    loc = params.mean[:, None] + (cross * c_inv_r[..., None]).sum(-2)
    v = torch.linalg.solve_triangular(chol, cross, upper=False)
    return loc, (var_qry - v.square().sum(-2)).clamp_min(0.0), beta


def _log_gaussian(chol: Tensor, beta: Tensor, n: int) -> Tensor:
    """log N(y | m, C) from the Cholesky of C and beta (`batch`)."""
    return -0.5 * beta - torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1) - 0.5 * n * math.log(2 * math.pi)


def _inverse_gamma(prior) -> tuple[float, float]:
    if not prior.closed_form:
        raise ConfigError(f"the closed form needs an InverseGamma mixing prior on the variance, got "
                          f"{prior.mixing!r} on the {prior.mixing_on}")
    return float(prior.mixing.concentration), float(prior.mixing.scale)


def student_t_process_log_likelihood(prior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor) -> Tensor:
    r"""`batch` log :math:`p(y \mid \theta)` with the variance factor integrated out (module docstring), for
    `batch x n x d` inputs, `batch x n` targets and the GP's hyperparameters ``params``."""
    a, b = _inverse_gamma(prior)
    chol, _, beta = _pieces(prior, params, x_ctx.to(torch.float64), y_ctx.to(torch.float64))
    n = y_ctx.shape[1]
    return (math.lgamma(a + n / 2) - math.lgamma(a) - n / 2 * math.log(2 * math.pi * b)
            - torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1) - (a + n / 2) * torch.log1p(beta / (2 * b)))


def student_t_process_predictive(prior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor,
                                 x_qry: Tensor) -> tuple[Tensor, Tensor, float]:
    """The Student-t predictive (module docstring) of `batch` datasets given their GP hyperparameters: location
    and scale (`batch x m` each) and the degrees of freedom 2a + n."""
    a, b = _inverse_gamma(prior)
    loc, shape_var, beta = _shape(prior, params, *(t.to(torch.float64) for t in (x_ctx, y_ctx, x_qry)))
    n = y_ctx.shape[1]
    scale = ((b + beta[:, None] / 2) / (a + n / 2) * shape_var).sqrt()
    return loc, scale, 2 * a + n


# ----------------------------------------------------------------------------------------------------------------
# any mixing prior: quadrature over the variance factor

_PRIOR_DRAWS = 20000  # draws of the mixing prior that place the grid (a fixed seed)
_PRIOR_TAIL = 1e-5  # the grid covers the prior's quantiles from this to 1 - this ...
_WIDEN = 3.0  # ... widened by this much on either side, in log units
_LIKELIHOOD_WIDTH = 15.0  # and the likelihood's peak -+ this many of its standard deviations in log s


def scale_quadrature_predictive(prior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor,
                                nodes: int = 4000) -> NormalMixturePredictive:
    r"""The posterior predictive of ONE dataset (`n x d`, `n`, `m x d`) given its GP hyperparameters (``params``
    with a batch of 1), the variance factor integrated numerically under any mixing prior: the trapezoidal rule
    on ``nodes`` equally spaced points in :math:`u = \log t` (t the mixed variance or standard deviation),
    weights :math:`p(t)\, t\, N(y \mid m, s(t) C)`, one normal per node. The grid covers the range of 20,000
    seeded draws of the mixing prior (their smallest and largest: the :math:`10^{-5}` quantiles' estimate)
    widened by 3 on each side, and the likelihood's peak in :math:`\log s` plus or minus 15 of its standard
    deviations :math:`\sqrt{2/n}`."""
    check_int("nodes", nodes, minimum=2)
    x_ctx, y_ctx, x_qry = (t.to(torch.float64)[None] for t in (x_ctx, y_ctx, x_qry))
    n = x_ctx.shape[1]
    chol, _, beta = _pieces(prior, params, x_ctx, y_ctx)
    loc, shape_var, _ = _shape(prior, params, x_ctx, y_ctx, x_qry)
    power = 1.0 if prior.mixing_on == "variance" else 0.5  # log t = power * log s
    draws = prior.mixing.sample((_PRIOR_DRAWS,), torch.Generator().manual_seed(0)).log()
    lo = float(torch.quantile(draws, _PRIOR_TAIL)) - _WIDEN
    hi = float(torch.quantile(draws, 1 - _PRIOR_TAIL)) + _WIDEN
    if n > 0:
        peak, width = math.log(max(float(beta[0]) / n, 1e-300)), _LIKELIHOOD_WIDTH * math.sqrt(2.0 / n)
        lo, hi = min(lo, power * (peak - width)), max(hi, power * (peak + width))
    u = torch.linspace(lo, hi, nodes, dtype=torch.float64)
    log_s = u / power  # in logs throughout: s itself may underflow at the grid's low end
    trapezoid = torch.full_like(u, math.log(float(u[1] - u[0])))
    trapezoid[[0, -1]] -= math.log(2.0)
    log_det = torch.diagonal(chol[0]).log().sum()
    log_lik = (-0.5 * float(beta[0]) * torch.exp(-log_s) - 0.5 * n * log_s - log_det
               - 0.5 * n * math.log(2 * math.pi))
    log_weights = prior.mixing.log_prob(u.exp()) + u + log_lik + trapezoid
    keep = torch.isfinite(log_weights)  # nodes where the prior's density or s itself underflows carry no weight
    means = loc.expand(int(keep.sum()), -1)
    variances = log_s[keep].exp()[:, None] * shape_var
    log_weights = log_weights[keep]
    mix = NormalMixturePredictive(means, variances, log_weights=log_weights)
    mix.diagnostics.update(method="quadrature", nodes=nodes, log_grid=(lo, hi))
    return mix


# ----------------------------------------------------------------------------------------------------------------
# the GP's hyperparameters integrated out by NUTS


@dataclass(frozen=True)
class StudentTEvidence:
    """The NUTS likelihood of one dataset under a Student-t process (module docstring), a JAX function of the
    GP's hyperparameters; hashable, so the compiled chain is cached per (a, b)."""

    a: float
    b: float

    def __call__(self, kernel: Any, params: GPParams, x: Any, y: Any, jitter: float) -> Any:
        import jax.numpy as jnp
        import jax.scipy.linalg as jsl

        n = x.shape[0]
        s2 = jnp.square(params.noise_std) + jitter
        cov = kernel.matrix(params.kernel.map(lambda t: t[None]), x[None], x[None])[0] + s2 * jnp.eye(n)
        chol = jnp.linalg.cholesky(cov)
        w = jsl.solve_triangular(chol, y - params.mean, lower=True)
        beta = jnp.dot(w, w)
        a, b = self.a, self.b
        return (math.lgamma(a + n / 2) - math.lgamma(a) - n / 2 * math.log(2 * math.pi * b)
                - jnp.log(jnp.diagonal(chol)).sum() - (a + n / 2) * jnp.log1p(beta / (2 * b)))


def _free(prior) -> bool:
    return any(not isinstance(hp, Fixed) for hp in prior.gp.hyperpriors().values())


def _fixed_params(prior, d: int) -> GPParams:
    shapes = prior.gp.param_shapes(d)
    return prior.gp.params_from({name: torch.full((1, *shapes[name]), float(hp.value), dtype=torch.float64)
                                 for name, hp in prior.gp.hyperpriors().items()})


def student_t_process_marginal_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object,
                                          num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
                                          seed: int = 0, *,
                                          target_accept_prob: float = 0.9) -> StudentTMixturePredictive:
    """The Bayes posterior predictive of ONE dataset under a Student-t process with an inverse-gamma mixing
    prior: the variance factor integrated in closed form, the GP's hyperparameters by NUTS under the evidence
    (:class:`StudentTEvidence`), one Student-t per draw, mixed with equal weights; ``diagnostics`` as
    :func:`priorfit.exact.marginal_predictive`'s. With every hyperparameter ``Fixed`` it is the closed form
    itself (``diagnostics["method"] == "fixed"``)."""
    from priorfit.exact.marginal import _check_data, _param_table, _run_nuts

    a, b = _inverse_gamma(prior)
    x_ctx, y_ctx, x_qry = _check_data(x_ctx, y_ctx, x_qry)
    if x_ctx.shape[0] < 1:
        raise InputDataError("the Student-t process marginal needs at least 1 context point")
    if _free(prior):
        table = _param_table(prior.gp, x_ctx.shape[1])
        params, diag = _run_nuts(prior.gp, table, x_ctx, y_ctx, num_warmup, num_samples, num_chains, seed,
                                 target_accept_prob, likelihood=StudentTEvidence(a, b))
    else:
        params = _fixed_params(prior, x_ctx.shape[1])
        diag = {"method": "fixed", "max_r_hat": math.nan, "min_ess": math.nan, "num_divergences": 0}
    locs, scales = [], []
    for start in range(0, params.batch_size, 256):
        p = params.map(lambda t: t[start:start + 256])
        k = p.batch_size
        loc, scale, df = student_t_process_predictive(prior, p, x_ctx.expand(k, -1, -1), y_ctx.expand(k, -1),
                                                      x_qry.expand(k, -1, -1))
        locs.append(loc)
        scales.append(scale)
    return StudentTMixturePredictive(torch.cat(locs), torch.cat(scales), df=df, diagnostics=diag)


# ----------------------------------------------------------------------------------------------------------------
# the Student-t process's references (see priorfit.exact.reference)


@dataclass(frozen=True)
class StudentTProcessOracle:
    """The posterior predictive given the GP hyperparameters each dataset was drawn with, the variance factor
    integrated out: the closed-form Student-t for an inverse-gamma mixing prior, else the quadrature."""

    prior: object
    name = "oracle"
    label = "Student-t process oracle"
    kind = ReferenceKind.ORACLE

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        params = task.truth.gp
        if self.prior.closed_form:
            loc, scale, df = student_t_process_predictive(self.prior, params, task.x_ctx[None], task.y_ctx[None],
                                                          task.x_qry[None])
            return ReferenceResult(StudentTPredictive(loc[0], scale[0], df))
        return ReferenceResult(scale_quadrature_predictive(self.prior, params, task.x_ctx, task.y_ctx,
                                                           task.x_qry))


@dataclass(frozen=True)
class StudentTProcessMarginal:
    """The Bayes posterior predictive with every hyperparameter integrated out
    (:func:`student_t_process_marginal_predictive`): closed form when the GP's are all ``Fixed``, NUTS over them
    otherwise (an inverse-gamma mixing prior), or the quadrature for another mixing prior with fixed GP
    hyperparameters."""

    prior: object
    num_warmup: int = 200
    num_samples: int = 200
    num_chains: int = 2
    name = "marginal"
    label = "Student-t process (exact)"
    kind = ReferenceKind.MARGINAL

    def __post_init__(self) -> None:
        if not self.prior.closed_form and _free(self.prior):
            raise ConfigError("no exact marginal for a mixing prior other than InverseGamma on the variance together "
                              "with hyperpriors on the GP's hyperparameters")

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from priorfit.exact.marginal import nuts_reference_result

        if not self.prior.closed_form:
            params = _fixed_params(self.prior, task.x_ctx.shape[1])
            return ReferenceResult(scale_quadrature_predictive(self.prior, params, task.x_ctx, task.y_ctx,
                                                               task.x_qry))
        return nuts_reference_result(self, student_t_process_marginal_predictive, task, seed)


# ----------------------------------------------------------------------------------------------------------------
# Student-t observation noise (priorfit.priors.student_t.StudentTNoisePrior)

_QUERY_NODES = 32  # Gauss-Legendre nodes over a query's own precision factor
# NUTS's trees are capped at 2^8 leapfrog steps per draw (NumPyro's default is 2^10): a chain wandering into the
# heavy tail of the degrees of freedom otherwise takes minutes for one dataset. The cap costs mixing, which shows
# in R-hat and ESS, not correctness.
_MAX_TREE_DEPTH = 8
# Compiled samplers kept (one per data size): each holds XLA executables, and an evaluation that kept dozens (every
# context size, query count and longer rerun) ran out of memory maps in LLVM and crashed.
_CACHED_SAMPLERS = 4


def _noise_covariances(prior, params: GPParams, precisions: Tensor, x_ctx: Tensor,
                       x_qry: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """On the context-scaled inputs: the context's shape covariance with per-point noise variances
    :math:`\\sigma_n^2/\\lambda_i` (`batch x n x n`), the covariances to the queries (`batch x n x m`) and the
    queries' variances of f (`batch x m`, jitter included, no noise)."""
    from priorfit.preprocessing import context_input_scaling, scale_inputs

    lo, width = context_input_scaling(x_ctx)
    xc, xq = scale_inputs(x_ctx, lo, width), scale_inputs(x_qry, lo, width)
    kernel, jitter = prior.gp.kernel, prior.gp.jitter
    noise = params.noise_std.square()[:, None] / precisions + jitter  # b x n
    cov = kernel.forward(params.kernel, xc, xc) + torch.diag_embed(noise)
    return cov, kernel.forward(params.kernel, xc, xq), kernel.diag(params.kernel, xq) + jitter


def _query_precision_nodes(df: Tensor, nodes: int) -> tuple[Tensor, Tensor]:
    """Per row of ``df`` (`S`): `S x nodes` values of a query's precision factor and their log weights under
    Gamma(df/2, rate df/2): Gauss-Legendre quadrature in its CDF's level u on (0, 1), mapped by the inverse CDF
    (stable for any df, as Gauss-Laguerre is not for df near 0)."""
    from scipy import special

    u, w = np.polynomial.legendre.leggauss(nodes)
    u, w = (u + 1) / 2, w / 2
    half = df.to(torch.float64).numpy()[:, None] / 2
    values = special.gammaincinv(half, u[None, :]) / half
    return torch.from_numpy(np.maximum(values, 1e-300)), torch.from_numpy(np.log(w)).expand(df.shape[0], -1)


def student_t_noise_predictive(prior, params: GPParams, df: Tensor, precisions: Tensor, x_ctx: Tensor,
                               y_ctx: Tensor, x_qry: Tensor, log_weights: Tensor | None = None,
                               diagnostics: dict | None = None, nodes: int = _QUERY_NODES
                               ) -> StudentTMixturePredictive:
    """The predictive of ONE dataset (`n x d`, `n`, `m x d`) under ``StudentTNoisePrior`` given S draws of the
    GP's hyperparameters (``params``, S rows), degrees of freedom ``df`` (`S`) and the context's precision
    factors (`S x n`), weighted by ``log_weights`` (`S`; None: equal): the targets' location, scale and f
    integrated in closed form (a Student-t with n - 1 degrees of freedom per draw, :mod:`priorfit.exact.invariant`)
    and the query's own noise precision by quadrature, so one component per draw and node."""
    from priorfit.exact.invariant import invariant_pieces

    total = params.batch_size
    locs, scales, logs = [], [], []
    query_values, query_logs = _query_precision_nodes(df, nodes)  # S x K
    for start in range(0, total, 256):
        rows = slice(start, start + 256)
        p = params.map(lambda t: t[rows])
        b = p.batch_size
        cov, cross, var_f = _noise_covariances(prior, p, precisions[rows], x_ctx.expand(b, -1, -1),
                                               x_qry.expand(b, -1, -1))
        loc, shape_var, unit = invariant_pieces(cov, cross, var_f, y_ctx.expand(b, -1))  # b x m, b x m, b
        noise = p.noise_std.square()[:, None] / query_values[rows]  # b x K
        scale2 = unit[:, None, None] * (shape_var[:, None, :] + noise[:, :, None])  # b x K x m
        locs.append(loc[:, None, :].expand_as(scale2).reshape(-1, loc.shape[-1]))
        scales.append(scale2.sqrt().reshape(-1, loc.shape[-1]))
        logs.append(query_logs[rows].reshape(-1))
    row_logs = torch.zeros(total, dtype=torch.float64) if log_weights is None else log_weights
    row_logs = row_logs - torch.logsumexp(row_logs, 0)
    log_w = torch.cat(logs) + row_logs.repeat_interleave(nodes)
    return StudentTMixturePredictive(torch.cat(locs), torch.cat(scales), df=float(y_ctx.shape[-1] - 1),
                                     log_weights=log_w, diagnostics=diagnostics)


def student_t_noise_evidence(prior, params: GPParams, precisions: Tensor, x_ctx: Tensor, y_ctx: Tensor) -> Tensor:
    """`S` invariant evidences of ONE dataset given S rows of GP hyperparameters and context precisions."""
    from priorfit.exact.invariant import invariant_log_likelihood

    b = params.batch_size
    cov, _, _ = _noise_covariances(prior, params, precisions, x_ctx.expand(b, -1, -1), x_ctx[None, :1].expand(b, -1, -1))
    return invariant_log_likelihood(cov, y_ctx.expand(b, -1))


def _site(name: str, shape: tuple, hyperprior) -> Any:
    """A NumPyro sample site with our hyperprior's density (its own ``log_prob`` on JAX arrays, as a factor)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from priorfit.exact.marginal import _constraint

    if isinstance(hyperprior, Fixed):
        return jnp.full(shape, float(hyperprior.value))
    value = numpyro.sample(name, dist.ImproperUniform(_constraint(hyperprior), (), shape))
    numpyro.factor(f"{name}.prior", hyperprior.log_prob(value).sum())
    return value


@functools.lru_cache(maxsize=_CACHED_SAMPLERS)
def _noise_mcmc(prior, n: int, d: int, num_warmup: int, num_samples: int, num_chains: int,
                target_accept_prob: float) -> Any:
    r"""A NumPyro MCMC (NUTS) for ``prior`` (a ``StudentTNoisePrior``) on n context points in its context's
    units: the GP's hyperparameters, the degrees of freedom, the targets' location :math:`\mu` (flat) and log
    scale :math:`\log\sigma` (flat: :math:`p(\sigma) \propto 1/\sigma`), and the latent function at the
    context, non-centred (:math:`f = L w`, :math:`w \sim N(0, I)`), under the Student-t likelihood. Cached per
    data size so that datasets of one size share a compilation."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from priorfit.exact.invariant import _shape_table

    table = _shape_table(prior, d)
    kernel, jitter = prior.gp.kernel, float(prior.gp.jitter)
    flat_prior = dist.ImproperUniform(dist.constraints.real, (), ())

    def model(x: Any, y: Any) -> None:
        flat = {name: _site(name, shape, hp) for name, shape, hp in table}
        nu = _site("df", (), prior.df)
        loc = numpyro.sample("loc", flat_prior)
        log_scale = numpyro.sample("log_scale", flat_prior)
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
        params = kernel.params_from(flat)
        cov = kernel.matrix(params.map(lambda a: a[None]), x[None], x[None])[0] + jitter * jnp.eye(n)
        f = jnp.linalg.cholesky(cov) @ w
        scale = jnp.exp(log_scale)
        numpyro.sample("y", dist.StudentT(nu, loc + scale * f, scale * flat["noise_std"]), obs=y)

    sampler = NUTS(model, target_accept_prob=target_accept_prob, max_tree_depth=_MAX_TREE_DEPTH)
    return MCMC(sampler, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="sequential", progress_bar=False, jit_model_args=True)


def _latent_predictive(prior, params: GPParams, df: Tensor, loc: Tensor, scale: Tensor, w: Tensor, x_ctx: Tensor,
                       x_qry: Tensor, diagnostics: dict, nodes: int = _QUERY_NODES) -> NormalMixturePredictive:
    """Per draw (S rows: GP hyperparameters, df, location, scale, whitened context function `S x n`): the query
    function given the context's, :math:`N(k_*^\top K^{-1} f, k_{**} - k_*^\top K^{-1} k_*)`, plus Student-t
    noise, its precision by quadrature: one normal per draw and node."""
    from priorfit.preprocessing import context_input_scaling, scale_inputs

    lo, width = context_input_scaling(x_ctx[None])
    xc, xq = scale_inputs(x_ctx[None], lo, width)[0], scale_inputs(x_qry[None], lo, width)[0]
    kernel, jitter = prior.gp.kernel, prior.gp.jitter
    query_values, query_logs = _query_precision_nodes(df, nodes)  # S x K
    means, variances = [], []
    for start in range(0, params.batch_size, 256):
        rows = slice(start, start + 256)
        p = params.map(lambda t: t[rows])
        b, n = p.batch_size, xc.shape[0]
        cov = kernel.forward(p.kernel, xc.expand(b, -1, -1), xc.expand(b, -1, -1)) + jitter * torch.eye(n,
                                                                                                    dtype=torch.float64)
        chol = cholesky_with_jitter(cov, 0.0)
        cross = kernel.forward(p.kernel, xc.expand(b, -1, -1), xq.expand(b, -1, -1))  # b x n x m
        v = torch.linalg.solve_triangular(chol, cross, upper=False)  # b x n x m: f* mean = v' w
        mean_f = (v * w[rows, :, None]).sum(-2)  # b x m
        var_f = (kernel.diag(p.kernel, xq.expand(b, -1, -1)) + jitter - v.square().sum(-2)).clamp_min(0.0)
        noise = p.noise_std.square()[:, None] / query_values[rows]  # b x K
        s2 = scale[rows].square()[:, None, None]
        var = s2 * (var_f[:, None, :] + noise[:, :, None])  # b x K x m
        means.append((loc[rows, None, None] + scale[rows, None, None] * mean_f[:, None, :]).expand_as(var)
                     .reshape(-1, xq.shape[0]))
        variances.append(var.reshape(-1, xq.shape[0]))
    log_w = query_logs.reshape(-1) - math.log(params.batch_size)
    return NormalMixturePredictive(torch.cat(means), torch.cat(variances), log_weights=log_w,
                                   diagnostics=diagnostics)


def student_t_noise_marginal_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_warmup: int = 500,
                                        num_samples: int = 500, num_chains: int = 2, seed: int = 0, *,
                                        target_accept_prob: float = 0.9) -> NormalMixturePredictive:
    """Exact Bayes for ONE dataset under a ``StudentTNoisePrior``: NUTS (NumPyro) over the GP's hyperparameters,
    the degrees of freedom, the targets' location and scale and the latent function at the context
    (:func:`_noise_mcmc`); the query's function and noise given each draw as :func:`_latent_predictive`.
    ``diagnostics`` as :func:`priorfit.exact.marginal_predictive`'s, R-hat and ESS over every sampled quantity,
    the latent function included. Needs n >= 2."""
    from priorfit.exact.invariant import _checked
    from priorfit.exact.marginal import run_numpyro
    from priorfit.preprocessing import context_input_scaling, context_standardization, scale_inputs

    x_ctx, y_ctx, x_qry = _checked(x_ctx, y_ctx, x_qry)
    n, d = x_ctx.shape
    lo, width = context_input_scaling(x_ctx[None])
    x_nuts = scale_inputs(x_ctx[None], lo, width)[0]
    # the chains run on standardised targets (the prior is invariant to it, so nothing changes but where NUTS
    # starts: its location and log scale start near 0), mapped back below
    y_loc, y_scale = (float(t) for t in context_standardization(y_ctx[None]))
    mcmc = _noise_mcmc(prior, n, d, num_warmup, num_samples, num_chains, float(target_accept_prob))
    grouped, diag = run_numpyro(mcmc, seed, x_nuts.numpy(),
                                ((y_ctx - y_loc) / y_scale).numpy())
    total = num_chains * num_samples
    flat = {k: torch.from_numpy(v.reshape(total, *v.shape[2:])) for k, v in grouped.items()}
    shapes = prior.gp.param_shapes(d)
    gp_flat = {}
    for name, hp in prior.gp.hyperpriors().items():
        if name == "mean":
            gp_flat[name] = torch.zeros(total, dtype=torch.float64)
        elif name in flat:
            gp_flat[name] = flat[name]
        else:
            gp_flat[name] = torch.full((total, *shapes[name]), float(hp.value), dtype=torch.float64)
    df = flat["df"] if "df" in flat else torch.full((total,), float(prior.df.value), dtype=torch.float64)
    return _latent_predictive(prior, prior.gp.params_from(gp_flat), df, y_loc + y_scale * flat["loc"],
                              y_scale * flat["log_scale"].exp(), flat["w"], x_ctx, x_qry, diag)


@dataclass(frozen=True)
class StudentTNoiseOracle:
    """The predictive given everything a dataset was drawn with except the function and the targets' location
    and scale: the GP's hyperparameters, the degrees of freedom and the context's precision factors (the
    query's own noise integrated by quadrature). A bound no method reaches."""

    prior: object
    name = "oracle"
    label = "Student-t noise oracle"
    kind = ReferenceKind.ORACLE

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        truth = task.truth
        n = task.x_ctx.shape[0]
        return ReferenceResult(student_t_noise_predictive(self.prior, truth.gp, truth.df, truth.precisions[:, :n],
                                                          task.x_ctx, task.y_ctx, task.x_qry))


@dataclass(frozen=True)
class StudentTNoiseMarginal:
    """The Bayes posterior predictive under Student-t noise (:func:`student_t_noise_marginal_predictive`)."""

    prior: object
    num_warmup: int = 200
    num_samples: int = 200
    num_chains: int = 2
    name = "marginal"
    label = "Student-t noise marginal (NUTS)"
    kind = ReferenceKind.MARGINAL

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from priorfit.exact.marginal import nuts_reference_result

        return nuts_reference_result(self, student_t_noise_marginal_predictive, task, seed)
