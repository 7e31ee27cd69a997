"""Hyperpriors: small frozen dataclasses that sample with a ``torch.Generator`` and expose a
``torch.distributions`` object for densities.

``torch.distributions`` cannot draw from a given generator, so each class samples by a reparameterisation or the
inverse CDF of a uniform drawn from the generator; ``distribution()`` gives the matching torch distribution for
``log_prob`` (used by MAP and NUTS references).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import special
from torch import Tensor, distributions

from priorfit.config import register


class Hyperprior:
    """Base class. Subclasses are frozen dataclasses with ``sample`` and ``distribution``."""

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def distribution(self) -> distributions.Distribution:
        raise NotImplementedError

    def log_prob(self, value: Tensor) -> Tensor:
        return self.distribution().log_prob(value)

    @property
    def symmetric_about_zero(self) -> bool:
        """Whether the distribution of -X is that of X (so a GP mean drawn from it keeps y -> -y a symmetry)."""
        return False


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _finite(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@register
@dataclass(frozen=True)
class Fixed(Hyperprior):
    """A point mass: the hyperparameter is known. ``log_prob`` is 0 at ``value``."""

    value: float

    def __post_init__(self) -> None:
        _finite("value", self.value)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return torch.full(shape, float(self.value), dtype=torch.float64)

    def distribution(self) -> distributions.Distribution:
        raise NotImplementedError("a Fixed hyperparameter has no density")

    def log_prob(self, value: Tensor) -> Tensor:
        return torch.where(value == self.value, 0.0, -math.inf).to(value.dtype)

    @property
    def symmetric_about_zero(self) -> bool:
        return self.value == 0


@register
@dataclass(frozen=True)
class Normal(Hyperprior):
    loc: float
    scale: float

    def __post_init__(self) -> None:
        _finite("loc", self.loc)
        _positive("scale", self.scale)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return self.loc + self.scale * torch.randn(shape, generator=generator, dtype=torch.float64)

    @property
    def symmetric_about_zero(self) -> bool:
        return self.loc == 0

    def distribution(self) -> distributions.Distribution:
        return distributions.Normal(torch.tensor(float(self.loc), dtype=torch.float64), float(self.scale))


@register
@dataclass(frozen=True)
class LogNormal(Hyperprior):
    """``exp(N(loc, scale^2))``."""

    loc: float
    scale: float

    def __post_init__(self) -> None:
        _finite("loc", self.loc)
        _positive("scale", self.scale)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return torch.exp(self.loc + self.scale * torch.randn(shape, generator=generator, dtype=torch.float64))

    def distribution(self) -> distributions.Distribution:
        return distributions.LogNormal(torch.tensor(float(self.loc), dtype=torch.float64), float(self.scale))


@register
@dataclass(frozen=True)
class Uniform(Hyperprior):
    low: float
    high: float

    def __post_init__(self) -> None:
        _finite("low", self.low)
        _finite("high", self.high)
        if not self.high > self.low:
            raise ValueError(f"high must exceed low, got low={self.low}, high={self.high}")

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        return self.low + (self.high - self.low) * u

    @property
    def symmetric_about_zero(self) -> bool:
        return self.low == -self.high

    def distribution(self) -> distributions.Distribution:
        return distributions.Uniform(
            torch.tensor(float(self.low), dtype=torch.float64), torch.tensor(float(self.high), dtype=torch.float64)
        )


@register
@dataclass(frozen=True)
class Gamma(Hyperprior):
    """Gamma with shape ``concentration`` and ``rate``; sampled by the exact inverse CDF."""

    concentration: float
    rate: float

    def __post_init__(self) -> None:
        _positive("concentration", self.concentration)
        _positive("rate", self.rate)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(1e-300, 1 - 1e-16)
        return torch.from_numpy(special.gammaincinv(self.concentration, u.numpy())) / self.rate

    def distribution(self) -> distributions.Distribution:
        return distributions.Gamma(
            torch.tensor(float(self.concentration), dtype=torch.float64), float(self.rate)
        )


@register
@dataclass(frozen=True)
class InverseGamma(Hyperprior):
    """If ``g ~ Gamma(concentration, rate)`` then ``1/g`` is InverseGamma(concentration, scale=rate)."""

    concentration: float
    scale: float

    def __post_init__(self) -> None:
        _positive("concentration", self.concentration)
        _positive("scale", self.scale)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return 1.0 / Gamma(self.concentration, self.scale).sample(shape, generator)

    def distribution(self) -> distributions.Distribution:
        return distributions.InverseGamma(
            torch.tensor(float(self.concentration), dtype=torch.float64), float(self.scale)
        )
