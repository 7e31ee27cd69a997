"""How probable a classifier PFN finds a context's labels: the evidence, by the chain rule over the context's points.

``log p(y | X) = sum_i log p(y_i | x_i, (x_j, y_j) for j < i)``, and a PFN predicts each factor. Scoring every point
on all those before it costs a forward pass per point, so the points are scored in blocks, each on the prefix before
it, with the prefix doubling from block to block (the prequential code of Blier & Ollivier, 2018): about log2(n)
passes of at most n points in all. Within a block the points are scored independently, which leaves out what the
block's own labels teach about each other: the same procedure for every model compared, not the same error. By
default at most 64 points are scored (a random subset of a larger context), at most five passes.

The first block holds one point of each class and is not scored: a classifier PFN is trained on contexts that hold
every class of their dataset, so every scored prefix must hold them too. What is compared is therefore an estimate of
``p(rest of y | first block's y, X)``, a partial Bayes factor whose minimal training sample is that block.

Two models of the same labels, each a PFN trained on its prior (here: one network on two views of the inputs,
``priorfit.principal_axes``), are combined by Bayes' rule with these evidences: under the prior that draws either
model with probability 1/2, the posterior predictive is their predictives weighted by their posterior probabilities,
which ``softmax(log evidence)`` approximates (from a subset of the labels, scored in blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from priorfit.model.categorical import masked_log_probs

__all__ = ["PrequentialBlocks", "prequential_blocks", "log_evidence", "evidence_weights"]


@dataclass(frozen=True)
class PrequentialBlocks:
    """The context's points in scoring order (`order`: indices, one point of each class first) and the prefix
    lengths that bound its blocks (`bounds`: the unscored first block's length, then each scored block's end)."""

    order: Tensor
    bounds: tuple[int, ...]

    @property
    def scored(self) -> int:
        """How many of the context's labels the evidence scores."""
        return self.bounds[-1] - self.bounds[0]


def prequential_blocks(labels: np.ndarray, rng: np.random.RandomState, max_points: int = 64) -> PrequentialBlocks:
    """A random scoring order of a context with class indices `labels` (`n`, each class 0 ... K-1 present): one
    point of each class first, then up to `max_points` points in all, in blocks whose prefix doubles."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1
    if labels.ndim != 1 or labels.min() < 0 or len(np.unique(labels)) != n_classes:
        raise ValueError("labels must be a 1-d array of class indices holding every class 0 ... K-1")
    if max_points < n_classes:
        raise ValueError(f"max_points must be at least the number of classes ({n_classes}), got {max_points}")
    shuffled = rng.permutation(len(labels))
    _, first = np.unique(labels[shuffled], return_index=True)  # each class's first point in the shuffled order
    head = shuffled[np.sort(first)]
    rest = np.delete(shuffled, first)
    order = np.concatenate([head, rest])[:max_points]
    bounds = [n_classes]
    while bounds[-1] < len(order):
        bounds.append(min(2 * bounds[-1], len(order)))
    return PrequentialBlocks(order=torch.as_tensor(order, dtype=torch.int64), bounds=tuple(bounds))


def log_evidence(model: torch.nn.Module, members, x_ctx: Tensor, labels: Tensor,
                 blocks: PrequentialBlocks) -> np.ndarray:
    """The log evidence (nats) the network gives the scored labels of one context under each member, `x_ctx`
    (`1 x n x d`, mapped as the estimator maps it) with class indices `labels` (`1 x n`), each block on its prefix.
    A member is ``(inputs, class_order)``: its input map (``inputs.inputs(x)``) and renumbering (it sees class c as
    ``class_order[c]``), as ``PFNClassifier`` shows it the data; the members run as one batch. A context whose
    labels are all in the first block scores 0."""
    classes = torch.stack([order for _, order in members])  # members x n_classes
    n_classes = classes.shape[1]
    totals = torch.zeros(len(members), dtype=torch.float64)
    for start, stop in zip(blocks.bounds[:-1], blocks.bounds[1:]):
        seen, scored = blocks.order[:start], blocks.order[start:stop]
        context = torch.cat([inputs.inputs(x_ctx[:, seen]) for inputs, _ in members])
        queries = torch.cat([inputs.inputs(x_ctx[:, scored]) for inputs, _ in members])
        cache = model.encode_context(context, torch.gather(classes, 1, labels[:, seen].expand(len(members), -1)))
        log_probs = masked_log_probs(model.predict_logits(cache, queries).double(), n_classes)
        truth = torch.gather(classes, 1, labels[:, scored].expand(len(members), -1))  # members x scored
        totals += log_probs.gather(-1, truth.unsqueeze(-1)).squeeze(-1).sum(-1)
    return totals.numpy()


def evidence_weights(log_evidences: list[float] | np.ndarray) -> np.ndarray:
    """Posterior probabilities of models drawn with equal prior probability, from their log evidences."""
    values = np.asarray(log_evidences, dtype=np.float64)
    if values.ndim != 1 or not len(values) or not np.all(np.isfinite(values)):
        raise ValueError(f"log_evidences must be a non-empty 1-d array of finite numbers, got {log_evidences!r}")
    weights = np.exp(values - values.max())
    return weights / weights.sum()
