"""The search space: named real and integer parameters, each optionally on a log scale, mapped to the unit cube.

The optimiser works in the unit cube [0, 1]^d: a parameter on a log scale is uniform in log there, an integer
one is rounded to the nearest integer when mapped back. Every suggestion goes through :meth:`Space.to_unit`
and :meth:`Space.from_unit`, so what the surrogate sees and what the objective receives always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Real", "Integer", "Space"]


def _check_bounds(name: str, low: float, high: float, log: bool) -> None:
    for label, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"parameter {name!r}: {label} must be a finite number, got {value!r}")
    if not high > low:
        raise ValueError(f"parameter {name!r}: high must exceed low, got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise ValueError(f"parameter {name!r}: a log-scaled parameter needs low > 0, got low={low!r}")


@dataclass(frozen=True)
class Real:
    """A continuous parameter on ``[low, high]``; ``log=True`` searches it uniformly in log."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds(self.name, self.low, self.high, self.log)

    def _ends(self) -> tuple[float, float]:
        return (math.log(self.low), math.log(self.high)) if self.log else (float(self.low), float(self.high))

    def to_unit(self, value: np.ndarray) -> np.ndarray:
        lo, hi = self._ends()
        v = np.log(value) if self.log else value
        return (v - lo) / (hi - lo)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._ends()
        v = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        return np.clip(np.exp(v) if self.log else v, self.low, self.high)


@dataclass(frozen=True)
class Integer(Real):
    """An integer parameter on ``[low, high]`` (both included). In the unit cube each value owns an interval of
    equal width, ``[k - 1/2, k + 1/2]`` mapped linearly (or in log with ``log=True``, for a count such as a number
    of trees), so a uniform draw gives every value, the ends included, the same chance."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.low) != self.low or int(self.high) != self.high:
            raise ValueError(f"parameter {self.name!r}: an Integer's bounds must be integers, "
                             f"got low={self.low!r}, high={self.high!r}")

    def _ends(self) -> tuple[float, float]:
        # each integer owns a cell of width 1 (in log for a log-scaled one), so all values are equally likely
        # under a uniform draw in the cube, the two ends included
        lo, hi = self.low - 0.5, self.high + 0.5
        return (math.log(lo), math.log(hi)) if self.log else (lo, hi)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._ends()
        v = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        return np.clip(np.round(np.exp(v) if self.log else v), self.low, self.high)


@dataclass(frozen=True)
class Space:
    """An ordered tuple of parameters; points are arrays of shape ``(d,)`` or ``(m, d)`` in the user's units."""

    parameters: tuple[Real, ...]

    def __post_init__(self) -> None:
        if not self.parameters:
            raise ValueError("a Space needs at least one parameter")
        for p in self.parameters:
            if not isinstance(p, Real):
                raise TypeError(f"parameters must be Real or Integer, got {type(p).__name__}: {p!r}")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}")

    @classmethod
    def from_bounds(cls, bounds: Sequence[Sequence[float]]) -> "Space":
        """Real parameters ``x0, x1, ...`` from ``[(low, high), ...]``."""
        try:
            pairs = [tuple(b) for b in bounds]
        except TypeError:
            raise ValueError(f"bounds must be a sequence of (low, high) pairs, got {bounds!r}") from None
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"bounds must be a non-empty sequence of (low, high) pairs, got {bounds!r}")
        return cls(tuple(Real(f"x{i}", *p) for i, p in enumerate(pairs)))

    @property
    def dim(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def is_discrete(self) -> bool:
        return all(isinstance(p, Integer) for p in self.parameters)

    def size(self) -> float:
        """The number of distinct points (``inf`` unless every parameter is an integer)."""
        if not self.is_discrete:
            return math.inf
        return math.prod(int(p.high - p.low + 1) for p in self.parameters)

    def check(self, x) -> np.ndarray:
        """``x`` as a float array of shape ``(m, d)``, checked to lie in the space."""
        a = np.asarray(x, dtype=np.float64)
        a = a[None] if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} coordinates per point, got shape {np.shape(x)}")
        if not np.isfinite(a).all():
            raise ValueError("x must be finite")
        for j, p in enumerate(self.parameters):
            if (a[:, j] < p.low).any() or (a[:, j] > p.high).any():
                raise ValueError(f"x[{p.name!r}] must lie in [{p.low}, {p.high}], got {a[:, j].tolist()}")
            if isinstance(p, Integer) and (a[:, j] != np.round(a[:, j])).any():
                raise ValueError(f"x[{p.name!r}] must be an integer, got {a[:, j].tolist()}")
        return a

    def to_unit(self, x) -> np.ndarray:
        """Points in the user's units -> the unit cube, `(m, d)`."""
        a = self.check(x)
        return np.stack([p.to_unit(a[:, j]) for j, p in enumerate(self.parameters)], axis=1)

    def from_unit(self, u) -> np.ndarray:
        """Unit-cube points -> the user's units (clipped to the bounds, integers rounded), `(m, d)`."""
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        return np.stack([p.from_unit(u[:, j]) for j, p in enumerate(self.parameters)], axis=1)

    def round_unit(self, u) -> np.ndarray:
        """Unit-cube points moved to the nearest point the space holds (integers rounded), still in the cube."""
        return self.to_unit(self.from_unit(u))
