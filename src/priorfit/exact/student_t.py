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
           "StudentTEvidence"]


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
    weights :math:`p(t)\, t\, N(y \mid m, s(t) C)`, one normal per node. The grid covers the prior's
    :math:`10^{-5}` to :math:`1 - 10^{-5}` quantiles (from 20,000 seeded draws) widened by 3 on each side, and the
    likelihood's peak in :math:`\log s` plus or minus 15 of its standard deviations :math:`\sqrt{2/n}`."""
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
    t = u.exp()
    s = t if prior.mixing_on == "variance" else t.square()
    trapezoid = torch.full_like(u, math.log(float(u[1] - u[0])))
    trapezoid[[0, -1]] -= math.log(2.0)
    log_det = torch.diagonal(chol[0]).log().sum()
    log_lik = -0.5 * float(beta[0]) / s - 0.5 * n * s.log() - log_det - 0.5 * n * math.log(2 * math.pi)
    log_weights = prior.mixing.log_prob(t) + u + log_lik + trapezoid
    means = loc.expand(nodes, -1)
    variances = s[:, None] * shape_var
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
