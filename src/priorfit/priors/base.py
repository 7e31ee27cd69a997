"""What every prior produces: a batch of datasets, and the protocol a prior follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from priorfit.priors.params import Params
from priorfit.validation import check_int


@dataclass(frozen=True)
class Batch:
    """A batch of datasets drawn from a prior.

    Attributes:
        x: `batch x n x d` inputs (float64), inside the prior's input domain.
        y: `batch x n` targets (float64).
        params: the latent values each dataset was drawn with, a typed tree (:class:`~priorfit.priors.params.Params`,
            for a GP a ``GPParams``) of tensors with a leading `batch` dimension, or None. Exact references use them
            as the oracle.
    """

    x: Tensor
    y: Tensor
    params: Params | None = None

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def n_points(self) -> int:
        return self.x.shape[1]

    @property
    def n_features(self) -> int:
        return self.x.shape[2]


@dataclass(frozen=True)
class Symmetries:
    """Transforms of a dataset that leave a prior's distribution over datasets unchanged, and with it the exact
    posterior predictive (mapped along). A PFN only approximates that invariance; averaging its predictions over
    such transforms (:mod:`priorfit.model.ensemble`) removes part of its error at no cost in exactness.

    Attributes:
        reflect_inputs: x_j -> 1 - x_j for any subset of the features.
        permute_inputs: any reordering of the features.
        negate_targets: y -> -y.
    """

    reflect_inputs: bool = False
    permute_inputs: bool = False
    negate_targets: bool = False


@runtime_checkable
class Prior(Protocol):
    """A prior over datasets: a frozen, registered dataclass with a seeded ``sample``, the symmetries it is
    invariant to, and its exact references. Training, evaluation and the estimators use a prior only through
    this protocol.

    A prior may also declare ``conditional(batch, n_context)``: the exact normal of each held-out target given the
    latent values its dataset was drawn with and its context (:mod:`priorfit.priors.conditional`), which training
    then scores against instead of the one sampled target. It is optional (not part of the checked protocol): a
    prior without it trains on its sampled targets."""

    max_features: int

    @property
    def symmetries(self) -> Symmetries:
        """Transforms of a dataset that leave the prior unchanged (for ensembles)."""
        ...

    def references(self, settings: Any = None) -> tuple[Any, ...]:
        """The exact references of this prior (``priorfit.exact.reference.Reference``), set up by ``settings``
        (a ``ReferenceSettings``; None: its defaults). A prior with none returns ()."""
        ...

    def sample(
        self,
        batch_size: int,
        n_points: int,
        generator: torch.Generator,
        n_features: int | None = None,
        device: torch.device | str | None = None,
        n_context: int | None = None,
    ) -> Batch:
        """Draw `batch_size` datasets of `n_points` points with `n_features` features (default: max), the
        random numbers from the CPU `generator`, the batch computed on and returned on `device` (default CPU).
        `n_context` says that the first so many points will be the context: a prior stated in the context's
        units (``InvariantGPPrior``) draws its functions on the inputs scaled by them; others ignore it."""
        ...


def sample_arguments(batch_size: int, n_points: int, n_features: int | None, n_context: int | None,
                     max_features: int) -> tuple[int, int]:
    """The checks every prior's ``sample`` makes, naming the argument: ``(n_features, n_context)`` with their
    defaults filled in (all features; every point as context)."""
    check_int("batch_size", batch_size, minimum=1)
    check_int("n_points", n_points, minimum=1)
    n_features = max_features if n_features is None else n_features
    check_int("n_features", n_features, minimum=1, maximum=max_features)
    n_context = n_points if n_context is None else check_int("n_context", n_context, minimum=1, maximum=n_points)
    return n_features, n_context
