"""A prior that is not a GP, with its own exact reference, defined here and nowhere in the package: training,
evaluation, the reference store and the estimator take it through the Prior protocol alone, with no edit to
them (issue 10's proof that adding a prior is one change in one place)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from priorfit.checkpoint import load_checkpoint
from priorfit.config import register
from priorfit.estimators import PFNRegressor
from priorfit.evaluate import EvaluateConfig, evaluate
from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.model.transformer import ModelConfig
from priorfit.predictive import NormalPredictive
from priorfit.priors.base import Batch, Prior, Symmetries
from priorfit.priors.params import Params
from priorfit.training import TrainConfig, train


@dataclass(frozen=True, eq=False)
class WeightParams(Params):
    weights: Tensor  # batch x d


@register
@dataclass(frozen=True)
class LinearRegressionPrior:
    """Bayesian linear regression: y = x . w + noise, w ~ N(0, weight_std^2 I), x ~ U[0, 1]^d."""

    max_features: int = 2
    weight_std: float = 1.0
    noise_std: float = 0.1

    @property
    def symmetries(self) -> Symmetries:
        return Symmetries(permute_inputs=True, negate_targets=True)

    def sample(self, batch_size: int, n_points: int, generator: torch.Generator, n_features: int | None = None,
               device=None, n_context: int | None = None) -> Batch:
        d = self.max_features if n_features is None else n_features
        x = torch.rand(batch_size, n_points, d, generator=generator, dtype=torch.float64)
        w = self.weight_std * torch.randn(batch_size, d, generator=generator, dtype=torch.float64)
        noise = self.noise_std * torch.randn(batch_size, n_points, generator=generator, dtype=torch.float64)
        return Batch(x=x, y=(x @ w[:, :, None])[..., 0] + noise, params=WeightParams(weights=w))

    def references(self, settings=None) -> tuple:
        return (BayesLinearRegression(self),)


@dataclass(frozen=True)
class BayesLinearRegression:
    """The exact posterior predictive (the prior has no hyperparameters to integrate: oracle and Bayes coincide)."""

    prior: LinearRegressionPrior
    name = "oracle"
    label = "Bayes linear regression"
    kind = ReferenceKind.ORACLE

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        s2, t2 = self.prior.noise_std**2, self.prior.weight_std**2
        x, y = task.x_ctx, task.y_ctx
        precision = x.T @ x / s2 + torch.eye(x.shape[1], dtype=x.dtype) / t2
        cov = torch.linalg.inv(precision)
        mean_w = cov @ x.T @ y / s2
        mean = task.x_qry @ mean_w
        var = ((task.x_qry @ cov) * task.x_qry).sum(-1) + s2
        return ReferenceResult(NormalPredictive(mean, var))


def test_a_new_prior_trains_evaluates_and_serves_through_the_protocol(tmp_path) -> None:
    prior = LinearRegressionPrior()
    assert isinstance(prior, Prior)
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_bars=100)
    config = TrainConfig(steps=60, batch_size=16, n_points=24, min_context=2, max_context=20, lr=3e-3,
                         border_datasets=200, eval_every=60, eval_datasets=16, eval_context=(8,), checkpoint_every=60)
    result = train(prior, model, config, tmp_path, resume=False, progress=False)
    held_out = result.history[-1]
    assert math.isfinite(held_out["exact@8"]) and held_out["gap@8"] == pytest.approx(
        held_out["nll@8"] - held_out["exact@8"])

    ckpt = load_checkpoint(result.checkpoint)  # the prior round-trips through the checkpoint's JSON
    assert ckpt.prior == prior
    settings = EvaluateConfig(n_context=(4, 16), n_features=(1, 2), n_datasets=32, n_queries=16, timing_datasets=1,
                              example_context=(4,))
    report = evaluate(ckpt, settings, progress=False)
    assert report.labels["oracle"] == "Bayes linear regression" and report.kinds == {"oracle": "oracle"}
    for cell in report.cells:
        assert set(cell.references) == {"oracle"} and cell.references["oracle"].datasets == 32
        assert cell.gap("oracle") == pytest.approx(cell.pfn.nll - cell.references["oracle"].nll)
        assert -0.05 < cell.bar_floor < cell.gap("oracle") + 0.05  # the oracle's normal moved onto the bars
    assert report.examples and "oracle" in report.examples[0]
    ensemble = evaluate(ckpt, dataclasses.replace(settings, ensemble_size=2, n_context=(8,)), progress=False,
                        examples=False)
    assert all(c.pfn_ensemble_members == 2 for c in ensemble.cells)

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(12, 2))
    y = X @ np.array([1.0, -2.0]) + 0.1 * rng.normal(size=12)
    reg = PFNRegressor(model=str(result.checkpoint)).fit(X, y)
    dist = reg.predict_distribution(rng.uniform(size=(5, 2)))
    assert dist.quantile([0.1, 0.9]).shape == (5, 2) and np.isfinite(dist.log_prob(np.zeros(5))).all()
