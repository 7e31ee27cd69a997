"""A second view of a dataset: its inputs on the principal axes of its context's correlation matrix.

A network that reads features one at a time finds a class boundary along one feature, or a few, easily; a boundary
along a contrast of strongly correlated features (a crab's species in the ratio of two body measurements that both
grow with its size) it must find in a thin oblique sliver of the inputs. Rotated onto the context's principal axes,
such a contrast becomes a feature of its own. Axis-aligned structure (a label read from one feature, irrelevant
features) is smeared across the new features instead, so neither view is better for every dataset: a model
trained on both (``TrainConfig.principal_axes_rate``) can average its predictions over the two
(``PFNClassifier``'s ensemble), as it averages over the prior's symmetries.

Training and prediction share this code: :meth:`PrincipalAxes.fit` on the context, then the same map for the
context and the queries. The view is invariant to any positive affine change of each feature's units (features are
standardised first), and it is deterministic: the axes are ordered by decreasing variance, each signed so that its
largest loading is positive, and a direction the context does not vary along (fewer points than features, a
constant or duplicated feature) maps to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from priorfit.preprocessing import _unit_context

__all__ = ["NULL_DIRECTION", "SIGN_TIE", "PrincipalAxes", "rotate_some", "trained_on_principal_axes"]

#: Loadings of an axis within this of its largest are tied for its sign (unit-length eigenvectors in float64 are
#: accurate to about 1e-15; a true difference this small would leave the sign to rounding anyway).
SIGN_TIE = 1e-6

#: A direction whose variance is at most this fraction of the largest one's is a null direction of the context (its
#: variance is rounding error): it maps to 0 rather than to noise that an input scaling would blow up.
NULL_DIRECTION = 1e-9


@dataclass(frozen=True)
class PrincipalAxes:
    """The context's standardisation (`loc`, `scale`, each `batch x 1 x d`) and its correlation matrix's eigenvectors
    (`axes`, `batch x d x d`, one per column, by decreasing eigenvalue, null directions zeroed); float64."""

    loc: Tensor
    scale: Tensor
    axes: Tensor

    @classmethod
    def fit(cls, x_ctx: Tensor) -> "PrincipalAxes":
        """The axes of contexts' inputs `x_ctx` (`batch x n x d`, n >= 1), computed in float64 on the context mapped
        to [0, 1] per feature (:func:`~priorfit.preprocessing.context_input_scaling`), so that no units overflow
        and a shift of a feature changes nothing."""
        if x_ctx.dim() != 3 or x_ctx.shape[-2] < 1:
            raise ValueError(f"x_ctx must be batch x n x d with n >= 1, got shape {tuple(x_ctx.shape)}")
        x = x_ctx.to(torch.float64)
        lo, width, unit = _unit_context(x)
        mean = unit.mean(dim=-2, keepdim=True)
        spread = (unit - mean).square().mean(dim=-2, keepdim=True).sqrt()
        varies = (x.amax(dim=-2, keepdim=True) > x.amin(dim=-2, keepdim=True)) & (spread > 0)
        spread = torch.where(varies, spread, torch.ones_like(spread))
        z = torch.where(varies, (unit - mean) / spread, torch.zeros_like(unit))
        correlation = z.transpose(-1, -2) @ z / x.shape[-2]
        eigenvalues, vectors = torch.linalg.eigh(correlation)  # ascending
        eigenvalues, vectors = eigenvalues.flip(-1), vectors.flip(-1)
        # each axis signed by its largest loading; loadings tied up to rounding (always, for two features: both axes
        # are (+-1, +-1) / sqrt(2)) are read in the features' order, so that rounding never flips an axis
        magnitude = vectors.abs()
        tied = magnitude >= magnitude.amax(dim=-2, keepdim=True) - SIGN_TIE
        first = tied.to(torch.int8).argmax(dim=-2, keepdim=True)  # the first of the tied loadings
        sign = torch.gather(vectors, -2, first).sign()
        vectors = vectors * torch.where(sign == 0, torch.ones_like(sign), sign)
        top = eigenvalues[..., :1].clamp_min(torch.finfo(torch.float64).tiny)
        kept = eigenvalues > NULL_DIRECTION * top
        # a constant feature loads on no kept axis (exactly, not to rounding): its queries' values are ignored
        axes = vectors * kept.unsqueeze(-2) * varies.transpose(-1, -2)
        return cls(loc=lo + width * mean, scale=width * spread, axes=axes)

    def __call__(self, x: Tensor) -> Tensor:
        """Inputs `batch x m x d` on the axes, in x's floating dtype (float64 for other inputs)."""
        if x.shape[-1] != self.axes.shape[-1] or x.shape[0] != self.axes.shape[0]:
            raise ValueError(f"x has shape {tuple(x.shape)}; the axes were fitted to {self.axes.shape[0]} contexts "
                             f"of {self.axes.shape[-1]} features")
        z = (x.to(torch.float64) - self.loc) / self.scale
        view = z @ self.axes
        return view.to(x.dtype) if x.is_floating_point() else view

    def inputs(self, x: Tensor) -> Tensor:
        """The same map, by the name an ensemble member's input transform has."""
        return self(x)


def rotate_some(x: Tensor, n_ctx: int, rate: float, generator: torch.Generator) -> Tensor:
    """Training's draw of the view: each dataset of `x` (`batch x n x d`, its first `n_ctx` points the context) on
    its context's principal axes with probability `rate`, as it is, otherwise."""
    if rate <= 0:
        return x
    chosen = torch.rand(x.shape[0], generator=generator) < rate
    if not chosen.any():
        return x
    rotated = x.clone()
    picked = x[chosen]
    rotated[chosen] = PrincipalAxes.fit(picked[:, :n_ctx])(picked)
    return rotated


def trained_on_principal_axes(checkpoint: Any) -> bool:
    """Whether a checkpoint's last stage showed its datasets on their principal axes too (``principal_axes_rate``
    in the training configuration its metadata holds): only such a model is served that view."""
    train_config = checkpoint.metadata.get("train_config") or {}
    rate = train_config.get("principal_axes_rate", 0.0) if isinstance(train_config, dict) else 0.0
    return isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0
