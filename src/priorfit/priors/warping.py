r"""Kumaraswamy input warping: a kernel on inputs bent, per feature, by the Kumaraswamy CDF.

.. math:: w(x) = 1 - (1 - x^{a})^{b}, \qquad k_w(x, x') = k(w(x), w(x'))

applied to each feature of inputs in the unit cube (clipped to :math:`[\epsilon, 1 - \epsilon]`), with
:math:`a_j, b_j > 0` per feature. :math:`a = b = 1` is the identity; other values stretch one end of the range
and compress the other, the non-stationarity a tuned hyperparameter's objective typically has (flat in one
region, steep in another) [SSZA2014]_. BoTorch's ``Warp`` input transform is the same map with log-normal
priors on the concentrations; here it is a kernel like any other, so the GP prior samples with it, the exact GP
and ML-II use it, and NUTS integrates its concentrations with the rest.

References:
    .. [SSZA2014] J. Snoek, K. Swersky, R. Zemel, R. P. Adams. Input warping for Bayesian optimization of
        non-stationary functions. ICML 2014.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from array_api_compat import array_namespace
from torch import Tensor

from priorfit.config import register
from priorfit.priors.hyperpriors import Hyperprior, LogNormal
from priorfit.priors.kernels import (
    Matern,
    Kernel,
    _as_param,
    _check_hyperprior,
    _check_n_features,
    _get_param,
)
from priorfit.priors.params import Params
from priorfit.validation import check_int

__all__ = ["KumaraswamyWarp", "WarpParams", "kumaraswamy_warp"]

_EPS = 1e-7  # inputs are clipped to [eps, 1 - eps] (as BoTorch's Warp does), so x^a has a finite gradient
_NAMES = ("concentration1", "concentration0")


def kumaraswamy_warp(x, concentration1, concentration0):
    """:math:`1 - (1 - x^a)^b` of `batch x n x d` inputs with `batch x d` concentrations a and b (any array
    namespace), x clipped to [eps, 1 - eps]."""
    xp = array_namespace(x)
    x = xp.clip(x, min=_EPS, max=1.0 - _EPS)
    a, b = concentration1[:, None, :], concentration0[:, None, :]
    return 1.0 - (1.0 - x**a) ** b


@dataclass(frozen=True, eq=False)
class WarpParams(Params):
    """:class:`KumaraswamyWarp`: ``concentration1`` (a) and ``concentration0`` (b), each `batch x d`, and the
    base kernel's ``base``."""

    concentration1: Tensor
    concentration0: Tensor
    base: Params


@register
@dataclass(frozen=True)
class KumaraswamyWarp(Kernel):
    r"""The kernel ``base`` on Kumaraswamy-warped inputs (module docstring).

    Parameters: ``concentration1`` (:math:`a`) and ``concentration0`` (:math:`b`), each of shape `(d,)`, beside the
    base kernel's own under their names. The default hyperpriors are BoTorch's (log-normal, scale 0.75).
    """

    base: Kernel = field(default_factory=Matern)
    concentration1: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.0, scale=0.75))
    concentration0: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.0, scale=0.75))

    stationary = False

    def __post_init__(self) -> None:
        if not isinstance(self.base, Kernel):
            raise TypeError(f"base must be a Kernel, got {type(self.base).__name__}: {self.base!r}")
        for name in _NAMES:
            _check_hyperprior(name, getattr(self, name))
        clash = set(_NAMES) & set(self.base.param_shapes(1))
        if clash:
            raise ValueError(f"base must not have its own {sorted(clash)} (a warp of a warp: warp once), "
                             f"got {self.base!r}")

    @property
    def reflection_invariant(self) -> bool:  # type: ignore[override]
        return False

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        d = _check_n_features(n_features)
        return {"concentration1": (d,), "concentration0": (d,), **self.base.param_shapes(d)}

    def hyperpriors(self) -> dict[str, Hyperprior]:
        return {"concentration1": self.concentration1, "concentration0": self.concentration0,
                **self.base.hyperpriors()}

    def params_from(self, flat: dict) -> WarpParams:
        missing = [name for name in _NAMES if name not in flat]
        if missing:
            raise ValueError(f"params is missing hyperparameter(s) {missing} of KumaraswamyWarp")
        return WarpParams(concentration1=flat["concentration1"], concentration0=flat["concentration0"],
                          base=self.base.params_from(flat))

    def sample_params(self, batch_size: int, n_features: int, generator: torch.Generator) -> WarpParams:
        check_int("batch_size", batch_size, minimum=1)
        d = _check_n_features(n_features)
        values = {}
        for name in _NAMES:
            value = getattr(self, name).sample((batch_size, d), generator).to(torch.float64)
            if not (torch.isfinite(value).all() and (value > 0).all()):
                raise ValueError(f"the hyperprior of {name!r} ({getattr(self, name)!r}) drew non-positive values")
            values[name] = value
        return WarpParams(**values, base=self.base.sample_params(batch_size, d, generator))

    def check_tree(self, params: object, where: str = "params") -> None:
        if not isinstance(params, WarpParams):
            raise TypeError(f"{where} must be WarpParams (for KumaraswamyWarp; e.g. from sample_params), got "
                            f"{type(params).__name__}")
        self.base.check_tree(params.base, f"{where}.base")

    def log_prior(self, params: WarpParams) -> Tensor:
        self.check_tree(params)
        total = self.base.log_prior(params.base)
        for name in _NAMES:
            value = _get_param(params.flat(), name).to(torch.float64)
            total = total + getattr(self, name).log_prob(value).reshape(value.shape[0], -1).sum(-1)
        return total

    def matrix(self, params: Params, x1, x2):
        w1 = kumaraswamy_warp(x1, params.concentration1, params.concentration0)
        w2 = kumaraswamy_warp(x2, params.concentration1, params.concentration0)
        return self.base.matrix(params.base, w1, w2)

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return self.base._diag(params.base, kumaraswamy_warp(x, params.concentration1, params.concentration0))

    # ---- GPyTorch twin ------------------------------------------------------------------------------------------

    def to_gpytorch(self, n_features: int):
        d = _check_n_features(n_features)
        return _gpytorch_warp_class()(self.base.to_gpytorch(d), d).double()

    def set_gpytorch_params(self, gp_kernel, params: WarpParams) -> None:
        for name in _NAMES:
            gp_kernel.set_concentration(name, _as_param(getattr(params, name), (1, -1)))
        self.base.set_gpytorch_params(gp_kernel.base_kernel, params.base)

    def get_gpytorch_params(self, gp_kernel) -> WarpParams:
        values = {name: _as_param(gp_kernel.concentration(name), (-1,)) for name in _NAMES}
        return WarpParams(**values, base=self.base.get_gpytorch_params(gp_kernel.base_kernel))


_GPYTORCH_CLASS = None


def _gpytorch_warp_class():
    """A ``gpytorch.kernels.Kernel`` that warps its inputs with its own positive concentrations and hands them to
    a base kernel (GPyTorch has a warping input transform in BoTorch, not a kernel). Built on first use."""
    global _GPYTORCH_CLASS
    if _GPYTORCH_CLASS is not None:
        return _GPYTORCH_CLASS
    import gpytorch

    class GPyTorchKumaraswamyWarp(gpytorch.kernels.Kernel):
        has_lengthscale = False

        def __init__(self, base_kernel, n_features: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.base_kernel = base_kernel
            for name in _NAMES:
                self.register_parameter(f"raw_{name}", torch.nn.Parameter(torch.zeros(1, n_features)))
                self.register_constraint(f"raw_{name}", gpytorch.constraints.Positive())

        def concentration(self, name: str) -> Tensor:
            return getattr(self, f"raw_{name}_constraint").transform(getattr(self, f"raw_{name}"))

        def set_concentration(self, name: str, value: Tensor) -> None:
            raw = getattr(self, f"raw_{name}")
            self.initialize(**{f"raw_{name}": getattr(self, f"raw_{name}_constraint").inverse_transform(
                torch.as_tensor(value).to(raw))})

        def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
            a, b = self.concentration("concentration1"), self.concentration("concentration0")

            def warp(x: Tensor) -> Tensor:
                flat = x.reshape(1, -1, x.shape[-1])
                return kumaraswamy_warp(flat, a, b).reshape(x.shape)

            return self.base_kernel.forward(warp(x1), warp(x2), diag=diag, last_dim_is_batch=last_dim_is_batch,
                                            **params)

    _GPYTORCH_CLASS = GPyTorchKumaraswamyWarp
    return GPyTorchKumaraswamyWarp
