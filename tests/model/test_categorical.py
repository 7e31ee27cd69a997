"""A classifier PFN's output and loss against slow, obvious references: the renumbering of labels by the
context's classes, the masked softmax, and the cross-entropy as the expectation of the labels' NLL."""

from __future__ import annotations

import itertools

import pytest
import torch

from priorfit.model.categorical import (
    categorical_expected_nll,
    categorical_nll,
    context_targets,
    masked_log_probs,
    relabel_by_context,
)
from priorfit.model.transformer import ModelConfig, PFNTransformer


def test_relabel_numbers_the_context_classes_and_marks_the_others():
    y = torch.tensor([[3.0, 1.0, 3.0, 0.0, 1.0, 2.0], [2.0, 2.0, 2.0, 2.0, 0.0, 2.0]])
    labels, k, mapping = relabel_by_context(y, 3)
    assert k.tolist() == [2, 1]
    assert labels.tolist() == [[1, 0, 1, -1, 0, -1], [0, 0, 0, 0, -1, 0]]  # sorted order without a generator
    assert mapping.tolist() == [[-1, 0, -1, 1], [-1, -1, 0, -1]]
    seen = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        labels, k, mapping = relabel_by_context(y, 3, generator)
        assert sorted(labels[0, :3].unique().tolist()) == [0, 1] and labels[0, 3] == -1
        assert labels[0, 0] == labels[0, 2] and labels[0, 1] == labels[0, 4] and labels[1, 4] == -1
        seen.add(tuple(mapping[0].tolist()))
    assert seen == {(-1, 0, -1, 1), (-1, 1, -1, 0)}  # both orders of the context's two classes


def test_context_targets_move_and_renormalise_the_probabilities():
    generator = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(2, 5, 4, generator=generator, dtype=torch.float64), -1)
    y = torch.tensor([[3.0, 1.0, 3.0], [0.0, 2.0, 1.0]])
    _, k, mapping = relabel_by_context(y, 3, generator)
    moved = context_targets(probs, mapping)
    for b in range(2):
        old = [c for c in range(4) if mapping[b, c] >= 0]
        total = probs[b][:, old].sum(-1)
        for c in old:
            torch.testing.assert_close(moved[b, :, mapping[b, c]], probs[b, :, c] / total)
        assert torch.all(moved[b, :, int(k[b]):] == 0)


def test_masked_softmax_is_a_distribution_over_the_context_classes():
    logits = torch.randn(3, 4, 6)
    log_probs = masked_log_probs(logits, torch.tensor([2, 4, 6]))
    for b, k in enumerate((2, 4, 6)):
        torch.testing.assert_close(log_probs[b, :, :k].exp().sum(-1), torch.ones(4))
        assert torch.all(log_probs[b, :, k:] == float("-inf"))
        torch.testing.assert_close(log_probs[b, :, :k], torch.log_softmax(logits[b, :, :k], -1))
    with pytest.raises(ValueError, match="n_classes"):
        masked_log_probs(logits, 7)


def test_the_cross_entropy_is_the_expected_nll_of_the_labels():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, generator=generator)
    k = torch.tensor([3, 5])
    probs = torch.zeros(2, 3, 5)
    for b, kb in enumerate(k.tolist()):
        probs[b, :, :kb] = torch.softmax(torch.randn(3, kb, generator=generator), -1)
    expected = torch.zeros(2, 3)
    for b, kb in enumerate(k.tolist()):  # enumerate every label
        for c in range(kb):
            labels = torch.full((2, 3), c)
            expected[b] += probs[b, :, c] * categorical_nll(logits, k, labels)[b]
    torch.testing.assert_close(categorical_expected_nll(logits, k, probs), expected)
    nll = categorical_nll(logits, k, torch.tensor([[0, -1, 2], [4, 4, -1]]))
    assert torch.isnan(nll[0, 1]) and torch.isnan(nll[1, 2]) and torch.isfinite(nll[0, 0])


def test_a_classifier_network_sees_labels_and_not_their_order():
    model = PFNTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_classes=4,
                                       invariant=True)).eval()
    x = torch.rand(1, 7, 2) * 30 + 5
    y = torch.tensor([[0.0, 1.0, 2.0, 1.0, 0.0, 2.0, 3.0]])
    q = torch.rand(1, 5, 2) * 30 + 5
    logits = model(x, y, q)
    assert logits.shape == (1, 5, 4)
    order = torch.randperm(7)
    torch.testing.assert_close(model(x[:, order], y[:, order], q), logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x * 3 - 2, y, q * 3 - 2), logits, atol=1e-4, rtol=1e-4)  # units of x
    assert not torch.allclose(model(x, y.flip(1), q), logits)
    for bad in (torch.tensor([[0.0, 1.0, 4.0, 1.0, 0.0, 2.0, 3.0]]), y + 0.5, y - 1):
        with pytest.raises(ValueError, match="class indices 0 ... 3"):
            model(x, bad, q)


def test_model_config_checks_n_classes():
    for bad in (1, -2, 2.5, True):
        with pytest.raises(ValueError, match="n_classes"):
            ModelConfig(n_classes=bad)
    with pytest.raises(ValueError, match="standardised"):
        ModelConfig(n_classes=3, standardize_targets=True)


def test_training_scores_only_contexts_that_hold_every_class(monkeypatch):
    """A dataset whose context misses one of its classes adds nothing to the loss or its gradient."""
    from priorfit import training
    from priorfit.priors import GPClassificationPrior

    model = PFNTransformer(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=1, n_classes=3))
    prior = GPClassificationPrior(max_classes=3, gp=GPClassificationPrior().gp.__class__(max_features=1))
    batch = prior.sample(6, 10, torch.Generator().manual_seed(0), n_classes=3)
    y = batch.y.clone()
    y[:3, :4] = torch.tensor([0.0, 1.0, 2.0, 0.0])  # complete contexts
    y[3:, :4] = torch.tensor([0.0, 1.0, 1.0, 0.0])  # class 2 missing
    batch = type(batch)(x=batch.x, y=y, params=batch.params)
    args = dict(n_ctx=4, rao_blackwell=True, prior=prior, device=torch.device("cpu"),
                autocast=torch.autocast("cpu", enabled=False))
    full = training._classifier_loss(model, batch, generator=torch.Generator().manual_seed(1), **args)
    first = type(batch)(x=batch.x[:3], y=y[:3], params=batch.params.map(lambda t: t[:3]))
    part = training._classifier_loss(model, first, generator=torch.Generator().manual_seed(1), **args)
    torch.testing.assert_close(full, part)
    none = type(batch)(x=batch.x[3:], y=y[3:], params=batch.params.map(lambda t: t[3:]))
    assert float(training._classifier_loss(model, none, generator=torch.Generator(), **args)) == 0.0
