"""The factor classification prior against what it states: labels drawn from the stated probabilities, inputs
with the stated covariance, logits linear in the whitened inputs (so a direction of little variance carries the
label as often as the shared size does), units that do not matter, exchangeable classes, and its arguments
checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.priors import FactorClassificationPrior
from priorfit.priors.factor_classification import factor_logits

from conftest import check_labels_follow_stated_probabilities


def test_labels_follow_the_stated_probabilities_and_repeat_with_the_seed():
    check_labels_follow_stated_probabilities(FactorClassificationPrior())


def test_inputs_have_the_stated_covariance_and_the_probabilities_are_the_whitened_softmax():
    """One dataset of 20,000 points: the inputs' sample covariance is loadings loadings' + diag(specific^2), and
    the probabilities are recomputed (NumPy, from the stored loadings and directions) as the softmax of
    s * directions' L^-1 x / sqrt(d) + biases."""
    prior = FactorClassificationPrior(max_factors=2)
    batch = prior.sample(1, 20_000, torch.Generator().manual_seed(2), n_features=4, n_classes=3)
    p = batch.params
    lam, psi = p.loadings[0].numpy(), p.specific[0].numpy()
    cov = lam @ lam.T + np.diag(psi ** 2)
    x = batch.x[0].numpy()
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.05 * np.sqrt(np.outer(np.diag(cov), np.diag(cov))).max())
    white = np.linalg.solve(np.linalg.cholesky(cov), x.T).T
    logits = p.sharpness[0].item() * white @ p.directions[0].numpy() / 2.0 + p.biases[0].numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p.probs[0].numpy(), expected / expected.sum(1, keepdims=True), rtol=1e-9, atol=1e-12)


def test_the_label_reads_every_whitened_direction_alike():
    """With one strong shared factor (the 'size'), the share of a two-class logit's variance that the inputs' top
    principal component explains is (beta . u)^2 / |beta|^2 for an isotropic beta: 1 / d on average. A read-out on
    the raw or standardised features would load on the size almost always."""
    d, sets = 4, 600
    prior = FactorClassificationPrior(max_factors=1, specific_loc=-2.0, specific_scale=0.3)
    batch = prior.sample(sets, 1000, torch.Generator().manual_seed(3), n_features=d, n_classes=2)
    probs = batch.params.probs.numpy()
    logit = np.log(probs[..., 1]) - np.log(probs[..., 0])
    directions = batch.params.directions.numpy()
    shares, raw_shares = [], []
    for x, ell, beta in zip(batch.x.numpy(), logit, directions):
        x = x - x.mean(0)
        top = np.linalg.eigh(np.cov(x.T))[1][:, -1]
        shares.append(np.corrcoef(x @ top, ell)[0, 1] ** 2)
        raw = x @ (beta[:, 1] - beta[:, 0])  # the same directions read on the raw features instead: the size
        raw_shares.append(np.corrcoef(x @ top, raw)[0, 1] ** 2)
    shares = np.array(shares)
    assert abs(shares.mean() - 1 / d) < 4 * shares.std() / np.sqrt(sets) + 0.01, shares.mean()
    assert np.mean(raw_shares) > 0.8, np.mean(raw_shares)


def test_units_do_not_matter():
    """Rescaling a feature (its loadings and specific scale with it) leaves the logits at the rescaled inputs as
    they were."""
    prior = FactorClassificationPrior()
    batch = prior.sample(3, 25, torch.Generator().manual_seed(4), n_features=5, n_classes=4)
    p = batch.params
    scale = torch.exp(3 * torch.randn(3, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    before = factor_logits(batch.x, p.loadings, p.specific, p.directions, p.sharpness, p.biases)
    after = factor_logits(batch.x * scale[:, None], p.loadings * scale[..., None], p.specific * scale,
                          p.directions, p.sharpness, p.biases)
    torch.testing.assert_close(after, before, rtol=1e-8, atol=1e-8)


def test_classes_are_exchangeable_and_the_sharpness_sets_how_sharp():
    def draw(sharpness_loc: float) -> torch.Tensor:
        prior = FactorClassificationPrior(sharpness_loc=sharpness_loc, sharpness_scale=0.0)
        return prior.sample(3000, 20, torch.Generator().manual_seed(6), n_features=3, n_classes=3).params.probs

    probs = draw(1.0)
    share = probs.mean((0, 1))
    assert float((share - 1 / 3).abs().max()) < 0.02, share
    assert float(draw(2.5).max(-1).values.mean()) > float(probs.max(-1).values.mean()) + 0.1


def test_arguments_are_checked_and_the_prior_round_trips_through_its_config():
    with pytest.raises(ValueError, match="max_factors"):
        FactorClassificationPrior(max_factors=0)
    with pytest.raises(ValueError, match="specific_scale"):
        FactorClassificationPrior(specific_scale=-1.0)
    with pytest.raises(ValueError, match="specific_loc"):
        FactorClassificationPrior(specific_loc=-20.0)  # a covariance no Cholesky factor survives
    with pytest.raises(ValueError, match="sharpness_loc"):
        FactorClassificationPrior(sharpness_loc=float("nan"))
    extreme = FactorClassificationPrior(specific_loc=-6.0, specific_scale=2.0, sharpness_loc=5.0, sharpness_scale=2.0)
    assert torch.isfinite(extreme.sample(200, 30, torch.Generator().manual_seed(7), n_features=8).params.probs).all()
    with pytest.raises(ValueError, match="max_classes"):
        FactorClassificationPrior(min_classes=3, max_classes=2)
    with pytest.raises(ValueError, match="n_features"):
        FactorClassificationPrior().sample(2, 10, torch.Generator(), n_features=9)
    with pytest.raises(TypeError, match="generator"):
        FactorClassificationPrior().sample(2, 10, 0)
    prior = FactorClassificationPrior(max_factors=3, max_classes=5)
    assert from_dict(json.loads(json.dumps(to_dict(prior)))) == prior
    assert prior.symmetries.permute_inputs and prior.symmetries.reflect_inputs
    assert prior.target_kind == "categorical" and prior.references() == ()
