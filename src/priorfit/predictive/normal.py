r"""Normal predictives :math:`N(\mu_j, v_j)` per query point: what an exact GP with known hyperparameters gives.

CRPS in closed form [GR2007]_: with :math:`z = (y - \mu)/\sigma`,
:math:`\mathrm{CRPS} = \sigma\,(z(2\Phi(z) - 1) + 2\varphi(z) - 1/\sqrt\pi)`.

References:
    .. [GR2007] T. Gneiting, A. E. Raftery. Strictly proper scoring rules, prediction, and estimation. JASA 102,
        2007, eq. (21).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from priorfit.predictive.base import Predictive, location_scale

__all__ = ["NormalPredictive", "abs_normal_mean"]

_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


def abs_normal_mean(mu: Tensor, var: Tensor) -> Tensor:
    r""":math:`E|Z|` for :math:`Z \sim N(\mu, v)`: :math:`2\sigma\varphi(\mu/\sigma) + \mu(2\Phi(\mu/\sigma) - 1)`."""
    sd = var.sqrt()
    z = mu / sd
    return 2.0 * sd * torch.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi) + mu * (2.0 * torch.special.ndtr(z) - 1.0)


class NormalPredictive(Predictive):
    """Independent normals per query point.

    Args:
        mean: `m` means.
        variance: `m` positive variances (of noisy y, for a GP).

    >>> p = NormalPredictive([0.0, 1.0], [1.0, 4.0])
    >>> p.quantile(0.5)
    array([0., 1.])
    """

    def __init__(self, mean: object, variance: object) -> None:
        self.loc, self.var = location_scale("mean", mean, "variance", variance)

    def __len__(self) -> int:
        return self.loc.shape[0]

    def _mean(self) -> Tensor:
        return self.loc

    def _variance(self) -> Tensor:
        return self.var

    def _log_prob(self, y: Tensor) -> Tensor:
        return -0.5 * (_LOG_2PI + self.var.log() + (y - self.loc).square() / self.var)

    def _cdf(self, y: Tensor) -> Tensor:
        # erfc keeps relative precision deep in the lower tail, as the survival function does in the upper one
        return 0.5 * torch.special.erfc(-(y - self.loc) / (self.var.sqrt() * _SQRT2))

    def _sf(self, y: Tensor) -> Tensor:
        return 0.5 * torch.special.erfc((y - self.loc) / (self.var.sqrt() * _SQRT2))

    def _crps(self, y: Tensor) -> Tensor:
        # E|X - y| - E|X - X'| / 2, with X - X' ~ N(0, 2v): E|X - X'| = 2 sqrt(v / pi)
        return abs_normal_mean(self.loc - y, self.var) - (self.var / math.pi).sqrt()

    def _quantile(self, levels: Tensor) -> Tensor:
        return self.loc[:, None] + self.var.sqrt()[:, None] * torch.special.ndtri(levels)

    def _sample(self, n_samples: int, generator: torch.Generator | None) -> Tensor:
        z = torch.randn(n_samples, len(self), generator=generator, dtype=torch.float64)
        return self.loc + self.var.sqrt() * z
