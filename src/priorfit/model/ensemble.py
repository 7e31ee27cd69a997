"""Averaging a PFN's predictions over the symmetries of its prior.

When a prior's distribution over datasets is unchanged by a transform of the data (reflecting input features,
reordering them, negating the targets: :class:`~priorfit.priors.base.Symmetries`), the exact posterior predictive
of the transformed data is the original one mapped along. A trained PFN is only approximately equivariant, so the
predictive densities of a few transformed copies of the data, mapped back and averaged, keep the exact answer's
invariance and average out part of the PFN's own error: by Jensen's inequality the mixture's NLL is never worse
than its members' mean NLL. Each member costs one context encoding and one forward pass of the queries.

A member that negates the targets predicts the distribution of -y, a bar distribution on the reversed, negated
borders; it is moved onto the model's borders with exact bar masses
(:meth:`~priorfit.model.bar_distribution.BarDistribution.transfer_matrix`), which flattens its shape within each
bar (measured on the shipped model: 0.002 nats or less per such member). Input transforms cost nothing of the
kind: their members share the model's borders.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.precision import inference_precision
from priorfit.model.transformer import ContextCache, PFNTransformer
from priorfit.priors.base import Symmetries
from priorfit.validation import check_int

__all__ = ["DatasetTransform", "SymmetryEnsemble", "EnsembleContext", "symmetry_ensemble", "encode", "predict"]


@dataclass(frozen=True)
class DatasetTransform:
    """Reorder the input features (`permutation`), reflect some of them (``x -> 1 - x`` where `reflect`), and
    negate the targets (`negate`)."""

    permutation: tuple[int, ...]
    reflect: tuple[bool, ...]
    negate: bool = False

    @property
    def is_identity(self) -> bool:
        return self.permutation == tuple(range(len(self.permutation))) and not any(self.reflect) and not self.negate

    def inputs(self, x: Tensor) -> Tensor:
        """Transformed inputs `... x d`."""
        if x.shape[-1] != len(self.permutation):
            raise ValueError(f"x has {x.shape[-1]} features, the transform {len(self.permutation)}")
        x = x[..., list(self.permutation)]
        if any(self.reflect):
            x = torch.where(torch.tensor(self.reflect, device=x.device), 1 - x, x)
        return x

    def targets(self, y: Tensor) -> Tensor:
        return -y if self.negate else y


@dataclass(frozen=True)
class EnsembleContext:
    """A context encoded once per member; the logits describe ``(y - target_loc) / target_scale``."""

    caches: tuple[ContextCache, ...]

    @property
    def target_loc(self) -> Tensor:
        return self.caches[0].target_loc

    @property
    def target_scale(self) -> Tensor:
        return self.caches[0].target_scale


@dataclass(frozen=True, eq=False)
class SymmetryEnsemble:
    """The transforms a PFN's predictions are averaged over (the identity first) and the model's bars.

    Build one with :meth:`create`; then ``encode`` a context and ask ``logits`` for queries.
    """

    transforms: tuple[DatasetTransform, ...]
    bar_distribution: BarDistribution

    def __post_init__(self) -> None:
        if not self.transforms or not self.transforms[0].is_identity:
            raise ValueError("an ensemble's first transform must be the identity")
        # negated members' bar masses move onto the model's borders with this matrix (built once)
        reflection = self.bar_distribution.reflection() if any(t.negate for t in self.transforms) else None
        object.__setattr__(self, "_reflection", reflection)

    @classmethod
    def create(cls, symmetries: Symmetries, bar_distribution: BarDistribution, n_features: int, size: int,
               seed: int = 0) -> "SymmetryEnsemble":
        """At most `size` distinct transforms of the group `symmetries` generate for `n_features` features (all of
        them when the group is smaller: 4 for one feature and all three symmetries): the identity, then the others
        in an order fixed by `seed`."""
        check_int("ensemble_size", size, minimum=1)
        d = n_features
        perms = list(itertools.permutations(range(d))) if symmetries.permute_inputs else [tuple(range(d))]
        flips = list(itertools.product((False, True), repeat=d)) if symmetries.reflect_inputs else [(False,) * d]
        signs = (False, True) if symmetries.negate_targets else (False,)
        group = [DatasetTransform(p, r, s) for s in signs for r in flips for p in perms]
        order = torch.randperm(len(group) - 1, generator=torch.Generator().manual_seed(seed)).tolist()
        return cls((group[0], *(group[1 + i] for i in order[:size - 1])), bar_distribution)

    def __len__(self) -> int:
        return len(self.transforms)

    def encode(self, model: PFNTransformer, x_ctx: Tensor, y_ctx: Tensor,
               precision: str = "float32") -> EnsembleContext:
        """Encode the context once per member: x_ctx `batch x n x d`, y_ctx `batch x n`."""
        return EnsembleContext(tuple(_encode(model, t.inputs(x_ctx), t.targets(y_ctx), precision)
                                     for t in self.transforms))

    def logits(self, model: PFNTransformer, context: EnsembleContext, x_qry: Tensor,
               precision: str = "float32") -> Tensor:
        """Logits `batch x m x K` (float64; log bar masses) of the members' average predictive distribution, over
        the bars of ``(y - context.target_loc) / context.target_scale``. Only the members' forward passes run at
        `precision`; the mixing is float64."""
        if len(context.caches) != len(self.transforms):
            raise ValueError(f"the context was encoded for {len(context.caches)} members, the ensemble has "
                             f"{len(self.transforms)}")
        total = None
        for t, cache in zip(self.transforms, context.caches):
            probs = torch.softmax(_logits(model, cache, t.inputs(x_qry), precision).double(), dim=-1)
            if t.negate:  # (standardising or not) it predicts minus the identity member's standardised target
                probs = self.bar_distribution.reflected_probs(probs, self._reflection)
            total = probs if total is None else total.add_(probs)
        return (total / len(self.transforms)).log()


def symmetry_ensemble(prior: object, bar_distribution: BarDistribution, n_features: int,
                      size: int) -> SymmetryEnsemble | None:
    """The ensemble of up to `size` members over the symmetries `prior` declares (none if it declares none), for
    datasets with `n_features` features; None for `size` 1, the plain model."""
    if size == 1:
        return None
    return SymmetryEnsemble.create(getattr(prior, "symmetries", Symmetries()), bar_distribution, n_features, size)


def _encode(model: PFNTransformer, x_ctx: Tensor, y_ctx: Tensor, precision: str) -> ContextCache:
    with inference_precision(precision, x_ctx.device):
        return model.encode_context(x_ctx, y_ctx)


def _logits(model: PFNTransformer, cache: ContextCache, x_qry: Tensor, precision: str) -> Tensor:
    with inference_precision(precision, x_qry.device):
        logits = model.predict_logits(cache, x_qry)
    return logits.float()


def encode(model: PFNTransformer, x_ctx: Tensor, y_ctx: Tensor, ensemble: SymmetryEnsemble | None,
           precision: str = "float32") -> ContextCache | EnsembleContext:
    """The context encoded for the plain model (`ensemble` None) or once per ensemble member, the forward passes
    at `precision` (:mod:`priorfit.model.precision`)."""
    if ensemble is None:
        return _encode(model, x_ctx, y_ctx, precision)
    return ensemble.encode(model, x_ctx, y_ctx, precision)


def predict(model: PFNTransformer, context: ContextCache | EnsembleContext, x_qry: Tensor,
            ensemble: SymmetryEnsemble | None, precision: str = "float32") -> Tensor:
    """Query logits `batch x m x K` from a context :func:`encode` made with the same `ensemble` and `precision`:
    the model's own (float32) or the members' average (float64)."""
    if ensemble is None:
        return _logits(model, context, x_qry, precision)
    return ensemble.logits(model, context, x_qry, precision)
