"""Kernels: hand-computed formulas, GPyTorch twins, PSD-ness, composition, batching, validation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.priors import (
    RBF,
    CompositeParams,
    Fixed,
    Gamma,
    Kernel,
    LengthscaleParams,
    Linear,
    LinearParams,
    LogNormal,
    Matern,
    Params,
    Periodic,
    PeriodicParams,
    Product,
    Scale,
    ScaleParams,
    SpectralMixture,
    Sum,
)

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def inputs(batch: int, n: int, d: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, n, d, generator=gen(seed), dtype=F64)


def assert_same_tree(a: Params, b: Params, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Same Params types all the way down and equal arrays (dataclass ``==`` cannot compare tensors)."""
    assert type(a) is type(b), (type(a), type(b))
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, Params):
            assert_same_tree(va, vb, rtol, atol)
        elif isinstance(va, tuple):
            assert isinstance(vb, tuple) and len(va) == len(vb), (f.name, va, vb)
            for pa, pb in zip(va, vb):
                assert_same_tree(pa, pb, rtol, atol)
        else:
            assert va.shape == vb.shape, (f.name, va.shape, vb.shape)
            torch.testing.assert_close(va, vb, rtol=rtol, atol=atol)


# ---- hand-computed references (one dataset, explicit loops over point pairs, numpy) ------------------------------


def ref_rbf(x1, x2, ls):
    return np.array([[math.exp(-0.5 * np.sum(((a - b) / ls) ** 2)) for b in x2] for a in x1])


def ref_matern(x1, x2, ls, nu):
    out = np.zeros((len(x1), len(x2)))
    for i, a in enumerate(x1):
        for j, b in enumerate(x2):
            r = math.sqrt(np.sum(((a - b) / ls) ** 2))
            if nu == 0.5:
                out[i, j] = math.exp(-r)
            elif nu == 1.5:
                out[i, j] = (1 + math.sqrt(3) * r) * math.exp(-math.sqrt(3) * r)
            else:
                out[i, j] = (1 + math.sqrt(5) * r + 5 / 3 * r**2) * math.exp(-math.sqrt(5) * r)
    return out


def ref_periodic(x1, x2, ls, period):
    return np.array(
        [[math.exp(-2 * np.sum(np.sin(math.pi * (a - b) / period) ** 2 / ls)) for b in x2] for a in x1]
    )


def ref_linear(x1, x2, v):
    return np.array([[v * float(np.dot(a, b)) for b in x2] for a in x1])


def ref_sm(x1, x2, w, mu, s):
    out = np.zeros((len(x1), len(x2)))
    for i, a in enumerate(x1):
        for j, b in enumerate(x2):
            tau = a - b
            per_dim = [
                sum(
                    w[q]
                    * math.exp(-2 * math.pi**2 * tau[k] ** 2 * s[q, k] ** 2)
                    * math.cos(2 * math.pi * tau[k] * mu[q, k])
                    for q in range(len(w))
                )
                for k in range(len(tau))
            ]
            out[i, j] = np.prod(per_dim)
    return out


def np_params(params: Params, i: int) -> dict:
    """Dataset i's hyperparameters by flat name, as numpy arrays."""
    return {k: v[i].numpy() for k, v in params.flat().items()}


CASES = {
    "rbf_ard": (RBF(), lambda x1, x2, p: ref_rbf(x1, x2, p["lengthscale"])),
    "rbf_iso": (RBF(ard=False), lambda x1, x2, p: ref_rbf(x1, x2, p["lengthscale"])),
    "matern05": (Matern(nu=0.5), lambda x1, x2, p: ref_matern(x1, x2, p["lengthscale"], 0.5)),
    "matern15": (Matern(nu=1.5, ard=False), lambda x1, x2, p: ref_matern(x1, x2, p["lengthscale"], 1.5)),
    "matern25": (Matern(nu=2.5), lambda x1, x2, p: ref_matern(x1, x2, p["lengthscale"], 2.5)),
    "periodic": (Periodic(), lambda x1, x2, p: ref_periodic(x1, x2, p["lengthscale"], p["period"])),
    "periodic_ard": (Periodic(ard=True), lambda x1, x2, p: ref_periodic(x1, x2, p["lengthscale"], p["period"])),
    "linear": (Linear(), lambda x1, x2, p: ref_linear(x1, x2, p["variance"])),
    "sm": (SpectralMixture(num_mixtures=3), lambda x1, x2, p: ref_sm(x1, x2, p["weights"], p["means"], p["scales"])),
    "scale_rbf": (
        Scale(RBF()),
        lambda x1, x2, p: p["outputscale"] * ref_rbf(x1, x2, p["lengthscale"]),
    ),
    "sum": (
        Scale(RBF()) + Periodic(),
        lambda x1, x2, p: p["k0.outputscale"] * ref_rbf(x1, x2, p["k0.lengthscale"])
        + ref_periodic(x1, x2, p["k1.lengthscale"], p["k1.period"]),
    ),
    "product": (
        Matern(nu=1.5) * Linear(),
        lambda x1, x2, p: ref_matern(x1, x2, p["k0.lengthscale"], 1.5) * ref_linear(x1, x2, p["k1.variance"]),
    ),
    "nested": (
        Scale(RBF() * Periodic()) + Linear(),
        lambda x1, x2, p: p["k0.outputscale"]
        * ref_rbf(x1, x2, p["k0.k0.lengthscale"])
        * ref_periodic(x1, x2, p["k0.k1.lengthscale"], p["k0.k1.period"])
        + ref_linear(x1, x2, p["k1.variance"]),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("d", [1, 3])
def test_matches_hand_formula_and_gpytorch_twin(name: str, d: int) -> None:
    kernel, ref = CASES[name]
    batch = 3
    params = kernel.sample_params(batch, d, gen(1))
    x1, x2 = inputs(batch, 5, d, 2), inputs(batch, 4, d, 3)
    k = kernel.forward(params, x1, x2)
    assert k.shape == (batch, 5, 4) and k.dtype == F64
    gk = kernel.to_gpytorch(d)
    for i in range(batch):
        expected = ref(x1[i].numpy(), x2[i].numpy(), np_params(params, i))
        np.testing.assert_allclose(k[i].numpy(), expected, rtol=1e-10, atol=1e-12)
        kernel.set_gpytorch_params(gk, params.map(lambda t: t[i]))
        with torch.no_grad():
            twin = gk(x1[i], x2[i]).to_dense()
        np.testing.assert_allclose(k[i].numpy(), twin.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gpytorch_params_round_trip(name: str) -> None:
    kernel, _ = CASES[name]
    d = 2
    params = kernel.sample_params(1, d, gen(4)).map(lambda t: t[0])
    gk = kernel.to_gpytorch(d)
    kernel.set_gpytorch_params(gk, params)
    back = kernel.get_gpytorch_params(gk)
    assert list(back.flat()) == list(params.flat())
    assert_same_tree(back, params, rtol=1e-10, atol=1e-12)  # same types, shapes (no batch dim) and values


@pytest.mark.parametrize("name", sorted(CASES))
def test_symmetric_psd_and_diag(name: str) -> None:
    kernel, _ = CASES[name]
    d = 2
    params = kernel.sample_params(4, d, gen(5))
    x = inputs(4, 12, d, 6)
    k = kernel.forward(params, x, x)
    torch.testing.assert_close(k, k.transpose(-1, -2), rtol=1e-12, atol=1e-12)
    eig = torch.linalg.eigvalsh(k)
    assert (eig >= -1e-10 * eig.abs().amax(-1, keepdim=True)).all()
    torch.testing.assert_close(kernel.diag(params, x), torch.diagonal(k, dim1=-2, dim2=-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_forward_equals_loop(name: str) -> None:
    kernel, _ = CASES[name]
    d = 2
    params = kernel.sample_params(5, d, gen(7))
    x1, x2 = inputs(5, 6, d, 8), inputs(5, 3, d, 9)
    k = kernel.forward(params, x1, x2)
    for i in range(5):
        ki = kernel.forward(params.map(lambda t: t[i : i + 1]), x1[i : i + 1], x2[i : i + 1])
        torch.testing.assert_close(k[i : i + 1], ki, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("d", [1, 4])
def test_param_shapes_agree_with_sample_params(name: str, d: int) -> None:
    kernel, _ = CASES[name]
    shapes = kernel.param_shapes(d)
    params = kernel.sample_params(7, d, gen(10))
    assert isinstance(params, Params) and params.batch_size == 7
    flat = params.flat()
    assert list(flat) == list(shapes)
    assert list(kernel.hyperpriors()) == list(shapes)
    for n, shape in shapes.items():
        assert flat[n].shape == (7, *shape) and flat[n].dtype == F64
        assert (flat[n] > 0).all()


def test_ard_shapes() -> None:
    assert RBF(ard=True).param_shapes(3) == {"lengthscale": (3,)}
    assert RBF(ard=False).param_shapes(3) == {"lengthscale": (1,)}
    assert Periodic(ard=True).param_shapes(2) == {"lengthscale": (2,), "period": (2,)}
    assert SpectralMixture(num_mixtures=4).param_shapes(3) == {"weights": (4,), "means": (4, 3), "scales": (4, 3)}
    assert Scale(Linear()).param_shapes(5) == {"outputscale": (), "variance": ()}


def test_sampling_is_reproducible() -> None:
    kernel = Scale(RBF()) + SpectralMixture()
    a = kernel.sample_params(3, 2, gen(11)).flat()
    b = kernel.sample_params(3, 2, gen(11)).flat()
    c = kernel.sample_params(3, 2, gen(12)).flat()
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


def test_sum_and_product_flatten_and_name_params() -> None:
    a, b, c = RBF(), Periodic(), Linear()
    s = a + b + c
    assert s == Sum(kernels=(a, b, c))
    assert (a + (b + c)) == s
    p = a * b * c
    assert p == Product(kernels=(a, b, c))
    assert list(s.param_shapes(2)) == ["k0.lengthscale", "k1.lengthscale", "k1.period", "k2.variance"]
    mixed = a * b + c
    assert isinstance(mixed, Sum) and isinstance(mixed.kernels[0], Product)
    assert list(mixed.param_shapes(1)) == ["k0.k0.lengthscale", "k0.k1.lengthscale", "k0.k1.period", "k1.variance"]
    with pytest.raises(ValueError, match="kernels"):
        Sum(kernels=(a,))
    with pytest.raises(TypeError, match=r"kernels\[1\]"):
        Sum(kernels=(a, "rbf"))


def test_log_prior_is_sum_of_hyperprior_densities() -> None:
    ls, per = LogNormal(-1.0, 0.5), Gamma(2.0, 3.0)
    kernel = Scale(RBF(lengthscale=ls), outputscale=Fixed(1.5)) + Periodic(period=per)
    params = kernel.sample_params(4, 3, gen(13))
    lp = kernel.log_prior(params)
    assert lp.shape == (4,)
    flat = params.flat()
    expected = (
        ls.log_prob(flat["k0.lengthscale"]).sum(-1)
        + LogNormal(0.0, 0.5).log_prob(flat["k1.lengthscale"]).sum(-1)
        + per.log_prob(flat["k1.period"]).sum(-1)
    )  # Fixed outputscale contributes 0 at its value
    torch.testing.assert_close(lp, expected)


def test_matern_gradient_finite_at_zero_distance() -> None:
    kernel = Scale(Matern(nu=0.5))
    params = kernel.sample_params(2, 2, gen(14)).map(lambda t: t.requires_grad_())
    x = inputs(2, 4, 2, 15).requires_grad_()
    kernel.forward(params, x, x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in params.flat().values())


def test_params_from_flat_rebuilds_tree_and_map_selects_a_dataset() -> None:
    kernel = Scale(RBF() * Periodic()) + Linear()
    d = 2
    params = kernel.sample_params(3, d, gen(20))
    assert isinstance(params, CompositeParams) and len(params.parts) == 2
    scaled, linear = params.parts
    assert isinstance(scaled, ScaleParams) and isinstance(linear, LinearParams)
    assert isinstance(scaled.base, CompositeParams)
    assert [type(p) for p in scaled.base.parts] == [LengthscaleParams, PeriodicParams]
    flat = params.flat()
    assert list(flat) == ["k0.outputscale", "k0.k0.lengthscale", "k0.k1.lengthscale", "k0.k1.period", "k1.variance"]
    assert flat["k0.k1.period"] is scaled.base.parts[1].period
    # params_from is flat()'s inverse, whatever the order of the names and with fresh tensors
    assert_same_tree(kernel.params_from(flat), params)
    assert_same_tree(kernel.params_from({n: v.clone() for n, v in reversed(flat.items())}), params)
    with pytest.raises(ValueError, match="period"):
        kernel.params_from({n: v for n, v in flat.items() if n != "k0.k1.period"})
    # map(t[1:2]) is the second dataset, batch dim kept: forward gives row 1 of the batched matrix
    x1, x2 = inputs(3, 5, d, 21), inputs(3, 4, d, 22)
    k = kernel.forward(params, x1, x2)
    second = params.map(lambda t: t[1:2])
    assert isinstance(second, CompositeParams) and second.batch_size == 1
    assert all(torch.equal(v, flat[n][1:2]) for n, v in second.flat().items())
    torch.testing.assert_close(kernel.forward(second, x1[1:2], x2[1:2]), k[1:2], rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(kernel.diag(second, x1[1:2]), kernel.diag(params, x1)[1:2], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip(name: str) -> None:
    kernel, _ = CASES[name]
    assert from_dict(to_dict(kernel)) == kernel


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="nu"):
        Matern(nu=2.0)
    with pytest.raises(ValueError, match="nu"):
        Matern(nu=True)
    with pytest.raises(TypeError, match="lengthscale"):
        RBF(lengthscale=0.3)
    with pytest.raises(TypeError, match="ard"):
        RBF(ard=1)
    with pytest.raises(ValueError, match="num_mixtures"):
        SpectralMixture(num_mixtures=0)
    with pytest.raises(TypeError, match="base"):
        Scale(base="rbf")
    with pytest.raises(ValueError, match="base"):
        Scale(Scale(RBF()))
    with pytest.raises(TypeError, match="outputscale"):
        Scale(RBF(), outputscale=None)


def test_bad_forward_inputs() -> None:
    kernel = Scale(RBF())
    params = kernel.sample_params(2, 3, gen(16))
    x = inputs(2, 4, 3, 17)
    with pytest.raises(ValueError, match="x1"):
        kernel.forward(params, x[0], x)
    with pytest.raises(ValueError, match="x1 and x2"):
        kernel.forward(params, x, x[..., :2])
    bad = x.clone()
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="x2.*NaN"):
        kernel.forward(params, x, bad)
    # a plain dict (the old API) is refused with a TypeError naming params
    for call in (
        lambda: kernel.forward(params.flat(), x, x),
        lambda: kernel.diag(params.flat(), x),
        lambda: RBF().log_prior(params.base.flat()),
    ):
        with pytest.raises(TypeError, match="params must be (ScaleParams|LengthscaleParams)"):
            call()
    with pytest.raises(TypeError, match="params must be ScaleParams"):
        kernel.log_prior(params.flat())
    with pytest.raises(TypeError, match="params must be CompositeParams"):
        (kernel + Linear()).log_prior(params.flat())
    with pytest.raises(TypeError, match="params must be ScaleParams"):
        kernel.forward(params.base, x, x)  # the base's tree alone is another kernel's
    with pytest.raises(TypeError, match=r"params.base must be LengthscaleParams"):
        kernel.forward(dataclasses.replace(params, base=PeriodicParams(params.base.lengthscale,
                                                                       params.base.lengthscale)), x, x)
    short = dataclasses.replace(params, base=LengthscaleParams(params.base.lengthscale[:, :1]))
    with pytest.raises(ValueError, match=r"params\['lengthscale'\].*shape"):
        kernel.forward(short, x, x)
    with pytest.raises(ValueError, match=r"params\['outputscale'\].*positive"):
        kernel.forward(dataclasses.replace(params, outputscale=-params.outputscale), x, x)
    with pytest.raises(ValueError, match=r"params\['outputscale'\].*shape"):
        kernel.forward(params, x[:1], x[:1])  # a tree for 2 datasets with inputs for 1
    nested = Scale(RBF()) + Periodic()
    nested_params = nested.sample_params(2, 3, gen(20))
    missing = CompositeParams(parts=nested_params.parts[:1])
    with pytest.raises(TypeError, match=r"CompositeParams with 2 parts"):
        nested.forward(missing, x, x)  # a composite refuses a tree with a child missing
    bad_child = dataclasses.replace(
        nested_params.parts[1], period=torch.zeros_like(nested_params.parts[1].period)
    )
    with pytest.raises(ValueError, match=r"params\['k1\.period'\].*positive"):
        nested.forward(CompositeParams(parts=(nested_params.parts[0], bad_child)), x, x)
    with pytest.raises(ValueError, match="n_features"):
        kernel.sample_params(2, 0, gen(18))
    with pytest.raises(ValueError, match="lengthscale.*positive"):
        RBF(lengthscale=Fixed(-1.0)).sample_params(2, 1, gen(19))


def test_kernel_base_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Kernel().param_shapes(1)
