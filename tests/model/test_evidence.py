"""The prequential evidence: scoring blocks that hold every class first, and with one-point blocks, the chain rule's
exact log marginal likelihood when the predictor is exact (a Dirichlet-categorical model, in closed form)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.special import gammaln

from priorfit.model.evidence import PrequentialBlocks, evidence_weights, log_evidence, prequential_blocks


@dataclass(frozen=True)
class _Counts:
    counts: torch.Tensor


class DirichletCategorical:
    """A stand-in for a classifier PFN whose predictive is exact under a Dirichlet(alpha) prior on class
    frequencies that ignores the inputs: ``p(y = c | context) = (alpha_c + n_c) / (sum(alpha) + n)``."""

    def __init__(self, alpha):
        self.alpha = torch.as_tensor(alpha, dtype=torch.float64)

    def encode_context(self, x, y):
        return _Counts(torch.stack([torch.bincount(row, minlength=len(self.alpha)) for row in y]).double())

    def predict_logits(self, cache, x):
        probs = (self.alpha + cache.counts) / (self.alpha.sum() + cache.counts.sum(-1, keepdim=True))
        return probs.log()[:, None, :].expand(-1, x.shape[1], -1)


class _Identity:
    @staticmethod
    def inputs(x):
        return x


def _closed_form(alpha, labels, head):
    """log p(labels[rest] | labels[head]) under the Dirichlet-categorical model."""
    alpha = np.asarray(alpha, dtype=float)
    first = np.bincount(labels[head], minlength=len(alpha))
    every = np.bincount(labels, minlength=len(alpha))
    return float(gammaln(alpha.sum() + first.sum()) - gammaln(alpha.sum() + every.sum())
                 + np.sum(gammaln(alpha + every) - gammaln(alpha + first)))


def test_blocks_hold_every_class_first_and_double():
    labels = np.array([2, 0, 0, 1, 0, 0, 2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 1, 0, 0, 0] * 2)
    blocks = prequential_blocks(labels, np.random.RandomState(3))
    order = blocks.order.numpy()
    assert sorted(labels[order[:3]]) == [0, 1, 2]
    assert sorted(order) == list(range(len(labels)))
    assert blocks.bounds == (3, 6, 12, 24, 40) and blocks.scored == 37
    capped = prequential_blocks(labels, np.random.RandomState(3), max_points=10)
    assert capped.bounds == (3, 6, 10) and len(capped.order) == 10
    assert len(set(capped.order.tolist())) == 10
    assert prequential_blocks(np.array([1, 0]), np.random.RandomState(0)).bounds == (2,)  # nothing left to score


def test_blocks_refuse_labels_missing_a_class_and_too_few_points():
    with pytest.raises(ValueError, match="every class"):
        prequential_blocks(np.array([0, 2, 2]), np.random.RandomState(0))
    with pytest.raises(ValueError, match="max_points"):
        prequential_blocks(np.array([0, 1, 2]), np.random.RandomState(0), max_points=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_point_blocks_give_the_exact_evidence_whatever_the_order_and_renumbering(seed):
    rng = np.random.RandomState(seed)
    alpha = [0.7, 1.5, 3.0]
    labels = rng.choice(3, size=25, p=[0.2, 0.3, 0.5])
    labels[:3] = [0, 1, 2]
    x = torch.zeros(1, len(labels), 1)
    y = torch.as_tensor(labels)[None]
    base = prequential_blocks(labels, rng)
    one_point = PrequentialBlocks(order=base.order, bounds=tuple(range(3, len(labels) + 1)))
    head = base.order[:3].numpy()
    exact = _closed_form(alpha, labels, head)
    # a member that sees class c as order[c] predicts its renumbered classes; the evidence is of the same labels
    order = torch.as_tensor(rng.permutation(3))
    model = DirichletCategorical(torch.tensor(alpha, dtype=torch.float64)[torch.argsort(order)])  # alpha of member class order[c]
    assert log_evidence(model, [(_Identity, order)], x, y, one_point)[0] == pytest.approx(exact, rel=1e-10)
    # another scoring order with the same first block: the chain rule gives the same evidence
    rest = base.order[3:][torch.as_tensor(rng.permutation(len(labels) - 3))]
    shuffled = PrequentialBlocks(order=torch.cat([base.order[:3], rest]), bounds=one_point.bounds)
    assert log_evidence(model, [(_Identity, order)], x, y, shuffled)[0] == pytest.approx(exact, rel=1e-10)
    # members scored as one batch: each the same as alone (a symmetric prior, so any renumbering gives the same)
    symmetric = DirichletCategorical(torch.full((3,), 1.2, dtype=torch.float64))
    members = [(_Identity, order), (_Identity, torch.arange(3)), (_Identity, torch.as_tensor([2, 0, 1]))]
    batched = log_evidence(symmetric, members, x, y, one_point)
    np.testing.assert_allclose(batched, _closed_form([1.2] * 3, labels, head), rtol=1e-10)
    # doubling blocks score each block's points on its prefix alone
    by_hand = 0.0
    for start, stop in zip(base.bounds[:-1], base.bounds[1:]):
        seen = np.bincount(labels[base.order[:start].numpy()], minlength=3)
        scored = labels[base.order[start:stop].numpy()]
        by_hand += float(np.sum(np.log((np.asarray(alpha)[scored] + seen[scored]) / (sum(alpha) + start))))
    assert log_evidence(model, [(_Identity, order)], x, y, base)[0] == pytest.approx(by_hand, rel=1e-10)


def test_evidence_weights_are_posterior_model_probabilities():
    np.testing.assert_allclose(evidence_weights([0.0, np.log(3.0)]), [0.25, 0.75])
    np.testing.assert_allclose(evidence_weights([-1e4, -1e4 + np.log(4.0)]), [0.2, 0.8])  # no underflow
    np.testing.assert_allclose(evidence_weights([5.0]), [1.0])
    for bad in ([], [0.0, np.nan], [[0.0]], [0.0, -np.inf]):
        with pytest.raises(ValueError, match="log_evidences"):
            evidence_weights(bad)
