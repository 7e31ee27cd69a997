"""A predictive distribution over classes: what a classifier PFN and the exact GP-classification posterior give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ClassProbabilities"]


@dataclass(frozen=True, eq=False)
class ClassProbabilities:
    """`m x C` probabilities (float64, rows summing to 1) of the classes ``0 ... C - 1`` at m query points, and
    whatever diagnostics the method that computed them reports (an MCMC's R-hat and ESS)."""

    probs: Tensor
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.probs.dim() != 2:
            raise ValueError(f"probs must be m x C, got shape {tuple(self.probs.shape)}")

    def log_prob(self, labels: object) -> np.ndarray:
        """Log-probability of each query's label (`m` class indices)."""
        index = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if index.shape != self.probs.shape[:1]:
            raise ValueError(f"labels must have shape ({self.probs.shape[0]},), got {tuple(index.shape)}")
        return self.probs.gather(1, index[:, None])[:, 0].log().numpy()
