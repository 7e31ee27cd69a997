"""The tree classification prior against what it states: labels drawn from the stated probabilities, those
probabilities recomputed by walking each tree point by point, thresholds at context points' values, features of
the stated kinds, units that do not matter, and its arguments checked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.priors import TreeClassificationPrior
from priorfit.priors.tree_classification import EXTRA_KINDS, FEATURE_KINDS, tree_logits

from conftest import check_labels_follow_stated_probabilities


def test_labels_follow_the_stated_probabilities_and_repeat_with_the_seed():
    check_labels_follow_stated_probabilities(TreeClassificationPrior())


def _walk(x: np.ndarray, features: np.ndarray, thresholds: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """One point's leaf values summed over trees, by following each tree's branches one node at a time."""
    total = np.zeros(leaves.shape[-1])
    nodes = features.shape[-1]
    for t in range(features.shape[0]):
        node = 0
        while node < nodes:
            node = 2 * node + (2 if x[features[t, node]] > thresholds[t, node] else 1)
        total += leaves[t, node - nodes]
    return total


def test_the_probabilities_are_the_softmax_of_the_trees_walked_point_by_point():
    prior = TreeClassificationPrior(max_trees=3, max_depth=3, max_label_noise=0.0)
    batch = prior.sample(6, 30, torch.Generator().manual_seed(2), n_features=4, n_context=20, n_classes=3)
    p = batch.params
    trees = p.features.shape[1]
    for i in range(6):
        x = batch.x[i].numpy() * p.signs[i].numpy()  # the features as the trees saw them
        for j in range(30):
            total = _walk(x[j], p.features[i].numpy(), p.thresholds[i].numpy(), p.leaves[i].numpy())
            logits = p.sharpness[i].item() * total / math.sqrt(trees) + p.biases[i].numpy()
            expected = np.exp(logits - logits.max())
            np.testing.assert_allclose(p.probs[i, j].numpy(), expected / expected.sum(), rtol=1e-9, atol=1e-12)


def test_leaves_are_sums_of_the_splits_effects_on_their_paths():
    """Each split adds its effect on one side and subtracts it on the other, so the leaves sum to zero (the
    2^D - 1 effects span exactly the leaf vectors that do), and a leaf's value is standard normal per class."""
    prior = TreeClassificationPrior(max_depth=3)
    values, depths = [], set()
    for seed in range(20):  # the depth is drawn per batch
        leaves = prior.sample(100, 10, torch.Generator().manual_seed(seed), n_classes=2).params.leaves.flatten(0, 1)
        depths.add(leaves.shape[1])
        torch.testing.assert_close(leaves.sum(1), torch.zeros_like(leaves[:, 0]), rtol=0, atol=1e-12)
        if leaves.shape[1] == 2:  # depth 1: the leaves are -e and +e
            torch.testing.assert_close(leaves[:, 0], -leaves[:, 1], rtol=0, atol=0)
        values.append(leaves.flatten())
    assert depths == {2, 4, 8}
    assert abs(float(torch.cat(values).std()) - 1.0) < 0.03


def test_thresholds_are_context_values_and_zero_inflated_features_split_at_zero():
    prior = TreeClassificationPrior(kind_weights=(0, 0, 0, 1, 0), max_depth=2)
    batch = prior.sample(300, 200, torch.Generator().manual_seed(3), n_features=3, n_context=20)
    p = batch.params
    x = (batch.x * p.signs[:, None]).numpy()
    for i in range(300):
        for t in range(p.features.shape[1]):
            for node in range(p.features.shape[2]):
                feature, threshold = int(p.features[i, t, node]), float(p.thresholds[i, t, node])
                assert threshold in x[i, :20, feature]
    zeros = (x == 0).mean(axis=1)  # 300 x 3: each feature's share of zeros, 0.2 ... 0.7 in expectation
    assert 0.1 < zeros.min() and zeros.max() < 0.8 and abs(zeros.mean() - 0.45) < 0.03
    assert float((p.thresholds == 0).double().mean()) > 0.3
    assert (x >= 0).all()  # zero or log-normal before the reflections


@pytest.mark.parametrize("kind", FEATURE_KINDS + EXTRA_KINDS)
def test_each_kind_of_feature(kind):
    weights = tuple(1.0 if k == kind else 0.0 for k in FEATURE_KINDS)
    extra = {f"{k}_weight": 1.0 if k == kind else 0.0 for k in EXTRA_KINDS}
    batch = TreeClassificationPrior(kind_weights=weights, **extra).sample(200, 100, torch.Generator().manual_seed(4),
                                                                          n_features=2)
    x = (batch.x * batch.params.signs[:, None]).numpy()
    distinct = np.array([len(np.unique(x[i, :, j])) for i in range(200) for j in range(2)])
    if kind == "normal":
        assert abs(x.mean()) < 0.02 and abs(x.std() - 1.0) < 0.02
    elif kind == "uniform":
        assert abs(x.std() - 1.0) < 0.02 and np.abs(x).max() <= math.sqrt(3.0)
    elif kind == "lognormal":
        assert (x > 0).all() and np.median(x) == pytest.approx(1.0, abs=0.03)
    elif kind == "zero_inflated":
        assert 0.35 < (x == 0).mean() < 0.55
    elif kind == "heavy_tailed":  # Student-t, 1 to 4 degrees of freedom: P(|x| > 5) averages 0.047, a normal's 6e-7
        assert np.median(x) == pytest.approx(0.0, abs=0.03) and 0.03 < (np.abs(x) > 5).mean() < 0.07
    elif kind == "bimodal":  # two unit clusters 3 to 10 apart: a gap in each feature's values
        gaps = np.array([np.diff(np.sort(x[i, :, j])).max() for i in range(200) for j in range(2)])
        assert np.median(gaps) > 1.5 and distinct.min() == 100
    else:
        assert distinct.max() <= 40 and distinct.min() >= 2  # a rounded normal: few levels


def test_the_extra_kinds_draw_nothing_while_their_weights_are_zero():
    """A prior stated before the heavy-tailed and bimodal kinds existed draws the same datasets now: with their
    weights at zero the generator is not touched for them. The pinned figures are the draws of the code before
    the kinds were added (commit cc203b6), seed 1."""
    before = TreeClassificationPrior().sample(16, 50, torch.Generator().manual_seed(1), n_features=5)
    assert float(before.x.sum()) == pytest.approx(612.0090382062908, rel=1e-9)
    assert float(before.x.abs().sum()) == pytest.approx(4029.362933833996, rel=1e-9)
    assert float(before.x[3, 7, 2]) == pytest.approx(0.7918670926234392, rel=1e-9)
    assert before.y[0, :6].tolist() == [2.0, 1.0, 1.0, 1.0, 1.0, 4.0]

    def draws(prior):
        batch = prior.sample(20, 40, torch.Generator().manual_seed(9), n_features=4)
        return batch.x, batch.y

    default = draws(TreeClassificationPrior())
    torch.testing.assert_close(draws(TreeClassificationPrior(heavy_tailed_weight=0.0, bimodal_weight=0.0)), default,
                               rtol=0, atol=0)
    with_extras = draws(TreeClassificationPrior(heavy_tailed_weight=1e-9, bimodal_weight=1e-9))
    assert not torch.equal(with_extras[0], default[0])  # the extra draws move the stream, though no feature is one


def test_half_of_the_features_are_reflected_after_the_labels():
    """The signs are even, and the stated probabilities are the trees' on the unreflected features (the thresholds
    are values of those), so a reflection moves no label."""
    prior = TreeClassificationPrior()
    batch = prior.sample(400, 25, torch.Generator().manual_seed(5), n_features=5, n_classes=4)
    p = batch.params
    assert abs(float((p.signs < 0).double().mean()) - 0.5) < 0.03
    unreflected = tree_logits(batch.x * p.signs[:, None], p.features, p.thresholds, p.leaves)
    reflected = tree_logits(batch.x, p.features, p.thresholds, p.leaves)
    assert not torch.equal(unreflected, reflected)
    logits = p.sharpness[:, None, None] * unreflected / math.sqrt(p.features.shape[1]) + p.biases[:, None]
    assert torch.equal(logits.argmax(-1), p.probs.argmax(-1))  # label noise mixes in the uniform: same argmax


def test_arguments_are_checked_and_the_prior_round_trips_through_its_config():
    with pytest.raises(ValueError, match="max_trees"):
        TreeClassificationPrior(max_trees=0)
    with pytest.raises(ValueError, match="max_depth"):
        TreeClassificationPrior(max_depth=9)
    with pytest.raises(ValueError, match="kind_weights"):
        TreeClassificationPrior(kind_weights=(1.0, 0.0))
    for bad in ((0.0, 0.0, 0.0, 0.0, 0.0), (1.0, float("inf"), 0.0, 0.0, 0.0), (1.0, "a", 0.0, 0.0, 0.0), 3.0):
        with pytest.raises(ValueError, match="kind_weights"):
            TreeClassificationPrior(kind_weights=bad)
    for name in ("heavy_tailed_weight", "bimodal_weight"):
        for bad in (-1.0, float("nan"), "a"):
            with pytest.raises(ValueError, match=name):
                TreeClassificationPrior(**{name: bad})
    assert TreeClassificationPrior(kind_weights=(0, 0, 0, 0, 0), bimodal_weight=1.0).bimodal_weight == 1.0
    with pytest.raises(ValueError, match="sharpness_scale"):
        TreeClassificationPrior(sharpness_scale=-1.0)
    with pytest.raises(ValueError, match="max_classes"):
        TreeClassificationPrior(min_classes=3, max_classes=2)
    with pytest.raises(ValueError, match="n_features"):
        TreeClassificationPrior().sample(2, 10, torch.Generator(), n_features=9)
    with pytest.raises(TypeError, match="generator"):
        TreeClassificationPrior().sample(2, 10, 0)
    prior = TreeClassificationPrior(max_trees=2, max_classes=5, kind_weights=(1, 0, 0, 2, 0), heavy_tailed_weight=0.5)
    assert from_dict(json.loads(json.dumps(to_dict(prior)))) == prior
    assert prior.symmetries.permute_inputs and prior.symmetries.reflect_inputs
    assert prior.target_kind == "categorical" and prior.references() == ()
    one = prior.sample(3, 8, torch.Generator().manual_seed(7), n_context=1)  # thresholds from a one-point context
    assert torch.isfinite(one.params.probs).all()
