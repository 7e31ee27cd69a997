r"""Exact Bayes when the targets' location and scale are unknown: the invariant posterior predictive.

Model, given the shape hyperparameters :math:`\theta` (kernel shape, noise-to-signal ratio, ...):
:math:`y = \mu \mathbf 1 + \sigma z`, :math:`z \sim N(0, C_\theta)`, with the invariant prior
:math:`p(\mu, \sigma) \propto 1/\sigma`. Integrating :math:`\mu` and :math:`\sigma` out [BOS2001]_, with
:math:`a = \mathbf 1^\top C^{-1} \mathbf 1`, :math:`\hat\mu = \mathbf 1^\top C^{-1} y / a`,
:math:`r = y - \hat\mu \mathbf 1` and :math:`S^2 = r^\top C^{-1} r`:

.. math::
    p(y \mid \theta) = \frac{\Gamma(\frac{n-1}{2})}{2\,\pi^{(n-1)/2}}\,
        |C|^{-1/2}\, a^{-1/2}\, (S^2)^{-(n-1)/2}

and the predictive of a new :math:`y_*` (covariances :math:`c_*` with the context, :math:`c_{**}` its own
variance, noise included) is a Student-t with :math:`n - 1` degrees of freedom:

.. math::
    y_* \mid y, \theta \sim t_{n-1}\!\left(\hat\mu + c_*^\top C^{-1} r,\;
        \frac{S^2}{n-1}\Big(c_{**} - c_*^\top C^{-1} c_* + \frac{(1 - \mathbf 1^\top C^{-1} c_*)^2}{a}\Big)\right)

(location and squared scale). Both are unchanged, up to the map of units, by :math:`y \to \alpha y + \beta`
(:math:`\alpha > 0`): this is what a PFN that sees only standardised targets can learn, whatever the user's
units. It needs n >= 2; at n = 2 the predictive is a Cauchy.

References:
    .. [BOS2001] J. O. Berger, V. De Oliveira, B. Sansó. Objective Bayesian analysis of spatially correlated
        data. JASA 96, 2001, sec. 2 (the integrated likelihood under p(mu, sigma) ~ 1/sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.exceptions import ConfigError, InputDataError
from priorfit.predictive.mixture import StudentTMixturePredictive
from priorfit.predictive.student_t import StudentTPredictive
from priorfit.validation import check_int
from priorfit.preprocessing import context_input_scaling, scale_inputs

__all__ = ["invariant_predictive", "invariant_log_likelihood", "invariant_marginal_predictive",
           "invariant_importance_predictive", "invariant_quadrature_predictive", "InvariantOracle",
           "InvariantMarginal"]


def _solve_pieces(cov: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Cholesky L of C, a = 1'C^-1 1, mu_hat, r = y - mu_hat 1 and C^-1 r, for `batch x n x n` C and `batch x n` y."""
    if cov.dim() != 3 or cov.shape[-1] != cov.shape[-2] or y.shape != cov.shape[:2]:
        raise InputDataError(f"cov must be batch x n x n and y batch x n, got {tuple(cov.shape)} and {tuple(y.shape)}")
    if y.shape[1] < 2:
        raise InputDataError(f"the invariant posterior needs at least 2 context points, got n = {y.shape[1]}")
    chol = torch.linalg.cholesky(cov)
    ones = torch.ones_like(y)[..., None]  # b x n x 1
    c_inv_1 = torch.cholesky_solve(ones, chol)[..., 0]  # b x n
    a = c_inv_1.sum(-1)  # b
    mu_hat = (c_inv_1 * y).sum(-1) / a  # b
    r = y - mu_hat[:, None]
    c_inv_r = torch.cholesky_solve(r[..., None], chol)[..., 0]
    return chol, a, mu_hat, r, c_inv_r


def invariant_log_likelihood(cov: Tensor, y: Tensor) -> Tensor:
    r"""`batch` log :math:`p(y \mid \theta)` with the targets' location and scale integrated out (module
    docstring), for shape covariances `cov` (`batch x n x n`, noise included) and targets `y` (`batch x n`)."""
    cov, y = cov.to(torch.float64), y.to(torch.float64)
    chol, a, _, r, c_inv_r = _solve_pieces(cov, y)
    n = y.shape[1]
    s2 = (r * c_inv_r).sum(-1)
    log_det = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
    const = math.lgamma((n - 1) / 2) - math.log(2.0) - (n - 1) / 2 * math.log(math.pi)
    return const - 0.5 * log_det - 0.5 * a.log() - (n - 1) / 2 * s2.log()


def invariant_predictive(cov: Tensor, cross: Tensor, var_qry: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The Student-t predictive (module docstring) of queries with shape covariances ``cross`` to the context
    (`batch x n x m`) and own variances ``var_qry`` (`batch x m`, noise included), given the context's shape
    covariance ``cov`` (`batch x n x n`) and targets ``y`` (`batch x n`). Returns location and scale (not the
    standard deviation), each `batch x m`, and the degrees of freedom n - 1 (`batch`)."""
    loc, shape_var, unit = invariant_pieces(cov, cross, var_qry, y)
    return loc, (unit[:, None] * shape_var).sqrt(), torch.full_like(unit, float(y.shape[1] - 1))


def invariant_pieces(cov: Tensor, cross: Tensor, var_qry: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`invariant_predictive`'s location (`batch x m`), the shape variance it scales (`batch x m`, linear
    in ``var_qry``) and the factor :math:`S^2 / (n - 1)` (`batch`): the squared scale is their product. Apart,
    so that a query's own noise can be varied (Student-t noise) without solving again."""
    cov, cross, var_qry, y = (t.to(torch.float64) for t in (cov, cross, var_qry, y))
    chol, a, mu_hat, r, c_inv_r = _solve_pieces(cov, y)
    n = y.shape[1]
    s2 = (r * c_inv_r).sum(-1)  # b
    loc = mu_hat[:, None] + (cross * c_inv_r[..., None]).sum(-2)  # b x m
    v = torch.linalg.solve_triangular(chol, cross, upper=False)  # b x n x m
    c_inv_cross = torch.cholesky_solve(cross, chol)  # b x n x m
    gls = (1.0 - c_inv_cross.sum(-2)).square() / a[:, None]  # (1 - 1'C^-1 c*)^2 / a
    shape_var = (var_qry - v.square().sum(-2)).clamp_min(0.0) + gls
    return loc, shape_var, s2 / (n - 1)


# ----------------------------------------------------------------------------------------------------------------
# the invariant prior's references (see priorfit.exact.reference)


@dataclass(frozen=True)
class InvariantOracle:
    """The Student-t predictive of an :class:`~priorfit.priors.invariant.InvariantGPPrior` with the shape
    hyperparameters each dataset was drawn with, the targets' location and scale integrated out."""

    prior: object
    name = "oracle"
    label = "invariant oracle"
    kind = ReferenceKind.ORACLE

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        cov, cross, var_qry = self.prior.shape_covariances(task.truth, task.x_ctx[None], task.x_qry[None])
        loc, scale, df = invariant_predictive(cov, cross, var_qry, task.y_ctx[None])
        return ReferenceResult(StudentTPredictive(loc[0], scale[0], df[0]))


# ----------------------------------------------------------------------------------------------------------------
# the shape hyperparameters integrated out: NUTS, and importance sampling as its cross-check

_CHUNK = 256  # posterior draws per batched Student-t predictive


def _mixture(prior, params, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor, log_weights=None,
             diagnostics=None) -> StudentTMixturePredictive:
    """One Student-t per draw of the shape hyperparameters (``params`` with S rows), mixed."""
    total = params.batch_size
    locs, scales = [], []
    for start in range(0, total, _CHUNK):
        p = params.map(lambda t: t[start:start + _CHUNK])
        b = p.batch_size
        cov, cross, var_qry = prior.shape_covariances(p, x_ctx.expand(b, -1, -1), x_qry.expand(b, -1, -1))
        loc, scale, _ = invariant_predictive(cov, cross, var_qry, y_ctx.expand(b, -1))
        locs.append(loc)
        scales.append(scale)
    return StudentTMixturePredictive(torch.cat(locs), torch.cat(scales), df=float(y_ctx.shape[-1] - 1),
                                     log_weights=log_weights, diagnostics=diagnostics)


def _log_likelihoods(prior, params, x_ctx: Tensor, y_ctx: Tensor) -> Tensor:
    """The integrated likelihood of the context under each row of ``params`` (S rows: S values)."""
    out = []
    for start in range(0, params.batch_size, _CHUNK):
        p = params.map(lambda t: t[start:start + _CHUNK])
        b = p.batch_size
        cov, _, _ = prior.shape_covariances(p, x_ctx.expand(b, -1, -1), x_ctx[None, :1].expand(b, -1, -1))
        out.append(invariant_log_likelihood(cov, y_ctx.expand(b, -1)))
    return torch.cat(out)


def _shape_table(prior, d: int) -> tuple:
    """The NUTS table of the GP's hyperparameters less its mean (the location is integrated out)."""
    from priorfit.exact.marginal import _param_table

    return tuple(row for row in _param_table(prior.gp, d) if row[0] != "mean")


def _checked(x_ctx: object, y_ctx: object, x_qry: object) -> tuple[Tensor, Tensor, Tensor]:
    from priorfit.exact.marginal import _check_data

    x_ctx, y_ctx, x_qry = _check_data(x_ctx, y_ctx, x_qry)
    if x_ctx.shape[0] < 2:
        raise InputDataError(f"the invariant posterior needs at least 2 context points, got n = {x_ctx.shape[0]}")
    return x_ctx, y_ctx, x_qry


def invariant_marginal_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_warmup: int = 500,
                                  num_samples: int = 500, num_chains: int = 2, seed: int = 0, *,
                                  target_accept_prob: float = 0.9) -> StudentTMixturePredictive:
    r"""Exact Bayes for ONE dataset under an :class:`~priorfit.priors.invariant.InvariantGPPrior`: the targets'
    location and scale integrated in closed form, the shape hyperparameters :math:`\theta` by NUTS under the
    integrated likelihood (the prior's own kernel and hyperprior bodies on JAX arrays, as
    :func:`priorfit.exact.marginal_predictive`), then a Student-t per draw, mixed with equal weights.
    ``diagnostics`` as there (split R-hat, ESS, divergences, leapfrog steps). Needs n >= 2."""
    from priorfit.exact.marginal import _invariant_log_likelihood, _run_nuts

    x_ctx, y_ctx, x_qry = _checked(x_ctx, y_ctx, x_qry)
    lo, width = context_input_scaling(x_ctx[None])
    x_nuts = scale_inputs(x_ctx[None], lo, width)[0]  # the function lives on the context-scaled inputs
    table = _shape_table(prior, x_ctx.shape[1])
    params, diag = _run_nuts(prior.gp, table, x_nuts, y_ctx, num_warmup, num_samples, num_chains, seed,
                             target_accept_prob, likelihood=_invariant_log_likelihood)
    return _mixture(prior, params, x_ctx, y_ctx, x_qry, diagnostics=diag)


def invariant_importance_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_samples: int = 20000,
                                    seed: int = 0) -> StudentTMixturePredictive:
    """The same posterior by self-normalised importance sampling, the hyperprior as proposal and the integrated
    likelihood as weight: slow but simple, for checking NUTS while the posterior is not much narrower than the
    prior (``diagnostics["weights_ess"]``)."""
    x_ctx, y_ctx, x_qry = _checked(x_ctx, y_ctx, x_qry)
    params = prior.gp.sample_params(num_samples, x_ctx.shape[1], torch.Generator().manual_seed(seed))
    mix = _mixture(prior, params, x_ctx, y_ctx, x_qry, log_weights=_log_likelihoods(prior, params, x_ctx, y_ctx))
    mix.diagnostics.update(method="importance", num_samples=num_samples, weights_ess=mix.weights_ess)
    return mix


def invariant_quadrature_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object,
                                    nodes: int = 12) -> StudentTMixturePredictive:
    """The same posterior by tensor-product Gauss-Hermite quadrature over the shape hyperparameters, for a GP
    whose hyperpriors are all ``LogNormal`` or ``Fixed``: each log-normal coordinate (every entry of an ARD
    lengthscale too) gets ``nodes`` nodes in its underlying normal, weighted by the integrated likelihood. Its
    cost is ``nodes`` to the power of the free coordinates (4 for the default prior at d = 1): a deterministic
    reference for small d, independent of NUTS and of sampling."""
    from priorfit.priors.hyperpriors import Fixed, LogNormal

    x_ctx, y_ctx, x_qry = _checked(x_ctx, y_ctx, x_qry)
    check_int("nodes", nodes, minimum=1)
    t, w = np.polynomial.hermite.hermgauss(nodes)
    z, log_w1 = torch.as_tensor(t * math.sqrt(2.0)), torch.as_tensor(np.log(w / math.sqrt(math.pi)))
    shapes = prior.gp.param_shapes(x_ctx.shape[1])
    columns, log_weights, spans = [], [], {}
    for name, hyperprior in prior.gp.hyperpriors().items():
        if name == "mean":
            continue
        size = int(np.prod(shapes[name], dtype=int))
        if isinstance(hyperprior, LogNormal):
            spans[name] = (len(columns), size)
            columns += [hyperprior.loc + hyperprior.scale * z] * size
            log_weights += [log_w1] * size
        elif not isinstance(hyperprior, Fixed):
            raise ConfigError(f"quadrature needs LogNormal or Fixed hyperpriors; {name} has "
                              f"{type(hyperprior).__name__}")
    grid = torch.cartesian_prod(*columns).reshape(-1, len(columns)) if columns else torch.zeros(1, 0)
    log_prior = (torch.cartesian_prod(*log_weights).reshape(-1, len(columns)).sum(-1) if columns
                 else torch.zeros(1, dtype=torch.float64))
    total = grid.shape[0]
    flat = {}
    for name, hyperprior in prior.gp.hyperpriors().items():
        shape = (total, *shapes[name])
        if name in spans:
            start, size = spans[name]
            flat[name] = grid[:, start:start + size].exp().reshape(shape)
        elif name == "mean":  # integrated out with the location: its hyperprior plays no part
            flat[name] = torch.zeros(shape, dtype=torch.float64)
        else:
            flat[name] = torch.full(shape, float(hyperprior.value), dtype=torch.float64)
    params = prior.gp.params_from(flat)
    log_weights = _log_likelihoods(prior, params, x_ctx, y_ctx) + log_prior
    mix = _mixture(prior, params, x_ctx, y_ctx, x_qry, log_weights=log_weights)
    mix.diagnostics.update(method="quadrature", nodes=nodes, points=total, weights_ess=mix.weights_ess)
    return mix


@dataclass(frozen=True)
class InvariantMarginal:
    """The invariant prior's Bayes posterior predictive, the shape hyperparameters integrated out by NUTS
    (:func:`invariant_marginal_predictive`), with the chains' diagnostics."""

    prior: object
    num_warmup: int = 200
    num_samples: int = 200
    num_chains: int = 2
    name = "marginal"
    label = "invariant marginal (NUTS)"
    kind = ReferenceKind.MARGINAL

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from priorfit.exact.marginal import nuts_reference_result

        return nuts_reference_result(self, invariant_marginal_predictive, task, seed)
