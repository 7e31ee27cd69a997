"""The BNN prior and its NUTS reference: the network against explicit loops, its wide limit against the NNGP
kernel, and NUTS against importance sampling over the weights."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from priorfit.exact.bnn import BNNPosteriorSMC, bnn_marginal_predictive, bnn_smc_predictive
from priorfit.exact.reference import ReferenceKind
from priorfit.priors import NNGP, Fixed, LogNormal
from priorfit.priors.bnn import BNNPrior, network_forward

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_network_against_loops_and_fan_in_scaling() -> None:
    prior = BNNPrior(width=5, depth=2, activation="tanh", max_features=3)
    params = prior.sample_params(2, 3, gen(0))
    x = torch.rand(2, 4, 3, generator=gen(1), dtype=F64)
    f = network_forward(x, params.weights, params.biases, "tanh")
    for b in range(2):
        for i in range(4):
            h = x[b, i].numpy()
            for layer in range(3):
                h = h @ params.weights[layer][b].numpy() + params.biases[layer][b].numpy()
                h = np.tanh(h) if layer < 2 else h
            assert float(f[b, i]) == pytest.approx(float(h[0]), rel=1e-12)
    many = BNNPrior.with_scales(2.0, 0.3, width=64, max_features=4).sample_params(200, 4, gen(2))
    assert float(many.weights[0].std()) == pytest.approx(2.0 / math.sqrt(4), rel=0.05)
    assert float(many.weights[1].std()) == pytest.approx(2.0 / math.sqrt(64), rel=0.05)
    assert float(many.biases[1].std()) == pytest.approx(0.3, rel=0.05)
    plain = BNNPrior.with_scales(1.0, 1.0, width=64, fan_in=False).sample_params(200, 1, gen(3))
    assert float(plain.weights[1].std()) == pytest.approx(1.0, rel=0.05)


def test_wide_networks_are_the_nngp() -> None:
    """With fan-in scaling and one scale for every layer, the prior's functions at a few points have the NNGP
    kernel's covariance (width 1024, 3000 networks: about 3% Monte Carlo error)."""
    sw, sb = 1.8, 0.2
    prior = BNNPrior.with_scales(math.sqrt(sw), math.sqrt(sb), width=1024, depth=1, max_features=2)
    x = torch.rand(1, 4, 2, generator=gen(4), dtype=F64)
    fs = []
    for chunk in range(6):
        params = prior.sample_params(500, 2, gen(10 + chunk))
        fs.append(network_forward(2 * x.expand(500, -1, -1) - 1, params.weights, params.biases, "relu"))
    f = torch.cat(fs)
    empirical = f.T @ f / f.shape[0]
    kernel = NNGP(depth=1, weight_variance=Fixed(sw), bias_variance=Fixed(sb))
    exact = kernel.forward(kernel.sample_params(1, 2, gen(0)), x, x)[0]
    assert float((empirical - exact).abs().max()) < 0.1 * float(exact.abs().max())


def importance_reference(prior, x_ctx, y_ctx, x_qry, y_qry, draws: int = 200_000, grid: int = 200,
                         chunk: int = 10_000):
    """log p(y_q | y_c) per query by importance sampling over the weights and the noise (prior draws), the
    location integrated in closed form and the log scale on a grid (p(sigma) ~ 1/sigma: flat in log sigma);
    and the weights' effective sample size. In chunks of draws, so memory stays bounded."""
    from priorfit.preprocessing import context_input_scaling, scale_inputs

    lo, width = context_input_scaling(x_ctx[None])
    z_c, z_q = (2 * scale_inputs(t[None], lo, width)[0] - 1 for t in (x_ctx, x_qry))
    n, y_qry = y_ctx.shape[0], torch.as_tensor(y_qry)
    log_sigma = torch.linspace(-8, 5, grid, dtype=F64)
    sigma = log_sigma.exp()[None, :, None]  # 1 x G x 1
    g = gen(99)
    log_ws, log_joint = [], []
    for _ in range(draws // chunk):
        params = prior.sample_params(chunk, x_ctx.shape[1], g)
        f_c = network_forward(z_c.expand(chunk, -1, -1), params.weights, params.biases, prior.activation)
        f_q = network_forward(z_q.expand(chunk, -1, -1), params.weights, params.biases, prior.activation)
        tau = sigma[..., 0] * params.noise_std[:, None]  # S x G: the noise sd in y's units
        r = y_ctx[None, None] - sigma * f_c[:, None]  # S x G x n: y - sigma f = mu + noise
        mu_hat = r.mean(-1)
        ss = (r - mu_hat[..., None]).square().sum(-1)
        # integral over mu of prod_i N(r_i | mu, tau^2): sqrt(2 pi tau^2 / n) (2 pi tau^2)^(-n/2) exp(-ss / 2 tau^2)
        log_w = (-0.5 * ss / tau**2 - (n - 1) * tau.log() - 0.5 * (n - 1) * math.log(2 * math.pi)
                 - 0.5 * math.log(n)).reshape(-1)
        pred_mean = mu_hat[..., None] + sigma * f_q[:, None]  # S x G x m
        pred_var = (tau**2 * (1 + 1 / n))[..., None]
        log_pred = (-0.5 * (y_qry[None, None] - pred_mean).square() / pred_var
                    - 0.5 * torch.log(2 * math.pi * pred_var)).reshape(-1, y_qry.shape[0])
        log_ws.append(log_w)
        log_joint.append(torch.logsumexp(log_w[:, None] + log_pred, 0))
    log_w = torch.cat(log_ws)
    ess = float(1 / torch.softmax(log_w, 0).square().sum())
    return (torch.logsumexp(torch.stack(log_joint), 0) - torch.logsumexp(log_w, 0)).numpy(), ess


def test_nuts_against_importance_sampling() -> None:
    prior = BNNPrior(width=4, depth=1, weight_std=(Fixed(1.5), Fixed(1.0)), bias_std=(Fixed(0.5), Fixed(0.5)),
                     noise_std=LogNormal(-1.5, 0.5), max_features=1)
    batch = prior.sample(1, 10, gen(5), n_context=4)
    x_c, y_c, x_q, y_q = batch.x[0, :4], batch.y[0, :4], batch.x[0, 4:], batch.y[0, 4:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nuts = bnn_marginal_predictive(prior, x_c, y_c, x_q, num_warmup=500, num_samples=1000, seed=2)
    assert nuts.diagnostics["max_r_hat"] < 1.05
    assert "f_query" in nuts.diagnostics["r_hat"] and not any(k.startswith("z_") for k in nuts.diagnostics["r_hat"])
    reference, ess = importance_reference(prior, x_c, y_c, x_q, y_q)
    assert ess > 500
    assert abs(float(nuts.log_prob(y_q).mean() - reference.mean())) < 0.05
    assert np.abs(nuts.log_prob(y_q) - reference).max() < 0.15


def test_tempered_smc_against_importance_sampling() -> None:
    """The SMC reference (start draws through the hyperprior of a sampled layer scale; the location integrated out
    and the scale whitened) against importance sampling over the prior."""
    prior = BNNPrior(width=4, depth=1, weight_std=(LogNormal(0.4, 0.3), Fixed(1.0)),
                     bias_std=(Fixed(0.5), Fixed(0.5)), noise_std=LogNormal(-1.5, 0.5), max_features=1)
    batch = prior.sample(1, 10, gen(6), n_context=4)
    x_c, y_c, x_q, y_q = batch.x[0, :4], batch.y[0, :4], batch.x[0, 4:], batch.y[0, 4:]
    smc = bnn_smc_predictive(prior, x_c, y_c, x_q, num_particles=512, num_runs=2, seed=3)
    diag = smc.diagnostics
    assert diag["method"] == "tempered_smc" and diag["max_r_hat"] < 1.05
    assert {"mean_query", "weight_std.0", "noise_std", "log_abs_scale"} == set(diag["r_hat"])  # not the weights
    assert len(diag["log_evidence"]) == 2 and min(diag["temperatures"]) >= 1
    reference, ess = importance_reference(prior, x_c, y_c, x_q, y_q)
    assert ess > 500
    assert abs(float(smc.log_prob(y_q).mean() - reference.mean())) < 0.05
    assert np.abs(smc.log_prob(y_q) - reference).max() < 0.15
    with pytest.raises(ValueError, match="at least 2 context points"):
        bnn_smc_predictive(prior, x_c[:1], y_c[:1], x_q)


def test_references_and_arguments() -> None:
    assert BNNPrior().references()[0].kind is ReferenceKind.MARGINAL
    assert isinstance(BNNPrior().references()[0], BNNPosteriorSMC)
    assert BNNPrior(max_features=2).symmetries.reflect_inputs
    with pytest.raises(TypeError, match="weight_std"):
        BNNPrior(depth=3)  # three hidden layers need four scales
    with pytest.raises(ValueError, match="activation"):
        BNNPrior(activation="gelu")
    with pytest.raises(ValueError, match="width"):
        BNNPrior(width=0)


def test_a_stalled_smc_run_is_a_failed_reference(monkeypatch) -> None:
    import priorfit.exact.bnn as bnn_module
    from priorfit.exact.reference import Task

    def stalled(*args, **kwargs):
        raise bnn_module.SMCStalled("no progress")

    monkeypatch.setattr(bnn_module, "bnn_smc_predictive", stalled)
    x = torch.rand(4, 1, dtype=F64)
    result = BNNPosteriorSMC(BNNPrior()).predict(Task(x_ctx=x, y_ctx=x[:, 0], x_qry=x), seed=0)
    assert result.failed


def test_smc_reruns_with_more_moves() -> None:
    from priorfit.exact.reference import longer_chains

    reference = BNNPosteriorSMC(BNNPrior())
    assert longer_chains(reference).num_mcmc_steps == 4 * reference.num_mcmc_steps
