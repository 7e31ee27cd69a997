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

import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.exceptions import InputDataError
from priorfit.predictive.student_t import StudentTPredictive

__all__ = ["invariant_predictive", "invariant_log_likelihood", "InvariantOracle"]


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
    cov, cross, var_qry, y = (t.to(torch.float64) for t in (cov, cross, var_qry, y))
    chol, a, mu_hat, r, c_inv_r = _solve_pieces(cov, y)
    n = y.shape[1]
    s2 = (r * c_inv_r).sum(-1)  # b
    loc = mu_hat[:, None] + (cross * c_inv_r[..., None]).sum(-2)  # b x m
    v = torch.linalg.solve_triangular(chol, cross, upper=False)  # b x n x m
    c_inv_cross = torch.cholesky_solve(cross, chol)  # b x n x m
    gls = (1.0 - c_inv_cross.sum(-2)).square() / a[:, None]  # (1 - 1'C^-1 c*)^2 / a
    shape_var = (var_qry - v.square().sum(-2)).clamp_min(0.0) + gls
    scale = (s2[:, None] / (n - 1) * shape_var).sqrt()
    return loc, scale, torch.full_like(a, float(n - 1))


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
