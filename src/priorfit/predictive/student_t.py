r"""Student-t predictives :math:`t_\nu(\mu_j, \sigma_j)` per query point: what exact inference gives when a scale
is integrated out (the invariant prior's location and scale, a Student-t process's output variance).

Density :math:`\frac{\Gamma((\nu+1)/2)}{\Gamma(\nu/2)\sqrt{\nu\pi}\,\sigma}(1 + z^2/\nu)^{-(\nu+1)/2}`,
:math:`z = (y - \mu)/\sigma`. The mean exists for :math:`\nu > 1` (NaN otherwise), the variance
:math:`\sigma^2\nu/(\nu - 2)` for :math:`\nu > 2` (inf otherwise). The CRPS for :math:`\nu > 1` is [JKL2019]_

.. math:: \sigma\left[z(2F_\nu(z) - 1) + 2 f_\nu(z)\frac{\nu + z^2}{\nu - 1}
    - \frac{2\sqrt\nu\, B(\tfrac12, \nu - \tfrac12)}{(\nu - 1)\, B(\tfrac12, \tfrac\nu2)^2}\right]

and infinite for :math:`\nu \le 1` (at :math:`\nu = 1`, a Cauchy, E|Y| is infinite).

References:
    .. [JKL2019] A. Jordan, F. Krüger, S. Lerch. Evaluating probabilistic forecasts with scoringRules. Journal of
        Statistical Software 90(12), 2019, sec. on the t distribution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special
from torch import Tensor

from priorfit.predictive.base import Predictive, as_float64, location_scale

__all__ = ["StudentTPredictive"]


class StudentTPredictive(Predictive):
    """Independent location-scale Student-t distributions per query point.

    Args:
        loc: `m` locations :math:`\\mu`.
        scale: `m` positive scales :math:`\\sigma` (not standard deviations).
        df: degrees of freedom :math:`\\nu > 0`, a float or `m`.

    >>> p = StudentTPredictive([0.0], [1.0], df=1.0)   # a Cauchy
    >>> p.quantile([0.25, 0.75])
    array([[-1.,  1.]])
    """

    def __init__(self, loc: object, scale: object, df: object) -> None:
        loc, scale = location_scale("loc", loc, "scale", scale)
        df = as_float64("df", df)
        if df.ndim > 1 or (df.ndim == 1 and df.shape != loc.shape):
            raise ValueError(f"df must be a float or have length m={loc.shape[0]}, got shape {tuple(df.shape)}")
        if not (torch.isfinite(df).all() and (df > 0).all()):
            raise ValueError(f"df must be positive and finite, got {df}")
        self.loc, self.scale, self.df = loc, scale, df.expand(loc.shape).clone()

    def __len__(self) -> int:
        return self.loc.shape[0]

    def _z(self, y: Tensor) -> Tensor:
        return (y - self.loc) / self.scale

    def _mean(self) -> Tensor:
        return torch.where(self.df > 1, self.loc, math.nan)

    def _variance(self) -> Tensor:
        return torch.where(self.df > 2, self.scale.square() * self.df / (self.df - 2).clamp_min(1e-300), math.inf)

    def _log_prob(self, y: Tensor) -> Tensor:
        nu = self.df
        z = self._z(y)
        norm = torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(nu * math.pi) - self.scale.log()
        return norm - (nu + 1) / 2 * torch.log1p(z.square() / nu)

    def _cdf(self, y: Tensor) -> Tensor:
        z = self._z(y)
        nu = self.df.expand(z.shape)
        return torch.from_numpy(special.stdtr(nu.numpy(), z.numpy()))

    def _sf(self, y: Tensor) -> Tensor:
        z = self._z(y)
        nu = self.df.expand(z.shape)
        return torch.from_numpy(special.stdtr(nu.numpy(), -z.numpy()))

    def _crps(self, y: Tensor) -> Tensor:
        z = self._z(y)
        nu = self.df.expand(z.shape)
        cdf = torch.from_numpy(special.stdtr(nu.numpy(), z.numpy()))
        pdf = torch.exp(self._log_prob(y) + self.scale.log())  # the standard t density at z
        nu_safe = torch.where(nu > 1, nu, 2.0)
        log_b = lambda a, b: torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)  # noqa: E731
        half = torch.full_like(nu_safe, 0.5)
        const = 2 * nu_safe.sqrt() * torch.exp(log_b(half, nu_safe - 0.5) - 2 * log_b(half, nu_safe / 2)) / (nu_safe - 1)
        value = z * (2 * cdf - 1) + 2 * pdf * (nu_safe + z.square()) / (nu_safe - 1) - const
        return torch.where(nu > 1, self.scale * value, math.inf)

    def _quantile(self, levels: Tensor) -> Tensor:
        nu = self.df[:, None].expand(len(self), levels.shape[0])
        t = torch.from_numpy(special.stdtrit(nu.numpy(), levels[None].expand_as(nu).numpy()))
        return self.loc[:, None] + self.scale[:, None] * t

    def _sample(self, n_samples: int, generator: torch.Generator | None) -> Tensor:
        # inverse-CDF sampling: exact, and every random number comes from the generator
        u = torch.rand(n_samples, len(self), generator=generator, dtype=torch.float64)
        u = u.clamp(np.finfo(np.float64).tiny, 1 - 2**-53)
        t = torch.from_numpy(special.stdtrit(self.df.expand_as(u).numpy(), u.numpy()))
        return self.loc + self.scale * t
