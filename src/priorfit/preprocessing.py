"""What the network is shown of a dataset: its context's own units, computed by one piece of code that training
and prediction share.

- Inputs: each feature shifted by the context's minimum and divided by the context's range (features constant
  over the context are only shifted), so the context spans [0, 1] in every feature and queries are mapped with
  the same numbers.
- Targets: shifted by the context's mean and divided by its standard deviation.

A model that sees only these (``ModelConfig.invariant``) gives predictions that move exactly with any positive
affine change of units of the targets and of each feature; a prior stated in these units (its functions drawn
on the context-scaled inputs) is what such a model can be trained on, and exact Bayes for it integrates the
targets' location and scale out (:mod:`priorfit.exact.invariant`).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["context_input_scaling", "scale_inputs", "context_standardization"]


def context_input_scaling(x_ctx: Tensor) -> tuple[Tensor, Tensor]:
    """`(lo, width)`, each `batch x 1 x d`, of contexts' inputs `x_ctx` (`batch x n x d`): the minimum and the
    range per feature (1 where the range is 0)."""
    lo = x_ctx.amin(dim=-2, keepdim=True)
    width = x_ctx.amax(dim=-2, keepdim=True) - lo
    return lo, torch.where(width > 0, width, torch.ones_like(width))


def scale_inputs(x: Tensor, lo: Tensor, width: Tensor) -> Tensor:
    """Inputs `batch x m x d` in their context's units: ``(x - lo) / width``."""
    return (x - lo) / width


def context_standardization(y_ctx: Tensor, min_scale: float = 0.0) -> tuple[Tensor, Tensor]:
    """`(loc, scale)`, each `batch x 1`, of contexts' targets `y_ctx` (`batch x n`): the mean and the standard
    deviation (divisor n), at least ``min_scale``; a context with no spread (one point, or equal targets) gets
    scale 1 when ``min_scale`` is 0, so that it is only shifted."""
    loc = y_ctx.mean(-1, keepdim=True)
    scale = (y_ctx - loc).square().mean(-1, keepdim=True).sqrt()
    if min_scale > 0:
        return loc, scale.clamp_min(min_scale)
    return loc, torch.where(scale > 0, scale, torch.ones_like(scale))
