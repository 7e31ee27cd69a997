"""The PFN's predictive distribution of y at m query points, in the user's units.

The model predicts a :class:`~priorfit.model.bar_distribution.BarDistribution` over the normalised target
``y_model``; the user's target is ``y_user = loc + scale * y_model`` (``scale > 0``; ``loc`` and ``scale`` are
floats, or one per query point). So, with ``z = (y - loc) / scale``,

.. math::

    \\log p_{user}(y) = \\log p_{model}(z) - \\log(scale), \\quad F_{user}(y) = F_{model}(z), \\quad
    Q_{user}(q) = loc + scale \\, Q_{model}(q),

    E_{user} = loc + scale \\, E_{model}, \\quad Var_{user} = scale^2 \\, Var_{model}, \\quad
    H_{user} = H_{model} + \\log(scale), \\quad EI_{user}(f) = scale \\, EI_{model}((f - loc) / scale).

``mean`` and ``variance`` (and ``stddev``) are those of the predictive winsorised at ``TAIL_ALPHA`` on each side
(:meth:`~priorfit.model.bar_distribution.BarDistribution.winsorized_moments`): a network trained by NLL leaves far
tail bars with mass it cannot resolve, which would set the raw moments.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from priorfit.model.bar_distribution import BarDistribution
from priorfit.predictive.base import Predictive, _out
from priorfit.predictive.base import as_float64 as _to_tensor

__all__ = ["BarPredictive", "PredictiveDistribution", "TAIL_ALPHA"]

#: The mass on each side beyond which ``mean`` and ``variance`` winsorise the predictive
#: (:meth:`~priorfit.model.bar_distribution.BarDistribution.winsorized_moments`): a network trained by NLL does not
#: resolve far tail bars' masses below about this, and the raw moments would sum them out to 10^4 spreads.
TAIL_ALPHA = 1e-3


class BarPredictive(Predictive):
    """Predictive distributions of y at m query points: a bar distribution, ``m x K`` logits and an affine map.

    Args:
        bar_distribution: the model's output distribution (K bars, over the normalised target).
        logits: ``m x K`` logits, one row per query point (copied to float64 on the CPU).
        loc: float or ``m`` array: ``y_user = loc + scale * y_model``.
        scale: positive float or ``m`` array.

    Per-point outputs have shape ``m``; ``quantile`` with Q levels gives ``m x Q``; ``sample`` gives
    ``n_samples x m``.

    Example:
        >>> bd = BarDistribution(torch.linspace(-3.0, 3.0, 101, dtype=torch.float64))
        >>> pred = BarPredictive(bd, torch.zeros(4, 100), loc=10.0, scale=2.0)
        >>> pred.quantile([0.05, 0.95]).shape
        (4, 2)
    """

    def __init__(
        self,
        bar_distribution: BarDistribution,
        logits: Tensor | np.ndarray,
        loc: float | Sequence[float] | np.ndarray | Tensor = 0.0,
        scale: float | Sequence[float] | np.ndarray | Tensor = 1.0,
    ) -> None:
        if not isinstance(bar_distribution, BarDistribution):
            raise TypeError(f"bar_distribution must be a BarDistribution, got {type(bar_distribution).__name__}")
        logits = _to_tensor("logits", logits)
        k = bar_distribution.n_bars
        if logits.ndim != 2 or logits.shape[1] != k:
            raise ValueError(f"logits must have shape m x {k} (n_bars={k}), got shape {tuple(logits.shape)}")
        if torch.isnan(logits).any():
            raise ValueError("logits must not contain NaN")
        m = logits.shape[0]
        loc, scale = _to_tensor("loc", loc), _to_tensor("scale", scale)
        for name, value in (("loc", loc), ("scale", scale)):
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != m):
                raise ValueError(f"{name} must be a float or have length m={m}, got shape {tuple(value.shape)}")
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} must be finite, got NaN or infinite values")
        if not (scale > 0).all():
            raise ValueError(f"scale must be positive, got minimum {scale.min().item()!r}")
        self.bar_distribution = bar_distribution
        self.logits = logits
        self.loc = loc
        self.scale = scale
        self._moments_cache: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return self.logits.shape[0]

    def __repr__(self) -> str:
        return f"BarPredictive(m={len(self)}, n_bars={self.bar_distribution.n_bars})"

    def _to_model(self, y: Tensor) -> Tensor:
        return (y - self.loc) / self.scale

    # -- the interface ------------------------------------------------------------------------------------------

    def _moments(self) -> tuple[Tensor, Tensor]:
        if self._moments_cache is None:
            self._moments_cache = self.bar_distribution.winsorized_moments(self.logits, TAIL_ALPHA)
        return self._moments_cache

    def _mean(self) -> Tensor:
        return (self.loc + self.scale * self._moments()[0]).expand(len(self))

    def _variance(self) -> Tensor:
        return (self.scale**2 * self._moments()[1]).expand(len(self))

    def winsorized_moments(self, alpha: float, grid: int = 2001) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Predictive.winsorized_moments`, in closed form over the bars (``grid`` is not used);
        ``mean`` and ``variance`` are these at ``TAIL_ALPHA``."""
        if not (isinstance(alpha, float) and 0.0 < alpha < 0.5):
            raise ValueError(f"alpha must be a float in (0, 0.5), got {alpha!r}")
        mean, var = self._moments() if alpha == TAIL_ALPHA else self.bar_distribution.winsorized_moments(self.logits,
                                                                                                          alpha)
        return (_out((self.loc + self.scale * mean).expand(len(self))),
                _out((self.scale**2 * var).expand(len(self))))

    def _log_prob(self, y: Tensor) -> Tensor:
        # includes the -log(scale) Jacobian of the map to the user's units
        return self.bar_distribution.log_prob(self.logits, self._to_model(y)) - torch.log(self.scale)

    def _cdf(self, y: Tensor) -> Tensor:
        return self.bar_distribution.cdf(self.logits, self._to_model(y))

    def _crps(self, y: Tensor) -> Tensor:
        return self.scale * self.bar_distribution.crps(self.logits, self._to_model(y))

    def _quantile(self, levels: Tensor) -> Tensor:
        z = self.bar_distribution.quantile(self.logits, levels)  # m x Q
        return self.loc.reshape(-1, 1) + self.scale.reshape(-1, 1) * z

    def _sample(self, n_samples: int, generator: torch.Generator | None) -> Tensor:
        # inverse-CDF sampling with uniforms from the generator
        z = self.bar_distribution.sample(self.logits, (n_samples,), generator=generator)
        return self.loc + self.scale * z

    @property
    def entropy(self) -> np.ndarray:
        """Differential entropy in the user's units, H_model + log(scale), shape ``m`` (nats)."""
        h = self.bar_distribution.entropy(self.logits) + torch.log(self.scale)
        return _out(h.expand(len(self)))

    # -- acquisitions and sampling ----------------------------------------------------------------------------

    def ei(self, best_f, maximize: bool = True) -> np.ndarray:
        """Expected improvement E[max(y - best_f, 0)] (or E[max(best_f - y, 0)]): best_f float or ``m`` -> ``m``.

        In model units this is ``scale * EI_model((best_f - loc) / scale)``.
        """
        f = self._best_f(best_f)
        out = self.scale * self.bar_distribution.ei(self.logits, self._to_model(f), maximize=maximize)
        return _out(out.expand(len(self)))

    def pi(self, best_f, maximize: bool = True) -> np.ndarray:
        """Probability of improvement P(y > best_f) (or P(y < best_f)): best_f float or ``m`` -> ``m``."""
        f = self._best_f(best_f)
        out = self.bar_distribution.pi(self.logits, self._to_model(f), maximize=maximize)
        return _out(out.expand(len(self)))

    def _best_f(self, best_f) -> Tensor:
        f = _to_tensor("best_f", best_f)
        if f.ndim > 1 or (f.ndim == 1 and f.shape[0] != len(self)):
            raise ValueError(f"best_f must be a float or have length m={len(self)}, got shape {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError("best_f must be finite, got NaN or infinite values")
        return f


#: The name under which earlier versions exported the PFN's predictive.
PredictiveDistribution = BarPredictive
