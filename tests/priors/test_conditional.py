"""The priors' exact conditionals of held-out targets (Rao-Blackwellised training targets) and the loss built on
them: each conditional against the prior's own draws and the exact GP, the closed-form cross-entropy against
Monte Carlo and quadrature, and the training gradient's mean and variance against the sampled target's."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from scipy import integrate, stats

from priorfit.exact.gp import GPOracle
from priorfit.exact.reference import Task
from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.loss import pfn_expected_nll, pfn_nll
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.priors import GPPrior
from priorfit.priors.bnn import BNNPrior
from priorfit.priors.conditional import query_conditional
from priorfit.priors.hyperpriors import InverseGamma, LogNormal
from priorfit.priors.invariant import InvariantGPPrior
from priorfit.priors.kernels import Linear, Matern, Scale
from priorfit.priors.mixture import MixturePrior
from priorfit.priors.student_t import StudentTNoisePrior, StudentTProcessPrior
from priorfit.training import TrainConfig

from conftest import tiny_prior

F64 = torch.float64


def _gp() -> GPPrior:
    return tiny_prior(max_features=2)


def _invariant_sum() -> InvariantGPPrior:
    kernel = Scale(Linear(), outputscale=LogNormal(-1.0, 1.5)) + Scale(Matern(nu=2.5, ard=True),
                                                                        outputscale=LogNormal(0.0, 1.0))
    return InvariantGPPrior(GPPrior(kernel=kernel, noise_std=LogNormal(-1.5, 1.25), max_features=2))


def _shipped_job_prior(config: str):
    from pathlib import Path

    from priorfit.config import load_json
    from priorfit.training import TrainJob

    return load_json(Path(__file__).resolve().parents[2] / "configs" / config, TrainJob).prior


PRIORS = {
    "bo_job": lambda: _shipped_job_prior("bo_stage2.json"),  # warped Matern ARD on mixed inputs, d <= 8
    "robust_job": lambda: _shipped_job_prior("robust_stage3.json"),
    "gp": _gp,
    "invariant": _invariant_sum,
    "student_t_noise": lambda: StudentTNoisePrior(_gp()),
    "student_t_process": lambda: StudentTProcessPrior(_gp(), mixing=InverseGamma(2.0, 2.0)),
    "bnn": lambda: BNNPrior(max_features=2),
    "mixture": lambda: MixturePrior((InvariantGPPrior(_gp()), BNNPrior(max_features=2)), (1.0, 1.0)),
}


@pytest.mark.parametrize("name", sorted(PRIORS))
@pytest.mark.parametrize("n_context", [1, 6])
def test_query_targets_standardised_by_their_conditional_are_standard_normal(name, n_context):
    """Over the prior's own draws, (y* - mean) / std is N(0, 1) exactly when the conditional is the targets' true
    distribution given what the dataset was drawn with; a missing noise term, a wrong input scaling or a wrong
    variance factor shows up as a variance off 1 or a shifted mean."""
    prior = PRIORS[name]()
    batch = prior.sample(3000, n_context + 2, torch.Generator().manual_seed(1), n_context=n_context)
    target = query_conditional(prior, batch, n_context)
    z = ((batch.y[:, n_context:] - target.mean) / target.std).reshape(-1).numpy()
    assert abs(z.mean()) < 4.0 / math.sqrt(z.size)
    assert abs(z.var() - 1.0) < 4.0 * math.sqrt(2.0 / z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    if n_context > 1:
        # a normal given the latent values alone, ignoring the context, would also standardise to N(0, 1); the
        # exact conditional also sits close to the targets: their squared distance to its mean is well below their
        # spread (median ratios 0.01-0.47 for these priors, near 1 for a conditional that ignores the context)
        y = batch.y[:, n_context:]
        spread = (y - y.median()).square().median()
        assert float((y - target.mean).square().median()) < 0.6 * float(spread)


def test_a_gp_s_conditional_is_the_exact_gp_with_the_true_hyperparameters():
    prior = _gp()
    batch = prior.sample(3, 12, torch.Generator().manual_seed(2), n_features=2)
    target = prior.conditional(batch, 9)
    oracle = GPOracle(prior)
    for i in range(3):
        task = Task(x_ctx=batch.x[i, :9], y_ctx=batch.y[i, :9], x_qry=batch.x[i, 9:],
                    truth=batch.params.map(lambda t: t[i:i + 1]))
        exact = oracle.predict(task, 0).predictive
        torch.testing.assert_close(target.mean[i], exact.loc.to(F64), rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(target.std[i].square(), exact.var.to(F64), rtol=1e-6, atol=1e-8)


def test_a_prior_without_a_conditional_gives_none():
    class Plain:
        max_features = 1

    assert query_conditional(Plain(), None, 3) is None


# -- the loss ----------------------------------------------------------------------------------------------------

BARS = BarDistribution.from_samples(torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=F64), 40)


@pytest.mark.parametrize("mean, std", [(0.0, 1.0), (0.3, 0.05), (2.9, 0.7), (-5.0, 1.5), (9.0, 3.0)])
def test_expected_nll_is_the_nll_integrated_over_the_normal(mean, std):
    """Against quadrature over the whole line (inner bars, both tails): a normal inside, one astride a tail
    border, and ones mostly in a tail."""
    logits = torch.randn(40, generator=torch.Generator().manual_seed(3), dtype=F64)
    closed = float(BARS.expected_nll(logits, torch.tensor(mean, dtype=F64), torch.tensor(std, dtype=F64)))

    def integrand(y: float) -> float:
        nll = float(BARS.nll(logits, torch.tensor(y, dtype=F64)))
        return nll * stats.norm.pdf(y, mean, std)

    points = [b for b in BARS.borders.tolist() if abs(b - mean) < 12 * std]
    lo, hi = mean - 12 * std, mean + 12 * std
    edges = sorted({lo, hi, *points})
    quad = sum(integrate.quad(integrand, a, b, limit=200)[0] for a, b in zip(edges[:-1], edges[1:]))
    assert closed == pytest.approx(quad, abs=1e-6)


def test_expected_nll_gradient_is_softmax_minus_the_normal_s_masses():
    logits = torch.randn(2, 40, dtype=F64, requires_grad=True)
    mean, std = torch.tensor([0.1, -1.0], dtype=F64), torch.tensor([0.4, 2.0], dtype=F64)
    BARS.expected_nll(logits, mean, std).sum().backward()
    masses = torch.softmax(BARS.project_normal(mean, std), -1)
    torch.testing.assert_close(logits.grad, torch.softmax(logits.detach(), -1) - masses)


def test_expected_nll_in_float32_matches_float64():
    """Training computes it on float32 logits (float32 erfc); the values agree with float64 to float32's
    resolution, normals in the bulk and deep in a tail alike."""
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(4), dtype=F64)
    mean = torch.tensor([0.0, 0.3, -2.9, 4.0, 9.0, -12.0], dtype=F64)
    std = torch.tensor([1.0, 0.05, 0.7, 0.3, 3.0, 0.5], dtype=F64)
    exact = BARS.expected_nll(logits, mean, std)
    fast = BARS.expected_nll(logits.float(), mean.float(), std.float())
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast.double(), exact, rtol=1e-5, atol=1e-4)


def test_expected_nll_rejects_a_non_positive_std():
    with pytest.raises(ValueError, match="std must be positive"):
        BARS.expected_nll(torch.zeros(2, 40), torch.zeros(2), torch.tensor([1.0, 0.0]))


def _gradients(model, bar, prior, n_ctx, seeds, rao_blackwell):
    """The training loss's gradient (flattened) on one batch per seed, with either target."""
    grads, losses = [], []
    for seed in seeds:
        batch = prior.sample(8, n_ctx + 8, torch.Generator().manual_seed(seed), n_context=n_ctx)
        x, y = batch.x.float(), batch.y.float()
        logits = model(x[:, :n_ctx], y[:, :n_ctx], x[:, n_ctx:])
        affine = model.target_affine(y[:, :n_ctx])
        if rao_blackwell:
            target = prior.conditional(batch, n_ctx)
            loss = pfn_expected_nll(bar, logits, *affine, target.mean, target.std).mean()
        else:
            loss = pfn_nll(bar, logits, *affine, y[:, n_ctx:]).mean()
        model.zero_grad()
        loss.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).double())
        losses.append(float(loss))
    return torch.stack(grads), torch.tensor(losses, dtype=F64)


def test_the_rao_blackwellised_loss_has_the_same_mean_and_a_less_noisy_gradient():
    """On an invariant model's training path: over the same datasets the closed-form loss averages what the
    sampled one does (to the sampled one's Monte Carlo error), and its gradient varies less between batches."""
    torch.manual_seed(0)
    prior = InvariantGPPrior(_gp())
    model = PFNTransformer(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=32, max_features=2, n_bars=60,
                                       invariant=True))
    samples = prior.sample(400, 20, torch.Generator().manual_seed(9), n_context=10).y[:, 10:]
    bar = BarDistribution.from_samples(samples.reshape(-1), 60)
    seeds = range(40)
    g_rb, l_rb = _gradients(model, bar, prior, 10, seeds, True)
    g_mc, l_mc = _gradients(model, bar, prior, 10, seeds, False)
    diff = l_mc - l_rb  # same datasets: the difference is the targets' sampling noise alone
    assert abs(float(diff.mean())) < 4.0 * float(diff.std()) / math.sqrt(len(seeds))
    var_rb = float(g_rb.var(0).sum())
    var_mc = float(g_mc.var(0).sum())
    assert var_rb < 0.8 * var_mc


def test_train_config_checks_rao_blackwell():
    with pytest.raises(ValueError, match="rao_blackwell"):
        dataclasses.replace(TrainConfig(), rao_blackwell="yes")
