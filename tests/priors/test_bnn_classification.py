"""The BNN classification prior against what it states: labels drawn from the stated class probabilities, those
probabilities the softmax of the drawn network's outputs (mixed with the label noise), exchangeable classes,
and its arguments checked."""

from __future__ import annotations

import json

import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.priors import BNNClassificationPrior, BNNPrior, Fixed, Uniform
from priorfit.priors.bnn import network_outputs
from priorfit.preprocessing import context_input_scaling, scale_inputs

from conftest import check_labels_follow_stated_probabilities


def test_labels_follow_the_stated_probabilities_and_repeat_with_the_seed():
    check_labels_follow_stated_probabilities(BNNClassificationPrior(label_noise=Uniform(0.0, 0.2)))


def test_probabilities_are_the_drawn_networks_softmax_in_the_contexts_units():
    """Recomputed from the stored weights with the inputs scaled by the context's range: the same probabilities,
    and never below the label noise's share epsilon / C."""
    prior = BNNClassificationPrior(label_noise=Uniform(0.0, 0.3))
    batch = prior.sample(5, 30, torch.Generator().manual_seed(2), n_features=2, n_context=20, n_classes=4)
    params = batch.params
    lo, width = context_input_scaling(batch.x[:, :20])
    net_in = 2.0 * scale_inputs(batch.x, lo, width) - 1.0
    logits = network_outputs(net_in, params.network.weights, params.network.biases, "tanh")
    eps = params.label_noise[:, None, None]
    expected = (1 - eps) * torch.softmax(logits, -1) + eps / 4
    torch.testing.assert_close(params.probs, expected, rtol=1e-12, atol=1e-12)
    assert bool((params.probs >= eps / 4 - 1e-12).all())
    assert params.network.weights[-1].shape == (5, 16, 4)


def test_classes_are_exchangeable_and_the_read_out_scale_sets_the_sharpness():
    """Over many datasets every class is as frequent as any other (i.i.d. read-out columns); a larger read-out
    weight scale gives sharper class probabilities."""
    def draw(readout: float) -> torch.Tensor:
        network = BNNPrior(width=16, depth=2, activation="tanh", weight_std=(Fixed(1.4), Fixed(1.4), Fixed(readout)),
                           bias_std=(Fixed(0.5),) * 3, max_features=2)
        return BNNClassificationPrior(network=network).sample(
            3000, 20, torch.Generator().manual_seed(3), n_features=2, n_classes=3).params.probs

    probs = draw(2.0)
    share = probs.mean((0, 1))
    assert float((share - 1 / 3).abs().max()) < 0.02, share
    assert float(draw(8.0).max(-1).values.mean()) > float(probs.max(-1).values.mean()) + 0.1


def test_arguments_are_checked_and_the_prior_round_trips_through_its_config():
    with pytest.raises(TypeError, match="network"):
        BNNClassificationPrior(network="bnn")
    with pytest.raises(ValueError, match="label_noise"):
        BNNClassificationPrior(label_noise=Uniform(0.0, 2.0))
    with pytest.raises(ValueError, match="label_noise"):
        BNNClassificationPrior(label_noise=Fixed(-0.1))
    with pytest.raises(ValueError, match="max_classes"):
        BNNClassificationPrior(min_classes=3, max_classes=2)
    with pytest.raises(ValueError, match="n_features"):
        BNNClassificationPrior().sample(2, 10, torch.Generator(), n_features=9)
    prior = BNNClassificationPrior(label_noise=Uniform(0.0, 0.1), max_classes=5)
    assert from_dict(json.loads(json.dumps(to_dict(prior)))) == prior
    assert prior.symmetries.permute_inputs and prior.symmetries.reflect_inputs
    assert prior.target_kind == "categorical"
