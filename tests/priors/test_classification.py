"""The GP classification prior against what it states: labels drawn from the softmax of the latents, latents with
the GP's variance, exchangeable classes, the query labels' exact probabilities, and a clear refusal where a
regression PFN would silently fit labels as numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.exceptions import ConfigError
from priorfit.model.transformer import ModelConfig
from priorfit.priors import (
    RBF,
    CategoricalTargets,
    Fixed,
    GPClassificationPrior,
    GPPrior,
    LogNormal,
    Normal,
    Scale,
)
from priorfit.training import TrainConfig, train

from conftest import label_calibration_error


def _prior(**kw) -> GPClassificationPrior:
    gp = GPPrior(kernel=Scale(RBF(lengthscale=LogNormal(-1.0, 0.5)), outputscale=LogNormal(0.5, 0.5)),
                 noise_std=LogNormal(-1.5, 0.5), mean=Normal(0.0, 1.0), max_features=2)
    return GPClassificationPrior(gp=gp, **kw)


def test_labels_are_class_indices_and_repeat_with_the_seed():
    prior = _prior(max_classes=4)
    a = prior.sample(16, 20, torch.Generator().manual_seed(3), n_features=2)
    b = prior.sample(16, 20, torch.Generator().manual_seed(3), n_features=2)
    torch.testing.assert_close(a.y, b.y)
    c = a.params.latents.shape[-1]
    assert a.x.shape == (16, 20, 2) and a.y.shape == (16, 20) and 2 <= c <= 4
    assert a.y.dtype == torch.float64 and torch.equal(a.y, a.y.round()) and a.y.min() >= 0 and a.y.max() < c
    three = prior.sample(4, 8, torch.Generator().manual_seed(0), n_classes=3)
    assert three.params.latents.shape == (4, 8, 3) and three.params.class_means.shape == (4, 3)
    with pytest.raises(ValueError, match="n_classes"):
        prior.sample(4, 8, torch.Generator().manual_seed(0), n_classes=5)


def test_labels_follow_the_softmax_of_the_latents_and_the_conditional_is_it():
    """Binned calibration of the drawn labels against softmax(latents), on context and query points alike, and
    the conditional is exactly the query points' softmax."""
    prior = _prior()
    batch = prior.sample(400, 40, torch.Generator().manual_seed(1), n_classes=3)
    probs = torch.softmax(batch.params.latents, -1).numpy()
    worst, allowed = label_calibration_error(probs, batch.y.numpy())
    assert worst < allowed, (worst, allowed)
    targets = prior.conditional(batch, 25)
    assert isinstance(targets, CategoricalTargets) and targets.probs.shape == (400, 15, 3)
    np.testing.assert_allclose(targets.probs.numpy(), probs[:, 25:], rtol=1e-12)
    np.testing.assert_allclose(targets.probs.sum(-1).numpy(), 1.0, rtol=1e-12)
    worst, allowed = label_calibration_error(targets.probs.numpy(), batch.y[:, 25:].numpy())
    assert worst < allowed, (worst, allowed)


def test_latents_have_the_gp_s_variance_and_classes_are_exchangeable():
    """With every hyperparameter fixed, each latent's variance is outputscale + noise^2 + the mean's variance, and
    latents of different classes are uncorrelated; with random means, the classes are drawn equally often."""
    gp = GPPrior(kernel=Scale(RBF(lengthscale=Fixed(0.3)), outputscale=Fixed(2.0)), noise_std=Fixed(0.5),
                 mean=Normal(0.0, 1.0), max_features=1)
    batch = GPClassificationPrior(gp=gp).sample(4000, 5, torch.Generator().manual_seed(2), n_classes=4)
    g = batch.params.latents.numpy()
    assert g.var() == pytest.approx(2.0 + 0.25 + 1.0, rel=0.03)
    corr = np.corrcoef(g[:, 0, 0], g[:, 0, 1])[0, 1]
    assert abs(corr) < 4 / np.sqrt(4000)
    share = np.stack([(batch.y.numpy() == c).mean(1) for c in range(4)], 1)  # per dataset: each class's share
    se = share.std(0) / np.sqrt(len(share))  # datasets are independent, their points are not
    assert np.all(np.abs(share.mean(0) - 0.25) < 4 * se), (share.mean(0), se)


def test_config_round_trip_and_checks():
    prior = _prior(min_classes=3, max_classes=5)
    assert from_dict(json.loads(json.dumps(to_dict(prior)))) == prior
    with pytest.raises(ValueError, match="max_classes"):
        GPClassificationPrior(min_classes=4, max_classes=3)
    with pytest.raises(ValueError, match="min_classes"):
        GPClassificationPrior(min_classes=1)
    with pytest.raises(TypeError, match="gp must be a GPPrior"):
        GPClassificationPrior(gp="rbf")


def test_latents_are_drawn_on_the_inputs_scaled_by_the_context():
    """With two context points in one feature, the context spans [0, 1] once scaled, so the latents' covariance at
    those points is the kernel at distance 1, whatever the raw distance was."""
    gp = GPPrior(kernel=Scale(RBF(lengthscale=Fixed(1.0)), outputscale=Fixed(2.0)), noise_std=Fixed(0.5),
                 mean=Normal(0.0, 1.0), max_features=1)
    batch = GPClassificationPrior(gp=gp).sample(20000, 3, torch.Generator().manual_seed(4), n_classes=2,
                                                n_context=2)
    g = batch.params.latents.numpy()
    cov = np.mean(g[:, 0, :] * g[:, 1, :])
    assert cov == pytest.approx(2.0 * np.exp(-0.5) + 1.0, abs=4 * 3.25 / np.sqrt(20000 * 2))


def test_a_regression_pfn_is_not_trained_on_labels(tmp_path):
    with pytest.raises(ConfigError, match="n_classes must be at least"):
        train(_prior(), ModelConfig(max_features=2), TrainConfig(steps=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="draws continuous targets"):
        train(_prior().gp, ModelConfig(max_features=2, n_classes=3), TrainConfig(steps=1), tmp_path / "run")


def test_a_dataset_has_no_more_classes_than_its_context_has_points():
    prior = _prior(max_classes=10)
    generator = torch.Generator().manual_seed(5)
    drawn = {prior.sample(2, 12, generator, n_context=3).params.latents.shape[-1] for _ in range(60)}
    assert drawn == {2, 3}
    drawn = {prior.sample(2, 12, generator).params.latents.shape[-1] for _ in range(200)}
    assert drawn == set(range(2, 11))
