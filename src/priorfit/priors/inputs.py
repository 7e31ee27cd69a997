r"""Input samplers: where a prior's datasets put their points. Every sampler returns `batch x n x d` float64
inputs in the unit cube :math:`[0, 1]^d`, the input domain that priorfit's models are trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.validation import check_int

__all__ = ["InputSampler", "UniformInputs", "ClusteredInputs", "MixedInputs"]


class InputSampler:
    """Base class: ``sample(batch_size, n_points, n_features, generator)`` -> `batch x n x d` in [0, 1]^d."""

    #: The distribution is unchanged by reflecting any feature (x -> 1 - x) and by reordering the features.
    symmetric = False

    def sample(self, batch_size: int, n_points: int, n_features: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _check(batch_size: int, n_points: int, n_features: int, generator: torch.Generator) -> None:
        check_int("batch_size", batch_size, minimum=1)
        check_int("n_points", n_points, minimum=0)
        check_int("n_features", n_features, minimum=1)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


@register
@dataclass(frozen=True)
class UniformInputs(InputSampler):
    r"""Independent uniform inputs: :math:`x_{bij} \sim U[0, 1]`."""

    symmetric = True

    def sample(self, batch_size: int, n_points: int, n_features: int, generator: torch.Generator) -> Tensor:
        """`batch_size x n_points x n_features` float64 uniform draws."""
        self._check(batch_size, n_points, n_features, generator)
        return torch.rand(batch_size, n_points, n_features, generator=generator, dtype=torch.float64)


def _reflect_unit(x: Tensor) -> Tensor:
    """Fold the real line onto [0, 1] by reflection at every integer: ``r(x) = 1 - |(x mod 2) - 1|``."""
    return 1.0 - (torch.remainder(x, 2.0) - 1.0).abs()


@register
@dataclass(frozen=True)
class ClusteredInputs(InputSampler):
    r"""Inputs in a few Gaussian clusters, so datasets have dense regions and gaps.

    Per dataset: a number of clusters :math:`K \sim U\{1, \dots, \text{max\_clusters}\}`; centres
    :math:`c_k \sim U[0,1]^d`; isotropic widths :math:`\sigma_k` log-uniform on [min_width, max_width]. Each point
    picks a cluster uniformly, :math:`z = c_k + \sigma_k \epsilon` with :math:`\epsilon \sim N(0, I_d)`, and is
    folded into the cube by reflection at the faces, :math:`x = 1 - |(z \bmod 2) - 1|` elementwise (a continuous
    density that keeps each cluster's shape near a face instead of piling mass on it, as clipping would).
    """

    symmetric = True  # uniform centres, isotropic clusters, and the fold commutes with x -> 1 - x

    max_clusters: int = 3
    min_width: float = 0.02
    max_width: float = 0.2

    def __post_init__(self) -> None:
        check_int("max_clusters", self.max_clusters, minimum=1)
        for name in ("min_width", "max_width"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.max_width < self.min_width:
            raise ValueError(
                f"max_width must be >= min_width, got min_width={self.min_width}, max_width={self.max_width}"
            )

    def sample(self, batch_size: int, n_points: int, n_features: int, generator: torch.Generator) -> Tensor:
        """`batch_size x n_points x n_features` float64 clustered draws in [0, 1]^d."""
        self._check(batch_size, n_points, n_features, generator)
        b, n, d, kmax = batch_size, n_points, n_features, self.max_clusters
        f64 = torch.float64
        n_clusters = torch.randint(1, kmax + 1, (b,), generator=generator)  # batch
        centres = torch.rand(b, kmax, d, generator=generator, dtype=f64)  # batch x K x d
        u = torch.rand(b, kmax, generator=generator, dtype=f64)
        log_lo, log_hi = math.log(self.min_width), math.log(self.max_width)
        widths = torch.exp(log_lo + (log_hi - log_lo) * u)  # batch x K
        # cluster of each point: uniform over the dataset's first n_clusters clusters
        v = torch.rand(b, n, generator=generator, dtype=f64)
        idx = torch.minimum((v * n_clusters[:, None]).long(), n_clusters[:, None] - 1)  # batch x n
        eps = torch.randn(b, n, d, generator=generator, dtype=f64)
        c = torch.gather(centres, 1, idx[:, :, None].expand(b, n, d))  # batch x n x d
        w = torch.gather(widths, 1, idx)[:, :, None]  # batch x n x 1
        return _reflect_unit(c + w * eps)


@register
@dataclass(frozen=True)
class MixedInputs(InputSampler):
    r"""Some points spread uniformly, the rest in clusters: what Bayesian optimisation's observations look like
    (a space-filling initial design, then evaluations gathering where the optimum may be) and what its candidate
    points look like (spread, and near the best points).

    Per dataset a fraction :math:`f \sim U[\text{min\_uniform}, 1]`; each point is uniform with probability
    :math:`f`, else drawn from ``clustered``.
    """

    symmetric = True  # both parts are

    clustered: ClusteredInputs = ClusteredInputs()
    min_uniform: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.clustered, ClusteredInputs):
            raise TypeError(f"clustered must be ClusteredInputs, got {type(self.clustered).__name__}")
        if not (isinstance(self.min_uniform, (int, float)) and 0 <= self.min_uniform <= 1):
            raise ValueError(f"min_uniform must lie in [0, 1], got {self.min_uniform!r}")

    def sample(self, batch_size: int, n_points: int, n_features: int, generator: torch.Generator) -> Tensor:
        """`batch_size x n_points x n_features` float64 draws in [0, 1]^d."""
        self._check(batch_size, n_points, n_features, generator)
        uniform = torch.rand(batch_size, n_points, n_features, generator=generator, dtype=torch.float64)
        clustered = self.clustered.sample(batch_size, n_points, n_features, generator)
        f = self.min_uniform + (1 - self.min_uniform) * torch.rand(batch_size, 1, generator=generator,
                                                                   dtype=torch.float64)
        pick = torch.rand(batch_size, n_points, generator=generator, dtype=torch.float64) < f
        return torch.where(pick[..., None], uniform, clustered)
