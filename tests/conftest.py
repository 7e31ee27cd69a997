"""Shared fixtures: a tiny PFN trained in seconds on a small GP prior with hyperpriors (2 features)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from priorfit.model.transformer import ModelConfig
from priorfit.preprocessing import context_input_scaling, scale_inputs
from priorfit.priors.gp import GPPrior, cholesky_with_jitter
from priorfit.priors.hyperpriors import LogNormal, Normal
from priorfit.priors.kernels import Matern, Scale
from priorfit.training import TrainConfig, train

torch.set_num_threads(int(os.environ.get("PRIORFIT_TEST_THREADS", "2")))  # 1 beside a training run

TINY_MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_bars=100)
TINY_TRAIN = TrainConfig(steps=40, batch_size=16, n_points=24, min_context=2, max_context=20, lr=3e-3,
                         border_datasets=200, eval_every=40, eval_datasets=16, eval_context=(8,),
                         checkpoint_every=40, seed=0)


def tiny_prior(max_features: int = 2) -> GPPrior:
    return GPPrior(
        kernel=Scale(Matern(nu=2.5, lengthscale=LogNormal(-1.0, 0.5)), outputscale=LogNormal(0.0, 0.3)),
        noise_std=LogNormal(-2.0, 0.5),
        mean=Normal(0.0, 0.3),
        max_features=max_features,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Path of a tiny trained checkpoint (40 steps; its predictions are rough but well-formed)."""
    out = tmp_path_factory.mktemp("tiny_model")
    result = train(tiny_prior(), TINY_MODEL, TINY_TRAIN, out, resume=False, progress=False)
    return result.checkpoint


@pytest.fixture(scope="session")
def tiny_invariant_checkpoint(tmp_path_factory):
    """Path of a tiny model trained 40 steps on the invariant version of the tiny prior (it sees only its
    context's units)."""
    from priorfit.priors.invariant import InvariantGPPrior

    out = tmp_path_factory.mktemp("tiny_invariant_model")
    model = dataclasses.replace(TINY_MODEL, invariant=True)
    return train(InvariantGPPrior(tiny_prior()), model, TINY_TRAIN, out, resume=False, progress=False).checkpoint


@pytest.fixture(scope="session")
def wide_checkpoint(tmp_path_factory):
    """A barely trained model accepting 10 features and 250 context points: for scikit-learn's API checks,
    which fit data sets of that size. It is trained for 3 steps, so its predictions are not meant to be good."""
    out = tmp_path_factory.mktemp("wide_model")
    model = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=10, n_bars=50)
    config = TrainConfig(steps=3, batch_size=2, n_points=256, min_context=2, max_context=250, border_datasets=20,
                         eval_every=3, eval_datasets=2, eval_context=(4,), checkpoint_every=3)
    return train(tiny_prior(max_features=10), model, config, out, resume=False, progress=False).checkpoint


def tiny_label_prior(max_features: int = 2, max_classes: int = 4):
    """A GP classification prior whose classes are sharply separated by the inputs (outputscale 9)."""
    from priorfit.priors import RBF, Fixed, GPClassificationPrior

    gp = GPPrior(kernel=Scale(RBF(lengthscale=LogNormal(-1.0, 0.3)), outputscale=Fixed(9.0)),
                 noise_std=Fixed(0.1), mean=Normal(0.0, 0.5), max_features=max_features)
    return GPClassificationPrior(gp=gp, max_classes=max_classes)


@pytest.fixture(scope="session")
def tiny_classifier_checkpoint(tmp_path_factory):
    """A tiny classifier trained 300 steps on :func:`tiny_label_prior` (2 features, up to 4 classes)."""
    out = tmp_path_factory.mktemp("tiny_classifier")
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_classes=4, invariant=True)
    config = TrainConfig(steps=300, batch_size=32, n_points=40, min_context=2, max_context=32, lr=3e-3,
                         eval_every=300, eval_datasets=16, eval_context=(16,), checkpoint_every=300)
    return train(tiny_label_prior(), model, config, out, resume=False, progress=False).checkpoint


@pytest.fixture(scope="session")
def wide_classifier_checkpoint(tmp_path_factory):
    """A barely trained classifier for 10 features, 10 classes and 250 context points: for scikit-learn's API
    checks. Trained 3 steps: its predictions are not meant to be good."""
    out = tmp_path_factory.mktemp("wide_classifier")
    model = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=10, n_classes=10, invariant=True)
    config = TrainConfig(steps=3, batch_size=2, n_points=256, min_context=2, max_context=250, eval_every=3,
                         eval_datasets=2, eval_context=(4,), checkpoint_every=3)
    return train(tiny_label_prior(10, 10), model, config, out, resume=False, progress=False).checkpoint


def check_labels_follow_stated_probabilities(prior) -> None:
    """What every prior of labels that states its class probabilities (LabelProbabilities) must do: repeat with
    its seed, draw finite float64 inputs, state probabilities that sum to 1, draw labels calibrated to them, and
    give the query points' probabilities as its conditional."""
    from priorfit.priors import CategoricalTargets, LabelProbabilities

    batch = prior.sample(400, 40, torch.Generator().manual_seed(1), n_features=3, n_context=30, n_classes=3)
    again = prior.sample(400, 40, torch.Generator().manual_seed(1), n_features=3, n_context=30, n_classes=3)
    torch.testing.assert_close(batch.x, again.x, rtol=0, atol=0)
    torch.testing.assert_close(batch.y, again.y, rtol=0, atol=0)
    assert batch.x.shape == (400, 40, 3) and batch.x.dtype == torch.float64 and torch.isfinite(batch.x).all()
    assert isinstance(batch.params, LabelProbabilities) and batch.params.probs.shape == (400, 40, 3)
    np.testing.assert_allclose(batch.params.probs.sum(-1).numpy(), 1.0, rtol=1e-12)
    assert set(np.unique(batch.y.numpy())) == {0.0, 1.0, 2.0}
    worst, allowed = label_calibration_error(batch.params.probs.numpy(), batch.y.numpy())
    assert worst < allowed, (worst, allowed)
    targets = prior.conditional(batch, 30)
    assert isinstance(targets, CategoricalTargets)
    np.testing.assert_array_equal(targets.probs.numpy(), batch.params.probs[:, 30:].numpy())


def label_calibration_error(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Largest |frequency - mean probability| of class 0 over ten probability bins, and its 4-SE allowance."""
    p0, hit = probs[..., 0].ravel(), (labels.ravel() == 0)
    worst, allowed = 0.0, 0.0
    for lo in np.linspace(0.0, 0.9, 10):
        inside = (p0 >= lo) & (p0 < lo + 0.1)
        if inside.sum() < 200:
            continue
        gap = abs(hit[inside].mean() - p0[inside].mean())
        if gap > worst:
            worst, allowed = gap, 4 * np.sqrt(0.25 / inside.sum()) + 0.005
    return worst, allowed


def gp_classification_importance_sampling(prior, x_ctx, y_ctx, x_qry, n_classes, draws=400_000, seed=0):
    """The exact posterior predictive of a GP classification prior by self-normalised importance sampling:
    E[softmax(g*) | labels] with (hyperparameters, means, latents) drawn from the prior, weighted by the labels'
    likelihood. Returns the probabilities (`m x C`) and the weights' effective sample size."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.cat([x_ctx, x_qry])[None]
    lo, width = context_input_scaling(x_ctx[None])
    at = scale_inputs(x, lo, width)
    n, total = x_ctx.shape[0], x.shape[1]
    probs_sum, weight_sum, squares = 0.0, 0.0, 0.0
    for _ in range(draws // 20_000):
        params = prior.gp.sample_params(20_000, x_ctx.shape[1], generator)
        means = prior.gp.mean.sample((20_000, n_classes), generator).double()
        cov = prior.gp.kernel.forward(params.kernel, at.expand(20_000, -1, -1), at.expand(20_000, -1, -1))
        chol = cholesky_with_jitter(cov, prior.gp.jitter)
        z = torch.randn(20_000, total, n_classes, generator=generator, dtype=torch.float64)
        eta = torch.randn(20_000, total, n_classes, generator=generator, dtype=torch.float64)
        g = means[:, None, :] + chol @ z + params.noise_std[:, None, None] * eta
        labels = y_ctx.long()[None, :, None].expand(20_000, -1, 1)
        log_lik = torch.log_softmax(g[:, :n], -1).gather(2, labels).sum((1, 2))
        w = log_lik.exp()
        probs_sum = probs_sum + (w[:, None, None] * torch.softmax(g[:, n:], -1)).sum(0)
        weight_sum += float(w.sum())
        squares += float(w.square().sum())
    return probs_sum / weight_sum, weight_sum ** 2 / squares
