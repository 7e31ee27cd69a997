"""What the network is shown of a dataset: its context's own units, computed by one piece of code that training
and prediction share.

- Inputs: each feature shifted by the context's minimum and divided by the context's range (features constant
  over the context are only shifted), so the context spans [0, 1] in every feature and queries are mapped with
  the same numbers.
- Targets: shifted by the context's mean and divided by its standard deviation.
- Optionally (``ModelConfig.power_transform``), before the inputs' scaling: each feature standardised by the
  context's mean and standard deviation and passed through a Yeo-Johnson power transform whose exponent is fitted
  to the context's points by maximum Gaussian likelihood (:class:`PowerTransform`), so that a skewed or
  heavy-tailed feature is spread over its range instead of crowded into one end of it.
- Or (``ModelConfig.robust_inputs``): each feature centred at the context's median, divided by its interquartile
  range and passed through arcsinh (:class:`RobustInputTransform`): linear over the bulk of the points and
  logarithmic beyond it, so that a few far points no longer squeeze the rest into a sliver of the range.

A model that sees only these (``ModelConfig.invariant``) gives predictions that move exactly with any positive
affine change of units of the targets and of each feature; a prior stated in these units (its functions drawn
on the context-scaled inputs) is what such a model can be trained on, and exact Bayes for it integrates the
targets' location and scale out (:mod:`priorfit.exact.invariant`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["POWER_GRID", "POWER_LIMIT", "PowerTransform", "ROBUST_LIMIT", "RobustInputTransform",
           "context_input_scaling", "context_standardization", "scale_inputs", "yeo_johnson"]

#: The Yeo-Johnson exponents a feature's is chosen from: -2 ... 4 in steps of 0.1, symmetric about 1 (the identity)
#: so that a reflected feature gets the reflected exponent 2 - lambda (to rounding); refined between grid points by a
#: parabola.
POWER_GRID = 1.0 + 0.1 * torch.arange(-30, 31, dtype=torch.float64)

#: Standardised values are clipped to this many of the context's standard deviations before the transform. A context
#: of at most 257 points has none beyond 16 (|z| <= sqrt(n - 1)), so only queries are clipped, and a query that far
#: out is extrapolation whatever it maps to; unclipped, the grid's largest power would raise it to magnitudes whose
#: gradients overflow the network's float32 (a two-point context and a query a million deviations away).
POWER_LIMIT = 100.0

#: Distances in spreads are clipped here before the robust transform's arcsinh (a float64 overflow, not a choice:
#: arcsinh(1e300) is about 691, so nothing short of an overflow is clipped).
ROBUST_LIMIT = 1e300


def yeo_johnson(x: Tensor, power: Tensor) -> Tensor:
    """The Yeo-Johnson transform of `x` with exponents `power` (broadcast against x): for x >= 0,
    ((1 + x)^lambda - 1) / lambda (log(1 + x) at lambda = 0); for x < 0, -((1 - x)^(2 - lambda) - 1) / (2 - lambda)
    (-log(1 - x) at lambda = 2). Strictly increasing in x for every lambda, and psi(-x, 2 - lambda) =
    -psi(x, lambda)."""
    positive = x >= 0
    lam = torch.where(positive, power, 2.0 - power)
    log1p = torch.log1p(x.abs())
    small = lam.abs() < 1e-8
    safe = torch.where(small, torch.ones_like(lam), lam)
    magnitude = torch.where(small, log1p, torch.expm1(safe * log1p) / safe)
    return torch.where(positive, magnitude, -magnitude)


def _unit_context(x_ctx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`(lo, span, unit)` of contexts' inputs `x_ctx` (`batch x n x d`, n >= 1) in float64: the context scaling
    (:func:`context_input_scaling`) and the context mapped by it to [0, 1], where a transform's statistics are
    computed so that no units overflow."""
    if x_ctx.shape[-2] < 1:
        raise ValueError("x_ctx must hold at least one point (batch x n x d with n >= 1)")
    x = x_ctx.to(torch.float64)
    lo, span = context_input_scaling(x)
    return lo, span, scale_inputs(x, lo, span)


@dataclass(frozen=True)
class PowerTransform:
    """Per-feature input transform fitted to a context: ``yeo_johnson((x - center) / spread, power)``, each
    field `batch x 1 x d`, the standardised values clipped to +-:data:`POWER_LIMIT`. A feature constant over the
    context (or a one-point context) gets spread 1 and power 1, the identity after its shift. The standardisation
    absorbs any positive affine change of a feature's units, and a reflected feature is transformed to the
    reflection of the transform (to rounding), so a model shown the transformed inputs keeps the invariance of
    :func:`context_input_scaling` to units and commutes with reflections as before."""

    center: Tensor
    spread: Tensor
    power: Tensor

    @classmethod
    def fit(cls, x_ctx: Tensor) -> "PowerTransform":
        """The transform of contexts' inputs `x_ctx` (`batch x n x d`): each feature standardised (after mapping
        the context to [0, 1], so that no units overflow), then the exponent of the grid (:data:`POWER_GRID`) of
        greatest Yeo-Johnson log likelihood ``-n/2 log var(psi) + (lambda - 1) sum sign(z) log(1 + |z|)``, refined
        by the vertex of the parabola through it and its two neighbours (at most half a grid step away; none at
        the grid's ends); computed in float64."""
        lo, span, unit = _unit_context(x_ctx)
        mean = unit.mean(dim=-2, keepdim=True)
        std = (unit - mean).square().mean(dim=-2, keepdim=True).sqrt()
        varies = std > 0  # a constant feature is all zeros here
        std = torch.where(varies, std, torch.ones_like(std))
        z = (unit - mean) / std  # batch x n x d
        grid = POWER_GRID.to(z.device)
        psi = yeo_johnson(z.unsqueeze(-1), grid)  # batch x n x d x G
        variance = psi.var(dim=-3, unbiased=False).clamp_min(1e-300)  # batch x d x G
        jacobian = (torch.sign(z) * torch.log1p(z.abs())).sum(dim=-2).unsqueeze(-1)  # batch x d x 1
        loglik = -0.5 * z.shape[-2] * variance.log() + (grid - 1.0) * jacobian
        best = loglik.argmax(dim=-1, keepdim=True)
        inner = best.clamp(1, len(grid) - 2)
        below, at, above = (loglik.gather(-1, inner + k).squeeze(-1) for k in (-1, 0, 1))
        step = 0.1
        curvature = below - 2.0 * at + above
        refine = (curvature < 0) & (best == inner).squeeze(-1)
        offset = torch.where(refine, 0.5 * step * (below - above) / curvature.clamp(max=-1e-300),
                             torch.zeros_like(at)).clamp(-step, step)
        power = (grid[best.squeeze(-1)] + offset).unsqueeze(-2)  # batch x 1 x d
        power = torch.where(varies, power, torch.ones_like(power))
        return cls(center=lo + span * mean, spread=span * std, power=power)

    def __call__(self, x: Tensor) -> Tensor:
        """Inputs `batch x m x d` transformed, in float64 whatever x's precision (training's float32 inputs and
        an estimator's float64 ones go through the same arithmetic)."""
        z = (x.to(torch.float64) - self.center) / self.spread
        return yeo_johnson(z.clamp(-POWER_LIMIT, POWER_LIMIT), self.power)


@dataclass(frozen=True)
class RobustInputTransform:
    """Per-feature input transform fitted to a context: ``arcsinh((x - center) / spread)``, each field
    `batch x 1 x d`: the center is the context's median and the spread its interquartile range (its standard
    deviation where the quartiles coincide, as they do when about three quarters of the points share one value;
    1 for a constant feature, whose points are then only shifted, in its own units). Within about a spread of
    the median it is nearly linear, so the bulk of the points keeps its shape (a linear contrast between features
    stays nearly linear); far out it grows like a logarithm, so an outlier sits a few spreads away instead of
    squeezing the others into one end of the range. The statistics of a feature that varies move with any positive
    affine change of its units, and the median and quartiles of a reflected feature are the reflections of its own (linear
    interpolation is symmetric), so with arcsinh odd the transform keeps the invariance of
    :func:`context_input_scaling` to units and commutes with reflections."""

    center: Tensor
    spread: Tensor

    @classmethod
    def fit(cls, x_ctx: Tensor) -> "RobustInputTransform":
        """The transform of contexts' inputs `x_ctx` (`batch x n x d`), computed in float64 after mapping the context
        to [0, 1] so that no units overflow."""
        lo, span, unit = _unit_context(x_ctx)
        levels = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=unit.device)
        q1, median, q3 = torch.quantile(unit, levels, dim=-2, keepdim=True)
        iqr = q3 - q1
        std = (unit - unit.mean(dim=-2, keepdim=True)).square().mean(dim=-2, keepdim=True).sqrt()
        spread = torch.where(iqr > 0, iqr, torch.where(std > 0, std, torch.ones_like(std)))
        return cls(center=lo + span * median, spread=span * spread)

    def __call__(self, x: Tensor) -> Tensor:
        """Inputs `batch x m x d` transformed, in float64 whatever x's precision; a query so far out that its
        distance in spreads overflows float64 maps to arcsinh(+-ROBUST_LIMIT), about +-691, not to infinity."""
        z = (x.to(torch.float64) - self.center) / self.spread
        return torch.asinh(z.clamp(-ROBUST_LIMIT, ROBUST_LIMIT))


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
