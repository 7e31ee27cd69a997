r"""A classifier PFN's output and loss: class probabilities over the classes its context holds.

What the network is shown of a dataset's labels is what :class:`~priorfit.PFNClassifier` shows it of a user's: the
classes present in the context, numbered ``0 ... K - 1``. The estimator numbers them in sorted order; training
numbers them in a random order per dataset (:func:`relabel_by_context`), so the network cannot tie a meaning to a
class index and its predictions do not depend on how a user's classes sort. Its predictive is over those K
classes (:func:`masked_log_probs`).

A user who fits a classifier states that the classes in the training data are all the classes there are. So
training scores a dataset only when its context holds every class the dataset was drawn with
(:func:`complete_contexts`): the network then learns :math:`p(y_* \mid D)` for data of which that is true, the
posterior with :math:`C = K` classes, which an exact reference can compute without summing over classes never
seen. (The renumbering also covers contexts that miss a class, :func:`context_targets` renormalising the exact
probabilities over the classes seen, for priors used otherwise.)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["relabel_by_context", "complete_contexts", "context_targets", "masked_log_probs", "categorical_nll",
           "categorical_expected_nll"]


def relabel_by_context(y: Tensor, n_context: int, generator: torch.Generator | None = None
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """Renumber each dataset's labels (`y`, `batch x n`, class indices) by the classes of its first `n_context`:
    those get ``0 ... K - 1`` in a random order drawn from `generator` (None: in sorted order), labels of other
    classes become -1. Returns the new labels (`batch x n`, int64), K (`batch`) and the map old class -> new
    index or -1 (`batch x C`, C the largest label + 1)."""
    labels = y.long()
    n_old = int(labels.max()) + 1
    present = torch.zeros(labels.shape[0], n_old, dtype=torch.bool, device=labels.device)
    present.scatter_(1, labels[:, :n_context], True)
    if generator is None:
        keys = torch.arange(n_old, dtype=torch.float64).expand(labels.shape[0], n_old).clone()
    else:
        keys = torch.rand(labels.shape[0], n_old, generator=generator, dtype=torch.float64)
    keys = torch.where(present.cpu(), keys, torch.full_like(keys, float("inf"))).to(labels.device)
    rank = keys.argsort(dim=1).argsort(dim=1)  # absent classes (key inf) rank after the present ones
    mapping = torch.where(present, rank, torch.full_like(rank, -1))
    return mapping.gather(1, labels), present.sum(1), mapping


def complete_contexts(n_seen: Tensor, n_classes: int) -> Tensor:
    """Which datasets (`batch`, bool) have contexts holding all `n_classes` classes they were drawn with, given the
    classes each context holds (`n_seen`, from :func:`relabel_by_context`)."""
    return n_seen == n_classes


def context_targets(probs: Tensor, mapping: Tensor) -> Tensor:
    """Exact class probabilities `probs` (`batch x m x C`, over the prior's classes) moved to the numbering of
    :func:`relabel_by_context` (`mapping`, `batch x C`) and renormalised over the context's classes: `batch x m x
    C'`, C' = max K, zero beyond a dataset's own K."""
    batch, m, n_old = probs.shape
    mapping = mapping[:, :n_old] if mapping.shape[1] >= n_old else torch.cat(
        [mapping, mapping.new_full((batch, n_old - mapping.shape[1]), -1)], dim=1)
    width = int(mapping.max()) + 1
    seen = mapping >= 0
    index = torch.where(seen, mapping, torch.zeros_like(mapping))[:, None, :].expand(batch, m, n_old)
    moved = probs.new_zeros(batch, m, width).scatter_add_(2, index, probs * seen[:, None, :])
    return moved / moved.sum(-1, keepdim=True).clamp_min(1e-300)


def masked_log_probs(logits: Tensor, n_classes: Tensor | int) -> Tensor:
    """Log-probabilities over each dataset's first `n_classes` (`batch` or an int) classes from logits
    `batch x m x C_max`; -inf beyond them."""
    width = logits.shape[-1]
    k = torch.as_tensor(n_classes, device=logits.device).reshape(-1, 1, 1)
    if int(k.max()) > width or int(k.min()) < 1:
        raise ValueError(f"n_classes must lie in 1 ... {width} (the model's classes), got {k.flatten().tolist()}")
    outside = torch.arange(width, device=logits.device) >= k
    return torch.log_softmax(logits.masked_fill(outside, float("-inf")), dim=-1)


def categorical_nll(logits: Tensor, n_classes: Tensor | int, labels: Tensor) -> Tensor:
    """NLL of each query label (`batch x m`, indices; -1: a class not in the context, NaN returned there)."""
    log_probs = masked_log_probs(logits, n_classes)
    known = labels >= 0
    picked = log_probs.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(known, -picked, torch.full_like(picked, float("nan")))


def categorical_expected_nll(logits: Tensor, n_classes: Tensor | int, probs: Tensor) -> Tensor:
    """The expectation of :func:`categorical_nll` over labels drawn from `probs` (`batch x m x C'`, zero beyond each
    dataset's classes, C' <= the model's): the cross-entropy, per query."""
    log_probs = masked_log_probs(logits, n_classes)[..., :probs.shape[-1]]
    terms = probs.to(log_probs.dtype) * log_probs
    return -torch.where(probs > 0, terms, torch.zeros_like(terms)).sum(-1)
