"""One interface for every predictive distribution: the PFN's bars, the normal of an exact GP, the Student-t of
the invariant prior, the normal mixture of a hyperprior marginal.

A :class:`Predictive` holds the marginal predictive distribution of y at m query points. Scoring, plotting and
the estimators use only its methods, so they never ask which kind they hold. Inputs may be numbers, lists, numpy
arrays or tensors; every output is a float64 numpy array, as scikit-learn users expect. Per-point arguments have
shape `... x m` (broadcast over leading dimensions) and give `... x m`; ``quantile`` with Q levels gives
`m x Q`; ``sample`` gives `n_samples x m`.

Subclasses implement the float64 torch methods ``_mean``, ``_variance``, ``_log_prob``, ``_cdf``, ``_crps``,
``_quantile`` and ``_sample`` (and ``_sf`` where 1 - cdf loses the upper tail); this base class converts and
checks the arguments and the outputs. Code inside priorfit that works in torch may call the underscored methods
on float64 tensors directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor

from priorfit.validation import check_int

__all__ = ["Predictive", "as_float64", "location_scale"]

_F64 = torch.float64


def as_float64(name: str, value: object) -> Tensor:
    """A float64 CPU tensor of ``value`` (number, list, numpy array or tensor), or a ValueError naming it."""
    try:
        if isinstance(value, Tensor):
            return value.detach().to(device="cpu", dtype=_F64)
        array = np.asarray(value, dtype=np.float64)
        return torch.as_tensor(array if array.flags.writeable else array.copy())  # e.g. np.broadcast_to's views
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number or an array of numbers, got {type(value).__name__}") from err


def location_scale(loc_name: str, loc: object, scale_name: str, scale: object) -> tuple[Tensor, Tensor]:
    """Per-point location `m` (finite) and spread `m` (positive, finite) as float64 tensors, or a ValueError
    naming the argument that is wrong."""
    loc_t, scale_t = as_float64(loc_name, loc), as_float64(scale_name, scale)
    if loc_t.ndim != 1:
        raise ValueError(f"{loc_name} must have shape (m,), got {tuple(loc_t.shape)}")
    if scale_t.shape != loc_t.shape:
        raise ValueError(f"{scale_name} must have the shape of {loc_name} {tuple(loc_t.shape)}, got "
                         f"{tuple(scale_t.shape)}")
    if not torch.isfinite(loc_t).all():
        raise ValueError(f"{loc_name} contains NaN or infinite values")
    if not (torch.isfinite(scale_t).all() and (scale_t > 0).all()):
        raise ValueError(f"{scale_name} must be positive and finite")
    return loc_t, scale_t


def _out(t: Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=_F64).numpy()


class Predictive(ABC):
    """Marginal predictive distributions of y at m query points (see the module docstring)."""

    @abstractmethod
    def __len__(self) -> int:
        """m, the number of query points."""

    # -- what subclasses write (float64 tensors in, float64 tensors out) ---------------------------------------

    @abstractmethod
    def _mean(self) -> Tensor: ...

    @abstractmethod
    def _variance(self) -> Tensor: ...

    @abstractmethod
    def _log_prob(self, y: Tensor) -> Tensor: ...

    @abstractmethod
    def _cdf(self, y: Tensor) -> Tensor: ...

    def _sf(self, y: Tensor) -> Tensor:
        """P(Y > y); subclasses whose tails need it compute it without the cancellation of 1 - cdf."""
        return 1.0 - self._cdf(y)

    @abstractmethod
    def _crps(self, y: Tensor) -> Tensor: ...

    @abstractmethod
    def _quantile(self, levels: Tensor) -> Tensor:
        """`m x Q` quantiles at Q levels in (0, 1)."""

    @abstractmethod
    def _sample(self, n_samples: int, generator: torch.Generator | None) -> Tensor:
        """`n_samples x m` draws, every random number from ``generator``."""

    # -- the interface ------------------------------------------------------------------------------------------

    @property
    def mean(self) -> np.ndarray:
        """E[y], shape `m` (NaN where it does not exist)."""
        return _out(self._mean())

    @property
    def variance(self) -> np.ndarray:
        """Var[y], shape `m` (inf where it does not exist)."""
        return _out(self._variance())

    @property
    def stddev(self) -> np.ndarray:
        """sqrt(Var[y]), shape `m`."""
        return np.sqrt(self.variance)

    def log_prob(self, y) -> np.ndarray:
        """log p(y): y `... x m` -> `... x m`."""
        return _out(self._log_prob(self._per_point("y", y)))

    def pdf(self, y) -> np.ndarray:
        """p(y) = exp(log_prob(y)): y `... x m` -> `... x m`."""
        return np.exp(self.log_prob(y))

    def cdf(self, y) -> np.ndarray:
        """P(Y <= y): y `... x m` -> `... x m`."""
        return _out(self._cdf(self._per_point("y", y)))

    def sf(self, y) -> np.ndarray:
        """P(Y > y), the survival function, precise in the upper tail: y `... x m` -> `... x m`."""
        return _out(self._sf(self._per_point("y", y)))

    def crps(self, y) -> np.ndarray:
        """Continuous ranked probability score at observed y, E|Y - y| - E|Y - Y'| / 2, in y's units (lower is
        better; inf where E|Y| is infinite): y `... x m` -> `... x m`."""
        return _out(self._crps(self._per_point("y", y)))

    def quantile(self, q) -> np.ndarray:
        """Quantiles: q a float in (0, 1) -> `m`; q a 1-D sequence of Q levels -> `m x Q`."""
        qt = as_float64("q", q)
        if qt.ndim > 1:
            raise ValueError(f"q must be a float or a 1-D sequence of levels, got shape {tuple(qt.shape)}")
        if not ((qt > 0) & (qt < 1)).all():
            raise ValueError(f"q must lie in the open interval (0, 1), got {q!r}")
        out = self._quantile(qt.reshape(-1))
        return _out(out[:, 0] if qt.ndim == 0 else out)

    def winsorized_moments(self, alpha: float, grid: int = 2001) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of y clamped to its ``alpha`` and ``1 - alpha`` quantiles (each shape `m`): moments
        that exist for every predictive and that far tail mass cannot move, so that two predictives (a PFN's,
        whose mean and variance are these at ``TAIL_ALPHA``, and an exact one) compare like with like.

        Generic: E[c(Y)] = lo + integral of P(Y > t) over [lo, hi], and E[c(Y)^2] = lo^2 + integral of
        2t P(Y > t), by the trapezoid rule on ``grid`` points; subclasses with a closed form override it."""
        if not (isinstance(alpha, float) and 0.0 < alpha < 0.5):
            raise ValueError(f"alpha must be a float in (0, 0.5), got {alpha!r}")
        check_int("grid", grid, minimum=3)
        bounds = self._quantile(torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))  # m x 2
        lo, hi = bounds[:, 0], bounds[:, 1]
        t = lo + (hi - lo) * torch.linspace(0.0, 1.0, grid, dtype=torch.float64)[:, None]  # grid x m
        survival = self._sf(t)
        first = lo + torch.trapezoid(survival, t, dim=0)
        second = lo.square() + torch.trapezoid(2.0 * t * survival, t, dim=0)
        return _out(first), _out((second - first.square()).clamp_min(0.0))

    def sample(self, n_samples: int, generator: torch.Generator | None = None) -> np.ndarray:
        """`n_samples x m` independent draws per query point (a CPU ``generator`` makes them repeatable)."""
        n_samples = check_int("n_samples", n_samples, minimum=0)
        return _out(self._sample(n_samples, generator))

    # -- argument handling ----------------------------------------------------------------------------------------

    def _per_point(self, name: str, value: object) -> Tensor:
        """``value`` as a float64 tensor with last dimension m (`... x m`)."""
        t = as_float64(name, value)
        m = len(self)
        if t.ndim == 0 or t.shape[-1] != m:
            raise ValueError(f"{name} must have length m={m} (last dimension), got shape {tuple(t.shape)}")
        if torch.isnan(t).any():
            raise ValueError(f"{name} contains NaN values")
        return t

    def __repr__(self) -> str:
        return f"{type(self).__name__}(m={len(self)})"
