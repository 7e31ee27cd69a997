"""Hyperpriors: small frozen dataclasses that sample with a ``torch.Generator`` and state their density once.

``torch.distributions`` cannot draw from a given generator, so each class samples by a reparameterisation or the
inverse CDF of a uniform drawn from the generator. ``log_prob`` is written against the array API
(``array_api_compat``), so the same formula scores torch tensors (``GPPrior.log_prior``) and JAX arrays (the NUTS
potential of :mod:`priorfit.exact.marginal`); its constants (``math.lgamma`` of the fixed shape parameters) are
Python floats. ``support`` says where the density lives, from which NUTS builds its unconstraining bijection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from array_api_compat import array_namespace
from scipy import special
from torch import Tensor

from priorfit.config import register

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Support:
    """The interval ``[low, high]`` (either end may be infinite) on which a hyperprior has its density."""

    low: float = -math.inf
    high: float = math.inf


class Hyperprior:
    """Base class. Subclasses are frozen dataclasses with ``sample``, ``log_prob`` and ``support``."""

    support = Support()

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def log_prob(self, value):
        """Elementwise log density of ``value`` (any array-API array: torch tensor, JAX array)."""
        raise NotImplementedError

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

    @property
    def support(self) -> Support:  # type: ignore[override]
        return Support(float(self.value), float(self.value))

    def log_prob(self, value):
        """0 at ``value``, -inf elsewhere (a point mass has no density: it only says which values are allowed)."""
        xp = array_namespace(value)
        return xp.where(value == self.value, xp.zeros_like(value), xp.full_like(value, -math.inf))

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

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - (math.log(self.scale) + _HALF_LOG_2PI)


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

    support = Support(0.0, math.inf)

    def log_prob(self, value):
        log_value = array_namespace(value).log(value)
        z = (log_value - self.loc) / self.scale
        return -0.5 * z * z - (math.log(self.scale) + _HALF_LOG_2PI) - log_value


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

    @property
    def support(self) -> Support:  # type: ignore[override]
        return Support(float(self.low), float(self.high))

    def log_prob(self, value):
        xp = array_namespace(value)
        inside = (value >= self.low) & (value <= self.high)
        return xp.where(inside, xp.full_like(value, -math.log(self.high - self.low)), xp.full_like(value, -math.inf))


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

    support = Support(0.0, math.inf)

    def log_prob(self, value):
        a, b = self.concentration, self.rate
        log_value = array_namespace(value).log(value)
        return (a * math.log(b) - math.lgamma(a)) + (a - 1.0) * log_value - b * value


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

    support = Support(0.0, math.inf)

    def log_prob(self, value):
        a, b = self.concentration, self.scale
        log_value = array_namespace(value).log(value)
        return (a * math.log(b) - math.lgamma(a)) - (a + 1.0) * log_value - b / value


@register
@dataclass(frozen=True)
class HalfCauchy(Hyperprior):
    r"""Half-Cauchy with ``scale`` :math:`\gamma`: :math:`p(v) = 2 / (\pi\gamma(1 + v^2/\gamma^2))` on
    :math:`v > 0`; sampled by the inverse CDF :math:`\gamma \tan(\pi u / 2)`. The weakly informative prior on a
    scale parameter of Gelman (2006)."""

    scale: float

    def __post_init__(self) -> None:
        _positive("scale", self.scale)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(1e-300, 1 - 1e-16)
        return self.scale * torch.tan(0.5 * math.pi * u)

    support = Support(0.0, math.inf)

    def log_prob(self, value):
        z = value / self.scale
        return math.log(2.0 / (math.pi * self.scale)) - array_namespace(value).log1p(z * z)


@register
@dataclass(frozen=True)
class Shifted(Hyperprior):
    """``shift + X`` for ``X`` drawn from ``base``: a prior bounded away from a value, such as Student-t degrees of
    freedom kept at 1 or more (``Shifted(LogNormal(...), 1.0)``), where the tail below would overflow."""

    base: Hyperprior
    shift: float

    def __post_init__(self) -> None:
        if not isinstance(self.base, Hyperprior):
            raise TypeError(f"base must be a Hyperprior, got {type(self.base).__name__}")
        _finite("shift", self.shift)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        return self.shift + self.base.sample(shape, generator)

    @property
    def support(self) -> Support:  # type: ignore[override]
        return Support(self.base.support.low + self.shift, self.base.support.high + self.shift)

    def log_prob(self, value):
        xp = array_namespace(value)
        inside = value > self.support.low
        # outside the support the base is scored at an interior point (no log of a negative number), then masked
        low, high = self.base.support.low, self.base.support.high
        interior = (low + high) / 2 if math.isfinite(low) and math.isfinite(high) else (
            low + 1.0 if math.isfinite(low) else 0.0)
        safe = xp.where(inside, value - self.shift, xp.full_like(value, interior))
        return xp.where(inside, self.base.log_prob(safe), xp.full_like(value, -math.inf))


@register
@dataclass(frozen=True)
class DimensionScaledLogNormal(Hyperprior):
    r"""``exp(N(loc + dim_power * log d, scale^2))`` for a parameter with one value per input feature (an ARD
    lengthscale), ``d`` the length of its last axis: lengthscales that grow with the dimension, so that a
    function's complexity does not explode as features are added. The default is BoTorch's lengthscale prior
    since 0.12 (:math:`\mathcal{LN}(\sqrt 2 + \tfrac12 \log d, 3)`; Hvarfner, Hellsten & Nardi, "Vanilla Bayesian
    optimization performs great in high dimensions", ICML 2024), for inputs in the unit cube.

    Use it only where the last axis is the features (its density reads ``d`` from the value's shape)."""

    loc: float = math.sqrt(2.0)
    scale: float = math.sqrt(3.0)
    dim_power: float = 0.5

    def __post_init__(self) -> None:
        _finite("loc", self.loc)
        _positive("scale", self.scale)
        _finite("dim_power", self.dim_power)

    def _loc(self, d: int) -> float:
        return self.loc + self.dim_power * math.log(d)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        if not shape:
            raise ValueError("DimensionScaledLogNormal samples per-feature values: shape needs a feature axis")
        z = torch.randn(shape, generator=generator, dtype=torch.float64)
        return torch.exp(self._loc(shape[-1]) + self.scale * z)

    support = Support(0.0, math.inf)

    def log_prob(self, value):
        log_value = array_namespace(value).log(value)
        d = value.shape[-1] if value.ndim else 1
        z = (log_value - self._loc(d)) / self.scale
        return -0.5 * z * z - (math.log(self.scale) + _HALF_LOG_2PI) - log_value
