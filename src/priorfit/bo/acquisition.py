"""Acquisition functions on the PFN's predictive: log-EI, EI, PI and an optimistic quantile, for minimisation.

Each scores logits (``... x K``) whose bars describe ``(y - loc) / scale``, against the best value seen so far
``best`` (all in the optimiser's units, where lower is better), and returns ``...`` scores where higher is better.
They are torch functions, differentiable in the logits, so acquisition optimisation can follow gradients through
the PFN to the query points.

- ``logei``: log E[max(best - y, 0)], finite however small the improvement (EI underflows to 0 far from the
  incumbent, and a flat zero gives a gradient-based optimiser nothing to follow; Ament et al., "Unexpected
  improvements to expected improvement", NeurIPS 2023, made it BoTorch's default);
- ``ei``: E[max(best - y, 0)];
- ``pi``: P(y < best);
- ``quantile``: minus the predictive's ``level`` quantile (an optimistic lower bound, the bar distribution's
  analogue of a lower confidence bound; level 0.1 by default; the optimiser's default acquisition);
- ``thompson``: Thompson sampling, the minimiser of one joint posterior sample over a candidate set (drawn by
  the optimiser with :meth:`~priorfit.bo.surrogate.PFNSurrogate.sample_joint`; it has no score here).

Under fantasies (pending points, batches), a score is averaged over the fantasised outcomes: EI, PI and the
quantile as plain means, log-EI as the log of the mean EI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from priorfit.model.bar_distribution import BarDistribution

__all__ = ["Acquisition", "ACQUISITIONS"]

ACQUISITIONS = ("logei", "ei", "pi", "quantile", "thompson")


@dataclass(frozen=True)
class Acquisition:
    """An acquisition by name (one of ``ACQUISITIONS``); ``level`` is the quantile acquisition's level."""

    name: str = "quantile"
    level: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {self.name!r}")
        if not (isinstance(self.level, (int, float)) and 0 < self.level < 1):
            raise ValueError(f"level must lie in (0, 1), got {self.level!r}")

    def score(self, bars: BarDistribution, logits: Tensor, loc, scale, best: float) -> Tensor:
        """Scores (higher is better) of logits ``... x K`` with ``y = loc + scale * bar value`` (loc and scale
        floats or tensors broadcastable to ``...``), for improving on ``best``. float64."""
        logits = logits.to(torch.float64)
        loc = torch.as_tensor(loc, dtype=torch.float64)
        scale = torch.as_tensor(scale, dtype=torch.float64)
        z_best = (best - loc) / scale
        if self.name == "logei":
            return scale.log() + bars.log_ei(logits, z_best, maximize=False)
        if self.name == "ei":
            return scale * bars.ei(logits, z_best, maximize=False)
        if self.name == "pi":
            return bars.pi(logits, z_best, maximize=False)
        if self.name == "thompson":
            raise ValueError("Thompson sampling draws joint samples over candidates; it has no pointwise score")
        return -(loc + scale * bars.icdf(logits, torch.full(logits.shape[:-1], self.level, dtype=torch.float64)))

    def average(self, scores: Tensor, dim: int = 0) -> Tensor:
        """The score of a point under fantasies: ``scores`` over fantasised outcomes along ``dim``, combined."""
        if self.name == "logei":
            return torch.logsumexp(scores, dim=dim) - math.log(scores.shape[dim])
        return scores.mean(dim=dim)
