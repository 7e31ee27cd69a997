r"""The NNGP kernel: the covariance of an infinitely wide, fully connected network's output at initialisation.

A network with ``depth`` hidden layers of width :math:`N`, weights :math:`W^{(l)}_{ij} \sim N(0, \sigma_w^2 /
N_{l-1})` and biases :math:`b^{(l)}_i \sim N(0, \sigma_b^2)`, becomes a GP as :math:`N \to \infty` [LBN2018]_,
[MHR2018]_, with the covariance of the pre-activations computed layer by layer:

.. math::
    K^{(0)}(x, x') = \sigma_b^2 + \sigma_w^2\, \frac{z^\top z'}{d}, \qquad
    K^{(l)}(x, x') = \sigma_b^2 + \sigma_w^2\, \mathbb E_{(u, v) \sim N(0, K^{(l-1)})}[\phi(u)\,\phi(v)]

and the output's covariance is :math:`K^{(L)}`, :math:`L` = ``depth``. The expectation is in closed form for
two activations, with :math:`k_1 = K^{(l-1)}(x, x)`, :math:`k_2 = K^{(l-1)}(x', x')`, :math:`k_{12} =
K^{(l-1)}(x, x')`:

- ReLU (the arc-cosine kernel of degree 1 [CS2009]_): :math:`\frac{\sqrt{k_1 k_2}}{2\pi}(\sin\theta + (\pi -
  \theta)\cos\theta)`, :math:`\theta = \arccos(k_{12} / \sqrt{k_1 k_2})`;
- erf [Wil1997]_: :math:`\frac{2}{\pi}\arcsin\frac{2 k_{12}}{\sqrt{(1 + 2 k_1)(1 + 2 k_2)}}`.

``z`` is the network's input: with ``center`` (the default) the unit cube's inputs moved to :math:`z = 2x - 1`
in :math:`[-1, 1]^d`, as a network is fed centred features; else :math:`z = x`. The kernel is not stationary
(it depends on the inputs' angle and norms about the origin), but it is unchanged by reordering features and,
centred, by reflecting one (:math:`x_j \to 1 - x_j` is :math:`z_j \to -z_j`, which the iid weights absorb).

Parameters: ``weight_variance`` :math:`\sigma_w^2` and ``bias_variance`` :math:`\sigma_b^2`, each of shape `()`
(the same at every layer), with hyperpriors like any kernel's.

References:
    .. [LBN2018] J. Lee, Y. Bahri, R. Novak, S. Schoenholz, J. Pennington, J. Sohl-Dickstein. Deep neural
        networks as Gaussian processes. ICLR 2018.
    .. [MHR2018] A. G. de G. Matthews, M. Rowland, J. Hron, R. E. Turner, Z. Ghahramani. Gaussian process
        behaviour in wide deep neural networks. ICLR 2018.
    .. [CS2009] Y. Cho, L. K. Saul. Kernel methods for deep learning. NeurIPS 2009.
    .. [Wil1997] C. K. I. Williams. Computing with infinite networks. NeurIPS 1997.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from array_api_compat import array_namespace
from torch import Tensor

from priorfit.config import register
from priorfit.priors.hyperpriors import Hyperprior, LogNormal
from priorfit.priors.kernels import Kernel, _as_param, _batch_view, _check_bool, _check_hyperprior, _check_n_features
from priorfit.priors.params import Params
from priorfit.validation import check_int

__all__ = ["NNGP", "NNGPParams", "NNGP_ACTIVATIONS"]

NNGP_ACTIVATIONS = ("relu", "erf")
# cos(theta) is clipped to [-1 + eps, 1 - eps]: arccos has an infinite slope at +-1 (x = x'), and the clip moves a
# kernel value by at most ~eps, far below float64 resolution of a value of order 1.
_COS_EPS = 1e-12


@dataclass(frozen=True, eq=False)
class NNGPParams(Params):
    """:class:`NNGP`: ``weight_variance`` and ``bias_variance``, each `batch`."""

    weight_variance: Tensor
    bias_variance: Tensor


def _relu_step(xp, k12, k1, k2, sw, sb):
    """One layer of the ReLU recursion: covariances `batch x n x m` from k12 and the diagonals k1 `batch x n x 1`,
    k2 `batch x 1 x m`."""
    norms = xp.sqrt(k1 * k2)
    cos = xp.clip(k12 / norms, min=-1.0 + _COS_EPS, max=1.0 - _COS_EPS)
    theta = xp.acos(cos)
    return sb + sw * norms * (xp.sin(theta) + (math.pi - theta) * cos) / (2.0 * math.pi)


def _erf_step(xp, k12, k1, k2, sw, sb):
    """One layer of the erf recursion (shapes as :func:`_relu_step`)."""
    ratio = xp.clip(2.0 * k12 / xp.sqrt((1.0 + 2.0 * k1) * (1.0 + 2.0 * k2)), min=-1.0, max=1.0)
    return sb + sw * (2.0 / math.pi) * xp.asin(ratio)


def _relu_diag(xp, k, sw, sb):
    return sb + 0.5 * sw * k


def _erf_diag(xp, k, sw, sb):
    return sb + sw * (2.0 / math.pi) * xp.asin(2.0 * k / (1.0 + 2.0 * k))


_STEPS = {"relu": (_relu_step, _relu_diag), "erf": (_erf_step, _erf_diag)}


@register
@dataclass(frozen=True)
class NNGP(Kernel):
    r"""The NNGP kernel of a fully connected network with ``depth`` hidden layers (module docstring).

    Fields:
        activation: "relu" or "erf".
        depth: hidden layers, >= 1.
        weight_variance, bias_variance: hyperpriors of :math:`\sigma_w^2` and :math:`\sigma_b^2`. The defaults
            put :math:`\sigma_w^2` near 2 (He's scaling for ReLU) and :math:`\sigma_b^2` near 0.1.
        center: feed the network :math:`2x - 1` instead of :math:`x`.
    """

    activation: str = "relu"
    depth: int = 2
    weight_variance: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.7, scale=0.3))
    bias_variance: Hyperprior = field(default_factory=lambda: LogNormal(loc=-2.3, scale=0.5))
    center: bool = True

    params_type = NNGPParams
    stationary = False

    def __post_init__(self) -> None:
        if self.activation not in NNGP_ACTIVATIONS:
            raise ValueError(f"activation must be one of {NNGP_ACTIVATIONS}, got {self.activation!r}")
        check_int("depth", self.depth, minimum=1)
        _check_hyperprior("weight_variance", self.weight_variance)
        _check_hyperprior("bias_variance", self.bias_variance)
        _check_bool("center", self.center)

    @property
    def reflection_invariant(self) -> bool:
        """Centred, x_j -> 1 - x_j is z_j -> -z_j, under which the kernel is unchanged."""
        return self.center

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        _check_n_features(n_features)
        return {"weight_variance": (), "bias_variance": ()}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"weight_variance": self.weight_variance, "bias_variance": self.bias_variance}

    def _inputs(self, x):
        return 2.0 * x - 1.0 if self.center else x

    def matrix(self, params: Params, x1, x2):
        xp = array_namespace(x1, x2)
        sw, sb = _batch_view(params.weight_variance, 2), _batch_view(params.bias_variance, 2)
        z1, z2 = self._inputs(x1), self._inputs(x2)
        d = x1.shape[-1]
        k12 = sb + sw * (z1 @ xp.matrix_transpose(z2)) / d  # batch x n x m
        k1 = sb + sw * xp.sum(z1 * z1, axis=-1)[:, :, None] / d  # batch x n x 1
        k2 = sb + sw * xp.sum(z2 * z2, axis=-1)[:, None, :] / d  # batch x 1 x m
        step, diag = _STEPS[self.activation]
        for _ in range(self.depth):
            k12 = step(xp, k12, k1, k2, sw, sb)
            k1, k2 = diag(xp, k1, sw, sb), diag(xp, k2, sw, sb)
        return k12

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        sw, sb = _batch_view(params.weight_variance, 1), _batch_view(params.bias_variance, 1)
        z = self._inputs(x)
        k = sb + sw * z.square().sum(-1) / x.shape[-1]
        _, diag = _STEPS[self.activation]
        for _ in range(self.depth):
            k = diag(array_namespace(k), k, sw, sb)
        return k

    # ---- GPyTorch twin ------------------------------------------------------------------------------------------

    def to_gpytorch(self, n_features: int):
        _check_n_features(n_features)
        return _gpytorch_nngp_class()(self).double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        gp_kernel.weight_variance = _as_param(params.weight_variance, (1,))
        gp_kernel.bias_variance = _as_param(params.bias_variance, (1,))

    def get_gpytorch_params(self, gp_kernel) -> NNGPParams:
        return NNGPParams(weight_variance=_as_param(gp_kernel.weight_variance, ()),
                          bias_variance=_as_param(gp_kernel.bias_variance, ()))


_GPYTORCH_CLASS = None


def _gpytorch_nngp_class():
    """A ``gpytorch.kernels.Kernel`` running :meth:`NNGP.matrix` on its own positive parameters (GPyTorch has no
    NNGP kernel), so ML-II fits the same formula the prior samples with. Built on first use: importing GPyTorch
    costs seconds."""
    global _GPYTORCH_CLASS
    if _GPYTORCH_CLASS is not None:
        return _GPYTORCH_CLASS
    import gpytorch
    import torch

    class GPyTorchNNGP(gpytorch.kernels.Kernel):
        has_lengthscale = False

        def __init__(self, spec: NNGP, **kwargs) -> None:
            super().__init__(**kwargs)
            self.spec = spec
            for name in ("weight_variance", "bias_variance"):
                self.register_parameter(f"raw_{name}", torch.nn.Parameter(torch.zeros(*self.batch_shape, 1)))
                self.register_constraint(f"raw_{name}", gpytorch.constraints.Positive())

        def _value(self, name: str) -> Tensor:
            return getattr(self, f"raw_{name}_constraint").transform(getattr(self, f"raw_{name}"))

        def _set(self, name: str, value: Tensor) -> None:
            raw = getattr(self, f"raw_{name}")
            value = torch.as_tensor(value).to(raw)
            self.initialize(**{f"raw_{name}": getattr(self, f"raw_{name}_constraint").inverse_transform(value)})

        @property
        def weight_variance(self) -> Tensor:
            return self._value("weight_variance")

        @weight_variance.setter
        def weight_variance(self, value: Tensor) -> None:
            self._set("weight_variance", value)

        @property
        def bias_variance(self) -> Tensor:
            return self._value("bias_variance")

        @bias_variance.setter
        def bias_variance(self, value: Tensor) -> None:
            self._set("bias_variance", value)

        def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
            if last_dim_is_batch:
                raise NotImplementedError("the NNGP twin does not support last_dim_is_batch")
            lead = x1.shape[:-2]
            a = x1.reshape(-1, *x1.shape[-2:])
            b = x2.reshape(-1, *x2.shape[-2:])
            values = NNGPParams(weight_variance=self.weight_variance.reshape(-1).expand(a.shape[0]),
                                bias_variance=self.bias_variance.reshape(-1).expand(a.shape[0]))
            if diag:
                return self.spec._diag(values, a).reshape(*lead, a.shape[1])
            return self.spec.matrix(values, a, b).reshape(*lead, a.shape[1], b.shape[1])

    _GPYTORCH_CLASS = GPyTorchNNGP
    return GPyTorchNNGP
