r"""Mixtures of priors: each dataset drawn from one of several priors, chosen with given weights.

.. math:: k \sim \mathrm{Categorical}(w_1, \dots, w_K), \qquad \mathcal D \sim \text{prior}_k

A PFN trained on a mixture learns the posterior predictive that averages the components' predictives, each
weighted by its posterior probability given the context: it infers which kind of data it sees. Every component
is drawn for the whole batch and each dataset keeps its own component's draw; that spends a few extra draws per
batch (sampling is a small share of a training step) and keeps every dataset's latent values in one tree per
component, sliceable like any other.

Priors of labels (``target_kind`` "categorical") mix too: a batch then has one number of classes, drawn as each
component would draw it, and each component draws only its own datasets (a labelled dataset carries its class
probabilities at every point, which is all training needs of it).

Its oracle is the oracle of the component each dataset was drawn from, told that component; the Bayes marginal
over components needs each component's evidence and is not provided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.priors.base import Batch, Prior, Symmetries, sample_arguments
from priorfit.priors.classification import (
    CategoricalTargets,
    LabelProbabilities,
    number_of_classes,
    stated_probabilities,
)
from priorfit.priors.conditional import NormalTargets, query_conditional
from priorfit.priors.params import Params
from priorfit.validation import check_int

__all__ = ["LabelMixtureParams", "MixturePrior", "MixtureParams"]


@dataclass(frozen=True, eq=False)
class MixtureParams(Params):
    """Which component drew each dataset (``component``, `batch` integers) and every component's latent values
    for every dataset (``parts``, one tree per component; only the drawing component's row is that dataset's)."""

    component: Tensor
    parts: tuple[Params, ...]


@dataclass(frozen=True, eq=False)
class LabelMixtureParams(LabelProbabilities):
    """What a mixture of priors of labels drew each dataset with: each point's class probabilities (``probs``,
    `batch x n x C`) and the component that drew the dataset (``component``, `batch` integers)."""

    component: Tensor


@register
@dataclass(frozen=True)
class MixturePrior:
    """Datasets from ``priors[k]`` with probability ``weights[k]`` (module docstring).

    Fields:
        priors: two or more priors with the same ``max_features``, all stated in the same units (all in their
            inputs' units, or all in their context's, e.g. ``InvariantGPPrior`` and ``StudentTNoisePrior``).
        weights: positive weights, one per prior, normalised here.
    """

    priors: tuple
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.priors, tuple) or len(self.priors) < 2:
            raise TypeError(f"priors must be a tuple of at least 2 priors, got {self.priors!r}")
        for i, prior in enumerate(self.priors):
            if not isinstance(prior, Prior):
                raise TypeError(f"priors[{i}] must be a prior (sample, references, ...), got {type(prior).__name__}")
        if not isinstance(self.weights, tuple) or len(self.weights) != len(self.priors):
            raise ValueError(f"weights must be a tuple of {len(self.priors)} numbers (one per prior), got "
                             f"{self.weights!r}")
        for w in self.weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w > 0):
                raise ValueError(f"weights must be positive finite numbers, got {self.weights!r}")
        sizes = {prior.max_features for prior in self.priors}
        if len(sizes) != 1:
            raise ValueError(f"the priors must share max_features, got {sorted(sizes)}")
        kinds = {getattr(prior, "target_kind", "continuous") for prior in self.priors}
        if len(kinds) != 1:
            raise ValueError(f"the priors must all draw the same kind of targets, got {sorted(kinds)}")
        if self.target_kind == "categorical":
            ranges = {(prior.min_classes, prior.max_classes) for prior in self.priors}
            if len(ranges) != 1:
                raise ValueError(f"priors of labels must share min_classes and max_classes, got {sorted(ranges)}")

    @property
    def target_kind(self) -> str:
        """What the components' targets are ("continuous" values or "categorical" labels)."""
        return getattr(self.priors[0], "target_kind", "continuous")

    @property
    def min_classes(self) -> int:
        """Priors of labels: the fewest classes a dataset has (the components')."""
        return self.priors[0].min_classes

    @property
    def max_classes(self) -> int:
        """Priors of labels: the most classes a dataset has (the components')."""
        return self.priors[0].max_classes

    @property
    def max_features(self) -> int:
        return self.priors[0].max_features

    @property
    def probabilities(self) -> Tensor:
        """The weights normalised to sum to 1 (float64)."""
        w = torch.tensor(self.weights, dtype=torch.float64)
        return w / w.sum()

    @property
    def symmetries(self) -> Symmetries:
        """The symmetries every component has."""
        each = [prior.symmetries for prior in self.priors]
        return Symmetries(reflect_inputs=all(s.reflect_inputs for s in each),
                          permute_inputs=all(s.permute_inputs for s in each),
                          negate_targets=all(s.negate_targets for s in each))

    def references(self, settings=None) -> tuple:
        """The oracle: each dataset's own component's oracle (module docstring)."""
        from priorfit.exact.mixture import MixtureOracle
        from priorfit.exact.reference import ReferenceKind

        oracles = []
        for prior in self.priors:
            oracle = next((r for r in prior.references(settings) if r.kind is ReferenceKind.ORACLE), None)
            if oracle is None:
                return ()
            oracles.append(oracle)
        return (MixtureOracle(tuple(oracles)),)

    def conditional(self, batch: Batch, n_context: int) -> NormalTargets | CategoricalTargets | None:
        """Each dataset's own component's conditional (:mod:`priorfit.priors.conditional`), computed by each
        component on its own datasets only, or None when a component that drew some dataset declares none.
        Priors of labels: each query label's class probabilities, as its component drew them."""
        params = batch.params
        if isinstance(params, LabelProbabilities):
            return stated_probabilities(batch, n_context)
        component = params.component.to(batch.y.device)
        mean, std = torch.empty_like(batch.y[:, n_context:]), torch.empty_like(batch.y[:, n_context:])
        for k, (prior, part) in enumerate(zip(self.priors, params.parts)):
            rows = torch.nonzero(component == k).flatten()
            if not len(rows):
                continue
            own = Batch(x=batch.x[rows], y=batch.y[rows], params=part.map(lambda t: t[rows.to(t.device)]))
            out = query_conditional(prior, own, n_context)
            if out is None:
                return None
            mean[rows], std[rows] = out.mean, out.std
        return NormalTargets(mean=mean, std=std)

    def sample(
        self,
        batch_size: int,
        n_points: int,
        generator: torch.Generator,
        n_features: int | None = None,
        device: torch.device | str | None = None,
        n_context: int | None = None,
    ) -> Batch:
        """``batch_size`` datasets, each from a component drawn by weight (module docstring). Priors of labels:
        one number of classes for the batch (as each component draws it), each component drawing only its own
        datasets; the batch's params are then each point's class probabilities and each dataset's component
        (``LabelMixtureParams``)."""
        check_int("batch_size", batch_size, minimum=1)
        component = torch.multinomial(self.probabilities, batch_size, replacement=True, generator=generator)
        if self.target_kind == "categorical":
            return self._sample_labels(component, n_points, generator, n_features, n_context)
        batches = [prior.sample(batch_size, n_points, generator, n_features=n_features, device=device,
                                n_context=n_context) for prior in self.priors]
        pick = component.to(batches[0].y.device)
        x = torch.stack([b.x for b in batches])[pick, torch.arange(batch_size, device=pick.device)]
        y = torch.stack([b.y for b in batches])[pick, torch.arange(batch_size, device=pick.device)]
        return Batch(x=x, y=y, params=MixtureParams(component=component, parts=tuple(b.params for b in batches)))

    def _sample_labels(self, component: Tensor, n_points: int, generator: torch.Generator, n_features: int | None,
                       n_context: int | None) -> Batch:
        """A batch of labelled datasets: the ``component`` each dataset comes from is given (see ``sample``)."""
        n_features, n_context = sample_arguments(len(component), n_points, n_features, n_context,
                                                 self.max_features)
        n_classes = number_of_classes(self, n_context, generator)
        x = y = probs = None
        for k, prior in enumerate(self.priors):
            rows = torch.nonzero(component == k).flatten()
            if not len(rows):
                continue
            own = prior.sample(len(rows), n_points, generator, n_features=n_features, n_context=n_context,
                               n_classes=n_classes)
            if x is None:
                x = own.x.new_zeros((len(component), *own.x.shape[1:]))
                y = own.y.new_zeros((len(component), n_points))
                probs = own.x.new_zeros((len(component), n_points, n_classes))
            x[rows], y[rows] = own.x, own.y
            probs[rows] = query_conditional(prior, own, 0).probs
        return Batch(x=x, y=y, params=LabelMixtureParams(probs=probs, component=component))
