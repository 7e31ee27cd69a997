"""Tempered SMC for BNN classification against importance sampling from the prior (slow and obvious: prior draws
of the network weighted by the likelihood of the context's labels), on a small network whose read-out scale and
label noise are sampled too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from priorfit.exact.bnn_classification import BNNClassificationSMC, bnn_classification_predictive
from priorfit.exceptions import InputDataError
from priorfit.priors import BNNClassificationPrior, BNNPrior, Fixed, LogNormal, Uniform

F64 = torch.float64


def _prior(d: int = 1, label_noise=None) -> BNNClassificationPrior:
    network = BNNPrior(width=4, depth=1, activation="tanh", weight_std=(Fixed(2.0), LogNormal(1.0, 0.5)),
                       bias_std=(Fixed(0.5), Fixed(0.5)), max_features=d)
    label_noise = Uniform(0.0, 0.2) if label_noise is None else label_noise
    return BNNClassificationPrior(network=network, label_noise=label_noise, max_classes=3)


def _importance_sampling(prior, x_ctx, y_ctx, x_qry, draws: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior and prior predictive class probabilities by weighting prior draws by the likelihood."""
    gen = torch.Generator().manual_seed(seed)
    n_classes = int(y_ctx.max()) + 1
    params = prior.network.sample_params(draws, x_ctx.shape[1], gen, n_outputs=n_classes)
    eps = prior.label_noise.sample((draws,), gen)[:, None, None]
    both = torch.cat([x_ctx, x_qry])[None].expand(draws, -1, -1)
    probs = (1 - eps) * torch.softmax(prior.logits(params, both, x_ctx[None].expand(draws, -1, -1)), -1) \
        + eps / n_classes
    n = x_ctx.shape[0]
    log_lik = probs[:, :n].gather(2, y_ctx.long()[None, :, None].expand(draws, -1, 1))[..., 0].log().sum(1)
    w = (log_lik - log_lik.max()).exp()
    return (w[:, None, None] * probs[:, n:]).sum(0) / w.sum(), probs[:, n:].mean(0)


def _data(d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seven context points, three classes in runs along the first feature (the second, if any, a fixed spread),
    and eight queries beyond and between them."""
    first = torch.tensor([0.0, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0], dtype=F64)
    other = torch.tensor([0.9, 0.1, 0.6, 0.3, 1.0, 0.0, 0.5], dtype=F64)
    x_ctx = torch.stack([first, other][:d], dim=1)
    x_qry = torch.stack([torch.linspace(-0.2, 1.2, 8, dtype=F64), torch.linspace(1.0, 0.0, 8, dtype=F64)][:d], 1)
    return x_ctx, torch.tensor([0, 0, 0, 2, 1, 1, 1], dtype=F64), x_qry


@pytest.mark.parametrize("d, label_noise", [(1, None), (2, Fixed(0.0))], ids=["d1-noise-sampled", "d2-no-noise"])
def test_smc_predictive_matches_importance_sampling(d, label_noise):
    """Two features exercise the first layer's fan-in; a fixed zero label noise is the path of the benchmark's
    prior (no noise site)."""
    prior = _prior(d, label_noise)
    x_ctx, y_ctx, x_qry = _data(d)
    pred = bnn_classification_predictive(prior, x_ctx, y_ctx, x_qry, num_particles=512, num_runs=2, seed=0)
    exact, before = _importance_sampling(prior, x_ctx, y_ctx, x_qry, 400_000, seed=1)
    assert pred.probs.shape == (8, 3)
    np.testing.assert_allclose(pred.probs.sum(1).numpy(), 1.0, rtol=1e-12)
    error = float((pred.probs - exact).abs().max())
    assert float((exact - before).abs().max()) > 0.2  # the data moved the predictive: the check can fail
    assert error < 0.04, (error, pred.probs, exact)
    assert pred.diagnostics["method"] == "tempered_smc" and pred.diagnostics["max_r_hat"] < 1.1


def test_the_reference_checks_its_data_against_the_prior():
    x = torch.rand(4, 1, dtype=F64)
    with pytest.raises(InputDataError, match="every class"):
        bnn_classification_predictive(_prior(), x, torch.tensor([0, 0, 2, 2], dtype=F64), x)
    with pytest.raises(InputDataError, match="1 classes; the prior draws 2 to 3"):
        bnn_classification_predictive(_prior(), x, torch.zeros(4, dtype=F64), x)
    with pytest.raises(InputDataError, match="4 classes"):
        bnn_classification_predictive(_prior(), x, torch.tensor([0, 1, 2, 3], dtype=F64), x)
    with pytest.raises(InputDataError, match="2 features"):
        bnn_classification_predictive(_prior(), torch.rand(4, 2, dtype=F64), torch.tensor([0, 1, 0, 1], dtype=F64),
                                      torch.rand(2, 2, dtype=F64))
    with pytest.raises(TypeError, match="BNNClassificationPrior"):
        bnn_classification_predictive(BNNPrior(), x, torch.tensor([0, 1, 0, 1], dtype=F64), x)
    reference = _prior().references()[0]
    assert isinstance(reference, BNNClassificationSMC)
    assert reference.longer(2).num_mcmc_steps == 2 * reference.num_mcmc_steps
