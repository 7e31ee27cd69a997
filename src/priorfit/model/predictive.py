"""The user-facing predictive distribution of y at m query points, in the user's units.

The model predicts a :class:`~priorfit.model.bar_distribution.BarDistribution` over the normalised target
``y_model``; the user's target is ``y_user = loc + scale * y_model`` (``scale > 0``; ``loc`` and ``scale`` are
floats, or one per query point). So, with ``z = (y - loc) / scale``,

.. math::

    \\log p_{user}(y) = \\log p_{model}(z) - \\log(scale), \\quad F_{user}(y) = F_{model}(z), \\quad
    Q_{user}(q) = loc + scale \\, Q_{model}(q),

    E_{user} = loc + scale \\, E_{model}, \\quad Var_{user} = scale^2 \\, Var_{model}, \\quad
    H_{user} = H_{model} + \\log(scale), \\quad EI_{user}(f) = scale \\, EI_{model}((f - loc) / scale).

Inputs may be numpy arrays, lists or tensors; every output is a float64 numpy array, as scikit-learn users expect.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from priorfit.model.bar_distribution import BarDistribution

__all__ = ["PredictiveDistribution"]

_F64 = torch.float64


def _to_tensor(name: str, value) -> Tensor:
    """A float64 CPU tensor of ``value`` (number, list, numpy array or tensor), or a ValueError naming it."""
    try:
        if isinstance(value, Tensor):
            return value.detach().to(device="cpu", dtype=_F64)
        array = np.asarray(value, dtype=np.float64)
        return torch.as_tensor(array if array.flags.writeable else array.copy())  # e.g. np.broadcast_to's views
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number or an array of numbers, got {type(value).__name__}") from err


class PredictiveDistribution:
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
        >>> pred = PredictiveDistribution(bd, torch.zeros(4, 100), loc=10.0, scale=2.0)
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

    def __len__(self) -> int:
        return self.logits.shape[0]

    def __repr__(self) -> str:
        return f"PredictiveDistribution(m={len(self)}, n_bars={self.bar_distribution.n_bars})"

    # -- argument handling --------------------------------------------------------------------------------------

    def _per_point(self, name: str, value, allow_scalar: bool) -> Tensor:
        """``value`` as a float64 tensor with last dimension m (``... x m``), or a scalar if allowed."""
        t = _to_tensor(name, value)
        m = len(self)
        if t.ndim == 0 and allow_scalar:
            return t
        if t.ndim == 0 or t.shape[-1] != m:
            expected = "a float or have" if allow_scalar else "have"
            raise ValueError(f"{name} must {expected} length m={m} (last dimension), got shape {tuple(t.shape)}")
        return t

    def _to_model(self, y: Tensor) -> Tensor:
        return (y - self.loc) / self.scale

    @staticmethod
    def _out(t: Tensor) -> np.ndarray:
        return t.detach().to(device="cpu", dtype=_F64).numpy()

    # -- moments ------------------------------------------------------------------------------------------------

    @property
    def mean(self) -> np.ndarray:
        """E[y], shape ``m``."""
        return self._out(self.loc + self.scale * self.bar_distribution.mean(self.logits))

    @property
    def variance(self) -> np.ndarray:
        """Var[y] = scale^2 Var[y_model], shape ``m``."""
        return self._out(self.scale**2 * self.bar_distribution.variance(self.logits))

    @property
    def stddev(self) -> np.ndarray:
        """sqrt(Var[y]), shape ``m``."""
        return np.sqrt(self.variance)

    @property
    def entropy(self) -> np.ndarray:
        """Differential entropy in the user's units, H_model + log(scale), shape ``m`` (nats)."""
        h = self.bar_distribution.entropy(self.logits) + torch.log(self.scale)
        return self._out(h.expand(len(self)))

    # -- densities ----------------------------------------------------------------------------------------------

    def log_prob(self, y) -> np.ndarray:
        """log p(y) in the user's units (includes the -log(scale) Jacobian): y ``... x m`` -> ``... x m``."""
        z = self._to_model(self._per_point("y", y, allow_scalar=False))
        return self._out(self.bar_distribution.log_prob(self.logits, z) - torch.log(self.scale))

    def pdf(self, y) -> np.ndarray:
        """p(y) = exp(log_prob(y)): y ``... x m`` -> ``... x m``."""
        return np.exp(self.log_prob(y))

    def cdf(self, y) -> np.ndarray:
        """P(Y <= y): y ``... x m`` -> ``... x m``."""
        z = self._to_model(self._per_point("y", y, allow_scalar=False))
        return self._out(self.bar_distribution.cdf(self.logits, z))

    def crps(self, y) -> np.ndarray:
        """Continuous ranked probability score at observed y, in y's units (scale x the model-space CRPS; lower is
        better): y ``... x m`` -> ``... x m``."""
        z = self._to_model(self._per_point("y", y, allow_scalar=False))
        return self._out(self.scale * self.bar_distribution.crps(self.logits, z))

    def quantile(self, q) -> np.ndarray:
        """Quantiles: q a float in (0, 1) -> ``m``; q a 1-D sequence of Q levels -> ``m x Q``."""
        qt = _to_tensor("q", q)
        if qt.ndim > 1:
            raise ValueError(f"q must be a float or a 1-D sequence of levels, got shape {tuple(qt.shape)}")
        if not ((qt > 0) & (qt < 1)).all():
            raise ValueError(f"q must lie in the open interval (0, 1), got {q!r}")
        bd = self.bar_distribution
        if qt.ndim == 0:
            return self._out(self.loc + self.scale * bd.icdf(self.logits, qt))
        z = bd.quantile(self.logits, qt)  # m x Q
        return self._out(self.loc.reshape(-1, 1) + self.scale.reshape(-1, 1) * z)

    # -- acquisitions and sampling ----------------------------------------------------------------------------

    def ei(self, best_f, maximize: bool = True) -> np.ndarray:
        """Expected improvement E[max(y - best_f, 0)] (or E[max(best_f - y, 0)]): best_f float or ``m`` -> ``m``.

        In model units this is ``scale * EI_model((best_f - loc) / scale)``.
        """
        f = self._best_f(best_f)
        out = self.scale * self.bar_distribution.ei(self.logits, self._to_model(f), maximize=maximize)
        return self._out(out.expand(len(self)))

    def pi(self, best_f, maximize: bool = True) -> np.ndarray:
        """Probability of improvement P(y > best_f) (or P(y < best_f)): best_f float or ``m`` -> ``m``."""
        f = self._best_f(best_f)
        out = self.bar_distribution.pi(self.logits, self._to_model(f), maximize=maximize)
        return self._out(out.expand(len(self)))

    def _best_f(self, best_f) -> Tensor:
        f = self._per_point("best_f", best_f, allow_scalar=True)
        if f.ndim > 1:
            raise ValueError(f"best_f must be a float or have length m={len(self)}, got shape {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError("best_f must be finite, got NaN or infinite values")
        return f

    def sample(self, n_samples: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``n_samples x m`` draws (inverse-CDF sampling with uniforms from ``generator``, a CPU generator)."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise ValueError(f"n_samples must be a non-negative integer, got {n_samples!r}")
        z = self.bar_distribution.sample(self.logits, (int(n_samples),), generator=generator)
        return self._out(self.loc + self.scale * z)
