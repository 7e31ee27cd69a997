r"""What a prior knows about a dataset's held-out targets: their exact distribution given the latent values the
dataset was drawn with and its context.

For a GP, given its hyperparameters :math:`\theta` and the context, each query target is normal,
:math:`y_* \mid D, \theta \sim N(\mu_\theta, \sigma^2_\theta)`. Training can then score the PFN's bars by their
cross-entropy against that normal instead of by the NLL of the one target that was sampled: since
:math:`E[-\log q(y_*) \mid D, \theta]` *is* that cross-entropy, the objective and its optimum are unchanged and
only the gradient's noise falls (a Rao-Blackwellised target). A prior declares this with a method
``conditional(batch, n_context)`` returning :class:`NormalTargets`, or None when it has no such form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["NormalTargets", "gaussian_conditional", "query_conditional"]


@dataclass(frozen=True, eq=False)
class NormalTargets:
    """Independent normals :math:`N(\\text{mean}, \\text{std}^2)`, one per held-out target (each `batch x m`,
    float64, in the batch's units): the exact distribution of each query target given the dataset's latent
    values and its context."""

    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean {tuple(self.mean.shape)} and std {tuple(self.std.shape)} must have one shape")


def gaussian_conditional(cov_ctx: Tensor, cross: Tensor, var_qry: Tensor, resid_ctx: Tensor) -> NormalTargets:
    """Each query's normal given a jointly Gaussian context: ``cov_ctx`` (`batch x n x n`, the context targets'
    covariance, noise included), ``cross`` (`batch x n x m`, their covariances with the query targets),
    ``var_qry`` (`batch x m`, the query targets' variances) and ``resid_ctx`` (`batch x n`, the context targets
    minus their mean). The mean returned is the offset from the queries' prior mean."""
    from priorfit.priors.gp import cholesky_with_jitter

    chol = cholesky_with_jitter(cov_ctx, 0.0)
    v = torch.linalg.solve_triangular(chol, cross, upper=False)  # b x n x m
    w = torch.linalg.solve_triangular(chol, resid_ctx.unsqueeze(-1), upper=False)  # b x n x 1
    mean = (v * w).sum(1)
    var = (var_qry - v.square().sum(1)).clamp_min(1e-12 * var_qry)  # rounding must not make it negative
    return NormalTargets(mean=mean, std=var.sqrt())


def query_conditional(prior: Any, batch: Any, n_context: int) -> NormalTargets | None:
    """``prior.conditional(batch, n_context)``: the query targets' exact normals (the points after the first
    ``n_context`` of each dataset), or None when the prior declares none (a prior written before priors could)."""
    conditional = getattr(prior, "conditional", None)
    return None if conditional is None else conditional(batch, n_context)
