"""Kumaraswamy input warping as a kernel: its formula, the identity at a = b = 1, its GPyTorch twin, and NUTS on
its array-API body against importance sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from priorfit.exact import importance_predictive, marginal_predictive
from priorfit.priors import RBF, Fixed, GPPrior, KumaraswamyWarp, LogNormal, Matern, Scale
from priorfit.priors.warping import kumaraswamy_warp

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_formula_identity_and_twin() -> None:
    kernel = KumaraswamyWarp(Scale(RBF()))
    params = kernel.sample_params(3, 2, gen(0))
    x1, x2 = torch.rand(3, 6, 2, generator=gen(1), dtype=F64), torch.rand(3, 4, 2, generator=gen(2), dtype=F64)
    got = kernel.forward(params, x1, x2)
    for i in range(3):  # by hand: warp each coordinate, then the scaled RBF
        a, b = params.concentration1[i].numpy(), params.concentration0[i].numpy()
        w1, w2 = 1 - (1 - x1[i].numpy() ** a) ** b, 1 - (1 - x2[i].numpy() ** a) ** b
        ls, s = params.base.base.lengthscale[i].numpy(), float(params.base.outputscale[i])
        ref = s * np.exp(-0.5 * (((w1[:, None] - w2[None]) / ls) ** 2).sum(-1))
        np.testing.assert_allclose(got[i].numpy(), ref, rtol=1e-10)
        twin = kernel.to_gpytorch(2)
        kernel.set_gpytorch_params(twin, params.map(lambda t: t[i]))
        with torch.no_grad():
            torch.testing.assert_close(twin(x1[i], x2[i]).to_dense(), got[i])
        back = kernel.get_gpytorch_params(twin)
        torch.testing.assert_close(back.concentration0, params.concentration0[i])
    ones = type(params)(concentration1=torch.ones(3, 2, dtype=F64), concentration0=torch.ones(3, 2, dtype=F64),
                        base=params.base)
    torch.testing.assert_close(kernel.forward(ones, x1, x2), kernel.base.forward(params.base, x1, x2))
    torch.testing.assert_close(kernel.diag(params, x1), torch.diagonal(kernel.forward(params, x1, x1), 0, -2, -1))


def test_the_warp_is_a_monotone_map_of_the_unit_interval() -> None:
    x = torch.linspace(0, 1, 101, dtype=F64)[None, :, None]
    for a, b in ((0.3, 2.0), (2.5, 0.4), (1.0, 1.0)):
        w = kumaraswamy_warp(x, torch.full((1, 1), a, dtype=F64), torch.full((1, 1), b, dtype=F64))[0, :, 0]
        assert (w.diff() >= 0).all() and float(w[-1] - w[0]) > 0.95 and 0 <= float(w.min()) <= float(w.max()) <= 1
    assert not GPPrior(kernel=KumaraswamyWarp(), max_features=2).symmetries.reflect_inputs


def test_nuts_integrates_the_concentrations() -> None:
    prior = GPPrior(kernel=KumaraswamyWarp(Matern(ard=False, lengthscale=LogNormal(-1.0, 0.4)),
                                           concentration1=LogNormal(0.0, 0.5), concentration0=LogNormal(0.0, 0.5)),
                    noise_std=LogNormal(-2.0, 0.3), max_features=1)
    batch = prior.sample(1, 12, gen(3), n_features=1)
    x_c, y_c, x_q, y_q = batch.x[0, :7], batch.y[0, :7], batch.x[0, 7:], batch.y[0, 7:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nuts = marginal_predictive(prior, x_c, y_c, x_q, num_warmup=300, num_samples=400, num_chains=2, seed=1)
    assert nuts.diagnostics["max_r_hat"] < 1.05
    assert {"concentration1", "concentration0"} <= set(nuts.diagnostics["r_hat"])
    ref = importance_predictive(prior, x_c, y_c, x_q, num_samples=20000, seed=2)
    assert np.abs(nuts.log_prob(y_q) - ref.log_prob(y_q)).max() < 0.1


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="base"):
        KumaraswamyWarp(base=None)
    with pytest.raises(ValueError, match="warp once"):
        KumaraswamyWarp(base=KumaraswamyWarp())
    with pytest.raises(TypeError, match="concentration1"):
        KumaraswamyWarp(concentration1=1.0)
    assert KumaraswamyWarp(concentration1=Fixed(1.0)).concentration1 == Fixed(1.0)
