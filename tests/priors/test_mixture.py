"""Mixtures of priors: component frequencies, each dataset from its own component, the oracle, configs and
training."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.exact.reference import ReferenceKind, Task
from priorfit.priors import GPPrior, InvariantGPPrior, MixturePrior, StudentTNoisePrior


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_gps() -> MixturePrior:
    smooth = GPPrior.fixed_rbf(lengthscale=0.5, noise_std=0.05)
    rough = GPPrior.fixed_rbf(lengthscale=0.05, noise_std=0.3)
    return MixturePrior(priors=(smooth, rough), weights=(3.0, 1.0))


def test_components_by_weight_and_each_dataset_from_its_own() -> None:
    prior = two_gps()
    batch = prior.sample(4000, 5, gen(0))
    share = float(batch.params.component.double().mean())
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4000)
    # whitened by its own component's covariance, every dataset's y is N(0, 1); by the other's, it is not
    for k, part in enumerate(batch.params.parts):
        mine = batch.params.component == k
        gp = prior.priors[k]
        cov = gp.covariance(part, batch.x, batch.x) + (part.noise_std.square() + gp.jitter)[:, None, None] * torch.eye(5)
        z = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), batch.y[..., None], upper=False)[..., 0]
        assert abs(float(z[mine].var()) - 1) < 0.1
        assert abs(float(z[~mine].var()) - 1) > 0.2  # the wrong component whitens it 0.72 or 1.5+


def test_oracle_is_the_component_s_and_config_round_trip() -> None:
    prior = two_gps()
    (oracle,) = prior.references()
    assert oracle.kind is ReferenceKind.ORACLE
    batch = prior.sample(6, 12, gen(1))
    for i in range(6):
        truth = batch.params.map(lambda t: t[i:i + 1])
        task = Task(x_ctx=batch.x[i, :8], y_ctx=batch.y[i, :8], x_qry=batch.x[i, 8:], truth=truth)
        k = int(batch.params.component[i])
        own = prior.priors[k].references()[0].predict(dataclasses.replace(task, truth=truth.parts[k]), 0)
        np.testing.assert_allclose(oracle.predict(task, 0).predictive.log_prob(batch.y[i, 8:]),
                                   own.predictive.log_prob(batch.y[i, 8:]))
    assert from_dict(to_dict(prior)) == prior
    assert prior.symmetries.negate_targets and prior.symmetries.reflect_inputs


def test_a_units_free_mixture_trains(tmp_path) -> None:
    from conftest import TINY_MODEL, TINY_TRAIN, tiny_prior

    from priorfit.training import train

    prior = MixturePrior(priors=(InvariantGPPrior(tiny_prior()), StudentTNoisePrior(tiny_prior())), weights=(1, 1))
    run = dataclasses.replace(TINY_TRAIN, steps=2, eval_every=2, checkpoint_every=2, border_datasets=40)
    result = train(prior, dataclasses.replace(TINY_MODEL, invariant=True), run, tmp_path, progress=False)
    assert math.isfinite(result.history[-1]["gap@8"])


def test_bad_arguments() -> None:
    smooth = GPPrior.fixed_rbf()
    with pytest.raises(TypeError, match="at least 2"):
        MixturePrior(priors=(smooth,), weights=(1.0,))
    with pytest.raises(ValueError, match="one per prior"):
        MixturePrior(priors=(smooth, smooth), weights=(1.0,))
    with pytest.raises(ValueError, match="positive"):
        MixturePrior(priors=(smooth, smooth), weights=(1.0, 0.0))
    with pytest.raises(ValueError, match="max_features"):
        MixturePrior(priors=(smooth, GPPrior(max_features=2)), weights=(1.0, 1.0))
    with pytest.raises(TypeError, match="priors\\[1\\]"):
        MixturePrior(priors=(smooth, "gp"), weights=(1.0, 1.0))
