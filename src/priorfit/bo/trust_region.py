"""A trust region for the PFN's context: TuRBO's rule (Eriksson et al., "Scalable global optimization via local
Bayesian optimization", NeurIPS 2019) for where to look and which observations to condition on.

Why a PFN needs one. Its predictive is a histogram over the context's own standardised units, so it resolves
values to about a bar's width (of order 1% of the context's standard deviation). Near an optimum the differences
that matter are far smaller than the spread of all the values seen, so conditioned on everything it cannot tell
the points it should compare apart. Conditioned on the observations near the incumbent only, the context's units
shrink with the region, and so does the resolution. Selecting observations by where they are, not by their
values, keeps the context a dataset of the prior (a GP restricted to a box is a GP in the box's units), so the
PFN's posterior given it is still the posterior it was trained to give.

The region is a box of side ``length`` (in the unit cube) centred on the best point so far. After each
evaluation it grows (doubles, up to ``length_max``) after ``success_tolerance`` improvements in a row and shrinks
(halves) after ``failure_tolerance`` evaluations in a row without one; below ``length_min`` it restarts at
``length_init`` and the next suggestion is a global one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrustRegion"]


@dataclass
class TrustRegion:
    """The trust region's state (module docstring). ``failure_tolerance`` None: ``max(4, dim)``, as TuRBO."""

    dim: int
    length_init: float = 0.8
    length_min: float = 0.5**7
    length_max: float = 1.6
    success_tolerance: int = 3
    failure_tolerance: int | None = None
    min_context: int | None = None  # None: max(2 dim + 2, 8)
    length: float = field(init=False)
    successes: int = field(default=0, init=False)
    failures: int = field(default=0, init=False)
    restarts: int = field(default=0, init=False)
    restarted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.length_min <= self.length_init <= self.length_max:
            raise ValueError(f"need 0 < length_min <= length_init <= length_max, got {self.length_min}, "
                             f"{self.length_init}, {self.length_max}")
        if self.failure_tolerance is None:
            self.failure_tolerance = max(4, self.dim)
        if self.min_context is None:
            self.min_context = max(2 * self.dim + 2, 8)
        self.length = self.length_init

    def update(self, improved: bool) -> None:
        """Count one evaluation: an improvement on the best value (by more than 1e-3 of its size) or not."""
        self.restarted = False
        if improved:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        if self.successes >= self.success_tolerance:
            self.length, self.successes = min(2.0 * self.length, self.length_max), 0
        elif self.failures >= self.failure_tolerance:
            self.length, self.failures = self.length / 2.0, 0
        if self.length < self.length_min:
            self.length, self.successes, self.failures = self.length_init, 0, 0
            self.restarts += 1
            self.restarted = True

    def box(self, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of the region around ``centre`` (unit cube), clipped to the cube."""
        half = self.length / 2.0
        return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)

    def context(self, x: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Indices of the observations ``x`` (`n x d`, unit cube) to condition on: those within 1.5 half-lengths
        of ``centre`` (the box with a margin, so its edges are predicted from both sides), or the
        ``min_context`` nearest (in the max norm) when fewer lie there."""
        distance = np.abs(x - centre).max(1)
        inside = np.flatnonzero(distance <= 0.75 * self.length)
        if len(inside) >= min(self.min_context, len(x)):
            return inside
        return np.argsort(distance, kind="stable")[:self.min_context]
