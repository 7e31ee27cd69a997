"""The structural-causal-model classification prior and mixtures of priors of labels, against what they state:
labels drawn from the stated class probabilities, features that carry the label only where the graph says so,
one number of classes per batch, and training a classifier on a mixture."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.model.transformer import ModelConfig
from priorfit.priors import (
    RBF,
    GPClassificationPrior,
    GPPrior,
    LabelProbabilities,
    LogNormal,
    MixturePrior,
    Normal,
    Scale,
    SCMClassificationPrior,
)
from priorfit.training import TrainConfig, train

from conftest import check_labels_follow_stated_probabilities, label_calibration_error


def _gp(max_features: int = 3, max_classes: int = 10) -> GPClassificationPrior:
    gp = GPPrior(kernel=Scale(RBF(lengthscale=LogNormal(-1.0, 0.5)), outputscale=LogNormal(0.5, 0.5)),
                 noise_std=LogNormal(-1.5, 0.5), mean=Normal(0.0, 1.0), max_features=max_features)
    return GPClassificationPrior(gp=gp, max_classes=max_classes)


def test_scm_labels_follow_the_stated_probabilities_and_repeat_with_the_seed():
    prior = SCMClassificationPrior(max_features=4)
    check_labels_follow_stated_probabilities(prior)
    with pytest.raises(TypeError, match="LabelProbabilities"):
        prior.conditional(_gp().sample(2, 5, torch.Generator().manual_seed(0)), 3)


def test_scm_features_carry_the_label_only_through_the_graph():
    """With every feature made irrelevant (pure noise) the class probabilities do not depend on the features;
    with none made irrelevant and the label read from feature nodes, a feature explains them in most datasets."""
    def dependence(prior: SCMClassificationPrior) -> np.ndarray:
        batch = prior.sample(200, 200, torch.Generator().manual_seed(2), n_features=2, n_classes=2)
        x, p = batch.x.numpy(), batch.params.probs[..., 0].numpy()
        ranks = lambda a: a.argsort(1).argsort(1).astype(float)  # Spearman: skewed features need no special case
        rx, rp = ranks(x), ranks(p)
        rx, rp = rx - rx.mean(1, keepdims=True), rp - rp.mean(1, keepdims=True)
        corr = (rx * rp[..., None]).sum(1) / np.sqrt((rx**2).sum(1) * (rp**2).sum(1)[:, None] + 1e-300)
        return np.abs(corr).max(1)  # per dataset: the stronger of its two features

    noise_only = dependence(SCMClassificationPrior(max_features=2, irrelevant=1.0))
    assert np.median(noise_only) < 0.15, np.median(noise_only)
    read = dependence(SCMClassificationPrior(max_features=2, irrelevant=0.0, label_reads_features=1.0))
    assert np.median(read) > 0.5, np.median(read)


def test_scm_features_are_negated_half_the_time():
    """The prior states reflection invariance: each feature's skewness is as often positive as negative."""
    prior = SCMClassificationPrior(max_features=1, skewed=1.0, irrelevant=0.0)
    x = prior.sample(600, 60, torch.Generator().manual_seed(3), n_features=1, n_classes=2).x[..., 0].numpy()
    centred = x - x.mean(1, keepdims=True)
    skew = (centred**3).mean(1)
    positive = np.mean(skew > 0)
    assert abs(positive - 0.5) < 4 * np.sqrt(0.25 / 600), positive
    assert prior.symmetries.reflect_inputs and prior.symmetries.permute_inputs


def test_scm_classes_config_and_checks():
    prior = SCMClassificationPrior(max_features=3, max_classes=5)
    assert from_dict(json.loads(json.dumps(to_dict(prior)))) == prior
    generator = torch.Generator().manual_seed(4)
    drawn = {prior.sample(2, 12, generator, n_context=3).params.probs.shape[-1] for _ in range(60)}
    assert drawn == {2, 3}
    assert prior.references() == ()
    with pytest.raises(ValueError, match="irrelevant"):
        SCMClassificationPrior(irrelevant=1.5)
    with pytest.raises(ValueError, match="max_layers"):
        SCMClassificationPrior(max_layers=0)
    with pytest.raises(ValueError, match="n_classes"):
        prior.sample(2, 12, generator, n_classes=6)


def test_a_mixture_of_label_priors_draws_one_class_count_and_each_component_its_own_datasets():
    mixture = MixturePrior(priors=(_gp(), SCMClassificationPrior(max_features=3)), weights=(1.0, 3.0))
    assert mixture.target_kind == "categorical" and (mixture.min_classes, mixture.max_classes) == (2, 10)
    generator = torch.Generator().manual_seed(5)
    widths, shares = set(), []
    for _ in range(40):
        batch = mixture.sample(16, 30, generator, n_features=2, n_context=20)
        widths.add(batch.params.probs.shape[-1])
        shares.append(float((batch.params.component == 1).float().mean()))
        np.testing.assert_allclose(batch.params.probs.sum(-1).numpy(), 1.0, rtol=1e-12)
        assert mixture.conditional(batch, 20).probs.shape == (16, 10, batch.params.probs.shape[-1])
    assert len(widths) > 3
    assert abs(np.mean(shares) - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 640)
    # a component's rows are its own draws: the GP rows' inputs lie in the unit cube, the SCM rows' need not
    batch = mixture.sample(64, 30, torch.Generator().manual_seed(6), n_features=2)
    gp_rows = batch.params.component == 0
    assert batch.x[gp_rows].min() >= 0 and batch.x[gp_rows].max() <= 1
    assert (batch.x[~gp_rows] < 0).any()
    worst, allowed = label_calibration_error(batch.params.probs.numpy(), batch.y.numpy())
    assert worst < allowed, (worst, allowed)


def test_a_mixture_refuses_mixed_target_kinds_and_class_ranges():
    with pytest.raises(ValueError, match="same kind of targets"):
        MixturePrior(priors=(_gp(), _gp().gp), weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="min_classes and max_classes"):
        MixturePrior(priors=(_gp(max_classes=4), SCMClassificationPrior(max_features=3)), weights=(1.0, 1.0))


def test_a_classifier_trains_on_a_mixture_of_label_priors(tmp_path):
    mixture = MixturePrior(priors=(_gp(max_features=2, max_classes=3),
                                   SCMClassificationPrior(max_features=2, max_classes=3)), weights=(1.0, 1.0))
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_classes=3, invariant=True)
    config = TrainConfig(steps=6, batch_size=8, n_points=24, min_context=4, max_context=16, lr=1e-3,
                         eval_every=6, eval_datasets=16, eval_context=(8,), checkpoint_every=6)
    result = train(mixture, model, config, tmp_path / "run", progress=False)
    assert result.step == 6 and np.isfinite(result.history[-1]["nll@8"])
    again = train(mixture, model, dataclasses.replace(config), tmp_path / "again", progress=False)
    assert again.history[-1]["nll@8"] == result.history[-1]["nll@8"]
