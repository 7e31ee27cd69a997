"""Scores of a normal predictive N(mean, var) at observations y, elementwise: what exact references are scored
with (the oracle GP, ML-II, each NUTS mixture component)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["normal_nll", "normal_pit", "abs_normal_mean", "normal_crps"]


def normal_nll(mean: Tensor, var: Tensor, y: Tensor) -> Tensor:
    """-log N(y; mean, var)."""
    return 0.5 * torch.log(2 * math.pi * var) + 0.5 * (y - mean) ** 2 / var


def normal_pit(mean: Tensor, var: Tensor, y: Tensor) -> Tensor:
    """F(y), the probability integral transform."""
    return torch.special.ndtr((y - mean) / var.sqrt())


def abs_normal_mean(mu: Tensor, var: Tensor) -> Tensor:
    """E|Z| for Z ~ N(mu, var)."""
    sd = var.sqrt()
    z = mu / sd
    return 2.0 * sd * torch.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi) + mu * (2.0 * torch.special.ndtr(z) - 1.0)


def normal_crps(mean: Tensor, var: Tensor, y: Tensor) -> Tensor:
    """CRPS of N(mean, var) at y: E|X - y| - E|X - X'| / 2, i.e. sd (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi))."""
    return abs_normal_mean(mean - y, var) - (var / math.pi).sqrt()
