r"""Covariance functions with hyperpriors, batched over datasets, in GPyTorch's parameterisations.

Each kernel is a frozen registered dataclass holding only its *hyperpriors*; the hyperparameter values live in a
typed tree (:mod:`priorfit.priors.params`) of float64 tensors with a leading ``batch`` dimension (one value per
dataset), so one kernel object serves a whole batch of datasets with different hyperparameters:

>>> import torch
>>> k = Scale(RBF()) + Periodic()
>>> g = torch.Generator().manual_seed(0)
>>> params = k.sample_params(4, 2, g)          # CompositeParams(parts=(ScaleParams(...), PeriodicParams(...)))
>>> params.parts[0].base.lengthscale.shape
torch.Size([4, 2])
>>> x = torch.rand(4, 10, 2, dtype=torch.float64, generator=g)
>>> k.forward(params, x, x).shape
torch.Size([4, 10, 10])

Each covariance formula is written once, in :meth:`Kernel.matrix`, against the Python array API
(``array_api_compat``): the same body runs on torch tensors (sampling, the exact GP) and on JAX arrays (the NUTS
model of :mod:`priorfit.exact.marginal`, traced and compiled by XLA), so the exact references use the very formula
the prior samples with.

Every kernel uses the same parameterisation as its GPyTorch twin (``to_gpytorch``), so the matrices agree to
rounding error; :meth:`Kernel.set_gpytorch_params` and :meth:`Kernel.get_gpytorch_params` copy one dataset's
hyperparameters into and out of that twin. In the flat names of ``params.flat()`` (what NUTS samples and reports
by) the children of sums and products are prefixed with their position, ``"k0."``, ``"k1."``, …; :class:`Scale`
adds ``"outputscale"`` beside its base's names.

Shapes: ``x1`` is `batch x n x d`, ``x2`` is `batch x m x d`, matrices are `batch x n x m`. Every hyperparameter
must be positive (as GPyTorch's ``Positive`` constraints require).

References:
    [RW2006] C. E. Rasmussen, C. K. I. Williams. Gaussian Processes for Machine Learning. MIT Press, 2006, ch. 4.
    [WA2013] A. G. Wilson, R. P. Adams. Gaussian process kernels for pattern discovery and extrapolation.
        ICML 2013.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from torch import Tensor

from priorfit.config import register
from priorfit.validation import check_int
from priorfit.priors.hyperpriors import DimensionScaledLogNormal, Hyperprior, LogNormal
from priorfit.priors.params import Params

__all__ = [
    "Kernel",
    "LengthscaleParams",
    "PeriodicParams",
    "LinearParams",
    "SpectralMixtureParams",
    "ScaleParams",
    "CompositeParams",
    "RBF",
    "Matern",
    "Periodic",
    "RationalQuadratic",
    "RationalQuadraticParams",
    "Linear",
    "SpectralMixture",
    "Scale",
    "Sum",
    "Product",
]

_MATERN_NUS = (0.5, 1.5, 2.5)
# Distances are computed as sqrt(max(r^2, tiny)) so that gradients stay finite at r = 0; the value changes by at
# most 1e-18, far below float64 resolution of a kernel value of order 1.
_TINY_SQ = 1e-36


# ----------------------------------------------------------------------------------------------------------------
# validation helpers


def _check_hyperprior(name: str, value: object) -> None:
    if not isinstance(value, Hyperprior):
        raise TypeError(f"{name} must be a Hyperprior (e.g. LogNormal, Fixed), got {type(value).__name__}: {value!r}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}: {value!r}")


def _check_n_features(n_features: object) -> int:
    return check_int("n_features", n_features, minimum=1)


def _check_x(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape batch x n x d, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape batch x n x d (3 dims), got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a real tensor, got dtype {x.dtype}")
    x = x.to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# ----------------------------------------------------------------------------------------------------------------
# hyperparameter values (each array `batch x *shape`)


@dataclass(frozen=True, eq=False)
class LengthscaleParams(Params):
    """:class:`RBF` and :class:`Matern`: ``lengthscale`` `batch x d` (ARD) or `batch x 1`."""

    lengthscale: Tensor


@dataclass(frozen=True, eq=False)
class PeriodicParams(Params):
    """:class:`Periodic`: ``lengthscale`` and ``period``, each `batch x d` (ARD) or `batch x 1`."""

    lengthscale: Tensor
    period: Tensor


@dataclass(frozen=True, eq=False)
class LinearParams(Params):
    """:class:`Linear`: ``variance`` `batch`."""

    variance: Tensor


@dataclass(frozen=True, eq=False)
class SpectralMixtureParams(Params):
    """:class:`SpectralMixture`: ``weights`` `batch x Q`, ``means`` and ``scales`` `batch x Q x d`."""

    weights: Tensor
    means: Tensor
    scales: Tensor


@dataclass(frozen=True, eq=False)
class ScaleParams(Params):
    """:class:`Scale`: ``outputscale`` `batch`, and the base kernel's ``base``."""

    outputscale: Tensor
    base: Params


@dataclass(frozen=True, eq=False)
class CompositeParams(Params):
    """:class:`Sum` and :class:`Product`: one tree per child, in order."""

    parts: tuple[Params, ...]

    def flat(self) -> dict:
        return {f"k{i}.{name}": value for i, part in enumerate(self.parts) for name, value in part.flat().items()}


# ----------------------------------------------------------------------------------------------------------------
# base class


class Kernel:
    """Base class of the kernels: hyperpriors in the dataclass fields, hyperparameter values in ``params``.

    Leaf kernels name their :class:`Params` type in ``params_type`` and implement ``param_shapes``,
    ``_hyperpriors``, ``matrix``, ``_diag``, ``to_gpytorch``,
    ``set_gpytorch_params`` and ``get_gpytorch_params``. ``matrix`` is the covariance formula, written once
    against the array API so that torch and JAX run the same body; the public ``forward``/``diag`` validate and
    cast torch inputs, then call it (composite kernels call their children's without re-checking).
    """

    #: k(x, x') depends on x - x' only, through an even function, so reflecting inputs (x -> 1 - x) leaves the
    #: GP unchanged. Every kernel here is also exchangeable in the input features (iid per-feature hyperpriors).
    stationary = True

    @property
    def reflection_invariant(self) -> bool:
        """Whether reflecting any input feature (x_j -> 1 - x_j) leaves the kernel unchanged: true of every
        stationary kernel here (even in x - x'), and of some others (a centred NNGP)."""
        return self.stationary

    # ---- hyperparameters ---------------------------------------------------------------------------------------

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        """Shape of each hyperparameter for one dataset with ``n_features`` inputs (no batch dimension)."""
        raise NotImplementedError

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        """Leaf kernels: the hyperprior of each parameter (each element drawn iid from it)."""
        raise NotImplementedError

    #: The type of this (leaf) kernel's hyperparameter values.
    params_type: type = Params

    def params_from(self, flat: dict) -> Params:
        """This kernel's :class:`Params` tree from arrays named as in ``param_shapes`` (``Params.flat``'s
        inverse)."""
        missing = sorted(set(self._hyperpriors()) - set(flat))
        if missing:
            raise ValueError(f"params is missing hyperparameter(s) {missing} of {type(self).__name__}")
        return self.params_type(**{name: flat[name] for name in self._hyperpriors()})

    def sample_params(self, batch_size: int, n_features: int, generator: torch.Generator) -> Params:
        """Draw hyperparameters from the hyperpriors: each a float64 tensor `batch_size x *shape`."""
        check_int("batch_size", batch_size, minimum=1)
        shapes = self.param_shapes(_check_n_features(n_features))
        priors = self._hyperpriors()
        out: dict[str, Tensor] = {}
        for name, shape in shapes.items():
            value = priors[name].sample((batch_size, *shape), generator).to(torch.float64)
            if not (torch.isfinite(value).all() and (value > 0).all()):
                raise ValueError(
                    f"the hyperprior of {name!r} ({priors[name]!r}) drew non-positive or non-finite values; "
                    "kernel hyperparameters must be positive, use a positive hyperprior such as LogNormal"
                )
            out[name] = value
        return self.params_from(out)

    def log_prior(self, params: Params) -> Tensor:
        """`batch` log density of the hyperparameters: sum over parameters and elements of ``log p(value)``.

        A ``Fixed`` hyperprior contributes 0 at its value (and -inf elsewhere).
        """
        self.check_tree(params)
        priors = self.hyperpriors()
        flat = _flat(params)
        total: Tensor | None = None
        for name in priors:
            value = _get_param(flat, name)
            lp = priors[name].log_prob(value.to(torch.float64))
            lp = lp.reshape(lp.shape[0], -1).sum(-1)
            total = lp if total is None else total + lp
        if total is None:
            raise ValueError("this kernel has no hyperparameters")
        return total

    # ---- evaluation ---------------------------------------------------------------------------------------------

    def forward(self, params: Params, x1: Tensor, x2: Tensor) -> Tensor:
        """Covariance matrix `batch x n x m` between x1 (`batch x n x d`) and x2 (`batch x m x d`), float64."""
        x1 = _check_x("x1", x1)
        x2 = _check_x("x2", x2)
        if x1.shape[0] != x2.shape[0] or x1.shape[2] != x2.shape[2]:
            raise ValueError(
                f"x1 and x2 must share batch and feature sizes, got x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)}"
            )
        p = self._check_params(params, x1.shape[0], x1.shape[2])
        return self.matrix(p, x1, x2)

    def diag(self, params: Params, x: Tensor) -> Tensor:
        """Diagonal `batch x n` of ``forward(params, x, x)``, computed without the full matrix."""
        x = _check_x("x", x)
        p = self._check_params(params, x.shape[0], x.shape[2])
        return self._diag(p, x)

    def check_tree(self, params: object, where: str = "params") -> None:
        """A TypeError naming ``where`` unless ``params`` is a tree of this kernel's shape."""
        if not isinstance(params, self.params_type):
            raise TypeError(f"{where} must be {self.params_type.__name__} (for {type(self).__name__}; e.g. from "
                            f"sample_params), got {type(params).__name__}")

    def _check_params(self, params: Params, batch: int, n_features: int) -> Params:
        self.check_tree(params)
        flat = _flat(params)
        shapes = self.param_shapes(n_features)
        missing = sorted(set(shapes) - set(flat))
        if missing:
            raise ValueError(f"params is missing hyperparameter(s) {missing}; expected {sorted(shapes)}")
        out = dict(flat)
        for name, shape in shapes.items():
            value = flat[name]
            if not isinstance(value, Tensor):
                raise TypeError(f"params[{name!r}] must be a torch.Tensor, got {type(value).__name__}")
            if tuple(value.shape) != (batch, *shape):
                raise ValueError(
                    f"params[{name!r}] must have shape {(batch, *shape)} (batch, *{shape}), got {tuple(value.shape)}"
                )
            value = value.to(torch.float64)
            if not (torch.isfinite(value).all() and (value > 0).all()):
                raise ValueError(f"params[{name!r}] must be positive and finite, got {value.detach().flatten()[:8]}")
            out[name] = value
        return self.params_from(out)

    def matrix(self, params: Params, x1, x2):
        """The covariance formula, `batch x n x m`, with no validation: x1 `batch x n x d`, x2 `batch x m x d` and
        ``params`` this kernel's tree of `batch x *shape` arrays, all of one array-API namespace (torch tensors,
        JAX arrays). Callers check their inputs (``forward`` does, for torch)."""
        raise NotImplementedError

    def hyperpriors(self) -> dict[str, Hyperprior]:
        """The hyperprior of each hyperparameter, under the names of :meth:`param_shapes`."""
        return dict(self._hyperpriors())

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        raise NotImplementedError

    # ---- GPyTorch twins -----------------------------------------------------------------------------------------

    def to_gpytorch(self, n_features: int):
        """An equivalent float64 ``gpytorch.kernels.Kernel`` for inputs with ``n_features`` columns."""
        raise NotImplementedError

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        """Copy one dataset's hyperparameters (shapes ``param_shapes(d)``, no batch dim) into ``gp_kernel``."""
        raise NotImplementedError

    def get_gpytorch_params(self, gp_kernel) -> Params:
        """Read ``gp_kernel``'s hyperparameters back as a tree for one dataset (no batch dim)."""
        raise NotImplementedError

    # ---- composition --------------------------------------------------------------------------------------------

    def __add__(self, other: Kernel) -> Sum:
        if not isinstance(other, Kernel):
            return NotImplemented
        return Sum(kernels=_flatten(Sum, self) + _flatten(Sum, other))

    def __mul__(self, other: Kernel) -> Product:
        if not isinstance(other, Kernel):
            return NotImplemented
        return Product(kernels=_flatten(Product, self) + _flatten(Product, other))


def _flatten(cls: type, kernel: Kernel) -> tuple[Kernel, ...]:
    return tuple(kernel.kernels) if isinstance(kernel, cls) else (kernel,)


def _flat(params: object) -> dict:
    if not isinstance(params, Params):
        raise TypeError(f"params must be a Params tree (e.g. from sample_params), got {type(params).__name__}")
    return params.flat()


def _get_param(params: dict, name: str) -> Tensor:
    if name not in params:
        raise ValueError(f"params is missing hyperparameter {name!r}; got {sorted(params)}")
    value = params[name]
    if not isinstance(value, Tensor) or value.dim() == 0:
        raise ValueError(f"params[{name!r}] must be a tensor with a leading batch dimension")
    return value


def _sub_params(params: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def _as_param(value: Tensor, shape: tuple[int, ...]) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float64).detach().reshape(shape).clone()


def _sq_diff(x1, x2):
    """Per-dimension squared differences `batch x n x m x d`, computed directly (exact and symmetric)."""
    diff = x1[:, :, None, :] - x2[:, None, :, :]
    return diff * diff


def _check_dimension_scaled(lengthscale: Hyperprior, ard: bool) -> None:
    """A DimensionScaledLogNormal reads the dimension off an ARD lengthscale's last axis: without ARD it has one
    value and would silently not scale."""
    if isinstance(lengthscale, DimensionScaledLogNormal) and not ard:
        raise ValueError("a DimensionScaledLogNormal lengthscale needs ard=True (it reads the dimension off the "
                         "per-feature lengthscales)")


def _lengthscale_shape(ard: bool, n_features: int) -> tuple[int, ...]:
    return (n_features,) if ard else (1,)


def _batch_view(value, n_trailing: int):
    """`batch` (or `batch x 1`) array viewed as `batch x 1 x ... x 1` to scale `batch x ...` matrices."""
    return array_namespace(value).reshape(value, (value.shape[0], *([1] * n_trailing)))


def _ones(x):
    """`batch x n` ones for inputs x `batch x n x d` (any array namespace)."""
    return array_namespace(x).ones(x.shape[:2], dtype=x.dtype, device=array_device(x))


# ----------------------------------------------------------------------------------------------------------------
# stationary kernels


@register
@dataclass(frozen=True)
class RBF(Kernel):
    r"""Squared exponential kernel (GPyTorch ``RBFKernel``), [RW2006] eq. 4.9 with ARD lengthscales:

    .. math:: k(x, x') = \exp\left(-\tfrac12 \sum_i (x_i - x'_i)^2 / \ell_i^2\right)

    Parameters: ``lengthscale`` of shape `(d,)` if ``ard`` else `(1,)`.
    """

    lengthscale: Hyperprior = field(default_factory=lambda: LogNormal(loc=-1.2, scale=0.6))
    ard: bool = True

    params_type = LengthscaleParams

    def __post_init__(self) -> None:
        _check_hyperprior("lengthscale", self.lengthscale)
        _check_bool("ard", self.ard)
        _check_dimension_scaled(self.lengthscale, self.ard)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"lengthscale": _lengthscale_shape(self.ard, _check_n_features(n_features))}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"lengthscale": self.lengthscale}

    def matrix(self, params: Params, x1, x2):
        xp = array_namespace(x1, x2)
        ls = params.lengthscale[:, None, :]  # batch x 1 x d'
        r2 = xp.sum(_sq_diff(x1 / ls, x2 / ls), axis=-1)  # batch x n x m
        return xp.exp(-0.5 * r2)

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return _ones(x)

    def to_gpytorch(self, n_features: int):
        import gpytorch

        d = _check_n_features(n_features)
        return gpytorch.kernels.RBFKernel(ard_num_dims=d if self.ard else None).double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        gp_kernel.lengthscale = _as_param(params.lengthscale, (1, -1))

    def get_gpytorch_params(self, gp_kernel) -> LengthscaleParams:
        return LengthscaleParams(lengthscale=_as_param(gp_kernel.lengthscale, (-1,)))


@register
@dataclass(frozen=True)
class Matern(Kernel):
    r"""Matérn kernel (GPyTorch ``MaternKernel``), [RW2006] eqs. 4.14–4.17, with :math:`r^2 = \sum_i (x_i -
    x'_i)^2/\ell_i^2`:

    .. math::
        k_{1/2} = e^{-r}, \quad k_{3/2} = (1 + \sqrt3 r) e^{-\sqrt3 r}, \quad
        k_{5/2} = (1 + \sqrt5 r + \tfrac53 r^2) e^{-\sqrt5 r}

    Parameters: ``lengthscale`` of shape `(d,)` if ``ard`` else `(1,)`. ``nu`` must be 0.5, 1.5 or 2.5.
    """

    nu: float = 2.5
    lengthscale: Hyperprior = field(default_factory=lambda: LogNormal(loc=-1.2, scale=0.6))
    ard: bool = True

    params_type = LengthscaleParams

    def __post_init__(self) -> None:
        if isinstance(self.nu, bool) or not isinstance(self.nu, (int, float)) or float(self.nu) not in _MATERN_NUS:
            raise ValueError(f"nu must be one of {_MATERN_NUS}, got {self.nu!r}")
        _check_hyperprior("lengthscale", self.lengthscale)
        _check_bool("ard", self.ard)
        _check_dimension_scaled(self.lengthscale, self.ard)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"lengthscale": _lengthscale_shape(self.ard, _check_n_features(n_features))}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"lengthscale": self.lengthscale}

    def matrix(self, params: Params, x1, x2):
        xp = array_namespace(x1, x2)
        ls = params.lengthscale[:, None, :]
        r = xp.sqrt(xp.clip(xp.sum(_sq_diff(x1 / ls, x2 / ls), axis=-1), min=_TINY_SQ))  # batch x n x m
        nu = float(self.nu)
        if nu == 0.5:
            return xp.exp(-r)
        if nu == 1.5:
            s = math.sqrt(3.0) * r
            return (1.0 + s) * xp.exp(-s)
        s = math.sqrt(5.0) * r
        return (1.0 + s + s * s / 3.0) * xp.exp(-s)

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return _ones(x)

    def to_gpytorch(self, n_features: int):
        import gpytorch

        d = _check_n_features(n_features)
        return gpytorch.kernels.MaternKernel(nu=float(self.nu), ard_num_dims=d if self.ard else None).double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        gp_kernel.lengthscale = _as_param(params.lengthscale, (1, -1))

    def get_gpytorch_params(self, gp_kernel) -> LengthscaleParams:
        return LengthscaleParams(lengthscale=_as_param(gp_kernel.lengthscale, (-1,)))


@dataclass(frozen=True, eq=False)
class RationalQuadraticParams(Params):
    """:class:`RationalQuadratic`: ``lengthscale`` `batch x d` (ARD) or `batch x 1`, ``alpha`` `batch`."""

    lengthscale: Tensor
    alpha: Tensor


@register
@dataclass(frozen=True)
class RationalQuadratic(Kernel):
    r"""Rational quadratic kernel (GPyTorch ``RQKernel``), [RW2006] eq. 4.19 with ARD lengthscales, a scale
    mixture of RBF kernels whose inverse squared lengthscales are Gamma-distributed with shape :math:`\alpha`:

    .. math:: k(x, x') = \left(1 + \frac{r^2}{2\alpha}\right)^{-\alpha}, \qquad
        r^2 = \sum_i (x_i - x'_i)^2 / \ell_i^2

    (the RBF as :math:`\alpha \to \infty`). Parameters: ``lengthscale`` of shape `(d,)` if ``ard`` else `(1,)`,
    ``alpha`` of shape `()`.
    """

    params_type = RationalQuadraticParams

    lengthscale: Hyperprior = field(default_factory=lambda: LogNormal(loc=-1.2, scale=0.6))
    alpha: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.0, scale=0.75))
    ard: bool = True

    def __post_init__(self) -> None:
        _check_hyperprior("lengthscale", self.lengthscale)
        _check_hyperprior("alpha", self.alpha)
        _check_bool("ard", self.ard)
        _check_dimension_scaled(self.lengthscale, self.ard)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"lengthscale": _lengthscale_shape(self.ard, _check_n_features(n_features)), "alpha": ()}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"lengthscale": self.lengthscale, "alpha": self.alpha}

    def matrix(self, params: Params, x1, x2):
        xp = array_namespace(x1, x2)
        ls = params.lengthscale[:, None, :]
        r2 = xp.sum(_sq_diff(x1 / ls, x2 / ls), axis=-1)  # batch x n x m
        alpha = _batch_view(params.alpha, 2)
        return xp.exp(-alpha * xp.log1p(r2 / (2.0 * alpha)))

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return _ones(x)

    def to_gpytorch(self, n_features: int):
        import gpytorch

        d = _check_n_features(n_features)
        return gpytorch.kernels.RQKernel(ard_num_dims=d if self.ard else None).double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        gp_kernel.lengthscale = _as_param(params.lengthscale, (1, -1))
        gp_kernel.alpha = _as_param(params.alpha, (1,))

    def get_gpytorch_params(self, gp_kernel) -> RationalQuadraticParams:
        return RationalQuadraticParams(lengthscale=_as_param(gp_kernel.lengthscale, (-1,)),
                                       alpha=_as_param(gp_kernel.alpha, ()))


@register
@dataclass(frozen=True)
class Periodic(Kernel):
    r"""Periodic kernel in GPyTorch's ``PeriodicKernel`` parameterisation (lengthscale *not* squared):

    .. math:: k(x, x') = \exp\left(-2 \sum_i \sin^2\!\left(\pi (x_i - x'_i) / p_i\right) / \ell_i\right)

    Parameters: ``lengthscale`` and ``period`` each of shape `(d,)` if ``ard`` else `(1,)` (shared by all
    dimensions, still summed over them).
    """

    lengthscale: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.0, scale=0.5))
    period: Hyperprior = field(default_factory=lambda: LogNormal(loc=-0.7, scale=0.5))
    ard: bool = False

    params_type = PeriodicParams

    def __post_init__(self) -> None:
        _check_hyperprior("lengthscale", self.lengthscale)
        _check_hyperprior("period", self.period)
        _check_bool("ard", self.ard)
        _check_dimension_scaled(self.lengthscale, self.ard)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        shape = _lengthscale_shape(self.ard, _check_n_features(n_features))
        return {"lengthscale": shape, "period": shape}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"lengthscale": self.lengthscale, "period": self.period}

    def matrix(self, params: Params, x1, x2):
        xp = array_namespace(x1, x2)
        ls = params.lengthscale[:, None, None, :]  # batch x 1 x 1 x d'
        period = params.period[:, None, None, :]
        diff = x1[:, :, None, :] - x2[:, None, :, :]  # batch x n x m x d
        sin = xp.sin(math.pi * diff / period)
        return xp.exp(-2.0 * xp.sum(sin * sin / ls, axis=-1))

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return _ones(x)

    def to_gpytorch(self, n_features: int):
        import gpytorch

        d = _check_n_features(n_features)
        # PeriodicKernel reads ard_num_dims from its kwargs and rejects None: pass it only for ARD
        kwargs = {"ard_num_dims": d} if self.ard else {}
        return gpytorch.kernels.PeriodicKernel(**kwargs).double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        gp_kernel.lengthscale = _as_param(params.lengthscale, (1, -1))
        gp_kernel.period_length = _as_param(params.period, (1, -1))

    def get_gpytorch_params(self, gp_kernel) -> PeriodicParams:
        return PeriodicParams(lengthscale=_as_param(gp_kernel.lengthscale, (-1,)),
                              period=_as_param(gp_kernel.period_length, (-1,)))


@register
@dataclass(frozen=True)
class Linear(Kernel):
    r"""Linear (dot-product) kernel (GPyTorch ``LinearKernel``), [RW2006] eq. 4.21 without offset:

    .. math:: k(x, x') = v \, x^\top x'

    Parameters: ``variance`` of shape `()`. Not stationary: inputs are used as they are (no centring).
    """

    stationary = False

    variance: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.0, scale=0.5))

    params_type = LinearParams

    def __post_init__(self) -> None:
        _check_hyperprior("variance", self.variance)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        _check_n_features(n_features)
        return {"variance": ()}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"variance": self.variance}

    def matrix(self, params: Params, x1, x2):
        return _batch_view(params.variance, 2) * (x1 @ x2.mT)

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return _batch_view(params.variance, 1) * x.square().sum(-1)

    def to_gpytorch(self, n_features: int):
        import gpytorch

        _check_n_features(n_features)
        return gpytorch.kernels.LinearKernel().double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        gp_kernel.variance = _as_param(params.variance, (1, 1))

    def get_gpytorch_params(self, gp_kernel) -> LinearParams:
        return LinearParams(variance=_as_param(gp_kernel.variance, ()))


@register
@dataclass(frozen=True)
class SpectralMixture(Kernel):
    r"""Spectral mixture kernel exactly as GPyTorch's ``SpectralMixtureKernel`` computes it, with
    :math:`\tau = x - x'`:

    .. math:: k(x, x') = \prod_{i=1}^{d} \sum_{q=1}^{Q} w_q
        \exp\left(-2\pi^2 \tau_i^2 s_{qi}^2\right) \cos\left(2\pi \tau_i \mu_{qi}\right)

    For d = 1 this is [WA2013] eq. 12. For d > 1 GPyTorch takes the product over dimensions of 1-D mixtures that
    share the weights (gpytorch issues #1198, #1981), not [WA2013]'s sum over components of products; we follow
    GPyTorch so that the ML-II twin fits the same model. ``means`` are frequencies (cycles per unit input) and
    ``scales`` are frequency standard deviations (an RBF lengthscale of ``1 / (2 pi s)``).

    Parameters: ``weights`` `(Q,)`, ``means`` `(Q, d)`, ``scales`` `(Q, d)`.
    """

    num_mixtures: int = 2
    weights: Hyperprior = field(default_factory=lambda: LogNormal(loc=-0.7, scale=0.5))
    means: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.7, scale=0.75))
    scales: Hyperprior = field(default_factory=lambda: LogNormal(loc=-0.7, scale=0.5))

    params_type = SpectralMixtureParams

    def __post_init__(self) -> None:
        check_int("num_mixtures", self.num_mixtures, minimum=1)
        _check_hyperprior("weights", self.weights)
        _check_hyperprior("means", self.means)
        _check_hyperprior("scales", self.scales)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        d = _check_n_features(n_features)
        q = self.num_mixtures
        return {"weights": (q,), "means": (q, d), "scales": (q, d)}

    def _hyperpriors(self) -> dict[str, Hyperprior]:
        return {"weights": self.weights, "means": self.means, "scales": self.scales}

    def matrix(self, params: Params, x1, x2):
        xp = array_namespace(x1, x2)
        b, q, d = params.means.shape
        w = xp.reshape(params.weights, (b, q, 1, 1, 1))  # b x Q x 1 x 1 x 1
        mu = xp.reshape(params.means, (b, q, 1, 1, d))  # b x Q x 1 x 1 x d
        sc = xp.reshape(params.scales, (b, q, 1, 1, d))
        tau = (x1[:, :, None, :] - x2[:, None, :, :])[:, None]  # b x 1 x n x m x d
        ts = tau * sc
        comp = xp.exp(-2.0 * math.pi**2 * (ts * ts)) * xp.cos(2.0 * math.pi * tau * mu)
        return xp.prod(xp.sum(w * comp, axis=1), axis=-1)  # mixture summed, then the product over dims

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        total_w = params.weights.sum(-1)  # batch
        return (total_w ** x.shape[-1]).reshape(-1, 1).expand(x.shape[0], x.shape[1]).clone()

    def to_gpytorch(self, n_features: int):
        import gpytorch

        d = _check_n_features(n_features)
        return gpytorch.kernels.SpectralMixtureKernel(num_mixtures=self.num_mixtures, ard_num_dims=d).double()

    def set_gpytorch_params(self, gp_kernel, params: Params) -> None:
        q = self.num_mixtures
        gp_kernel.mixture_weights = _as_param(params.weights, (q,))
        gp_kernel.mixture_means = _as_param(params.means, (q, 1, -1))
        gp_kernel.mixture_scales = _as_param(params.scales, (q, 1, -1))

    def get_gpytorch_params(self, gp_kernel) -> SpectralMixtureParams:
        q = self.num_mixtures
        return SpectralMixtureParams(weights=_as_param(gp_kernel.mixture_weights, (q,)),
                                     means=_as_param(gp_kernel.mixture_means, (q, -1)),
                                     scales=_as_param(gp_kernel.mixture_scales, (q, -1)))


# ----------------------------------------------------------------------------------------------------------------
# wrappers and composites


@register
@dataclass(frozen=True)
class Scale(Kernel):
    r"""A kernel times an output variance (GPyTorch ``ScaleKernel``): :math:`k(x, x') = \sigma^2 k_0(x, x')`.

    Parameters: ``outputscale`` (:math:`\sigma^2`, a variance) of shape `()`, plus the base kernel's parameters
    under their own names (a Scale cannot wrap a Scale directly: the names would clash).
    """

    base: Kernel = field(default_factory=RBF)
    outputscale: Hyperprior = field(default_factory=lambda: LogNormal(loc=0.0, scale=0.5))

    def __post_init__(self) -> None:
        if not isinstance(self.base, Kernel):
            raise TypeError(f"base must be a Kernel, got {type(self.base).__name__}: {self.base!r}")
        _check_hyperprior("outputscale", self.outputscale)
        if "outputscale" in self.base.param_shapes(1):
            raise ValueError(
                f"base must not have its own 'outputscale' (a Scale of a Scale is redundant), got {self.base!r}"
            )

    @property
    def stationary(self) -> bool:  # type: ignore[override]
        return self.base.stationary

    @property
    def reflection_invariant(self) -> bool:
        return self.base.reflection_invariant

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"outputscale": (), **self.base.param_shapes(n_features)}

    def params_from(self, flat: dict) -> ScaleParams:
        if "outputscale" not in flat:
            raise ValueError("params is missing hyperparameter(s) ['outputscale'] of Scale")
        return ScaleParams(outputscale=flat["outputscale"], base=self.base.params_from(flat))

    def sample_params(self, batch_size: int, n_features: int, generator: torch.Generator) -> ScaleParams:
        check_int("batch_size", batch_size, minimum=1)
        _check_n_features(n_features)
        value = self.outputscale.sample((batch_size,), generator).to(torch.float64)
        if not (torch.isfinite(value).all() and (value > 0).all()):
            raise ValueError(f"the hyperprior of 'outputscale' ({self.outputscale!r}) drew non-positive values")
        return ScaleParams(outputscale=value, base=self.base.sample_params(batch_size, n_features, generator))

    def check_tree(self, params: object, where: str = "params") -> None:
        if not isinstance(params, ScaleParams):
            raise TypeError(f"{where} must be ScaleParams (for Scale; e.g. from sample_params), got "
                            f"{type(params).__name__}")
        self.base.check_tree(params.base, f"{where}.base")

    def log_prior(self, params: ScaleParams) -> Tensor:
        self.check_tree(params)
        value = _get_param(params.flat(), "outputscale").to(torch.float64)
        return self.outputscale.log_prob(value) + self.base.log_prior(params.base)

    def matrix(self, params: Params, x1, x2):
        return _batch_view(params.outputscale, 2) * self.base.matrix(params.base, x1, x2)

    def hyperpriors(self) -> dict[str, Hyperprior]:
        return {"outputscale": self.outputscale, **self.base.hyperpriors()}

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return _batch_view(params.outputscale, 1) * self.base._diag(params.base, x)

    def to_gpytorch(self, n_features: int):
        import gpytorch

        return gpytorch.kernels.ScaleKernel(self.base.to_gpytorch(n_features)).double()

    def set_gpytorch_params(self, gp_kernel, params: ScaleParams) -> None:
        gp_kernel.outputscale = _as_param(params.outputscale, ())
        self.base.set_gpytorch_params(gp_kernel.base_kernel, params.base)

    def get_gpytorch_params(self, gp_kernel) -> ScaleParams:
        return ScaleParams(outputscale=_as_param(gp_kernel.outputscale, ()),
                           base=self.base.get_gpytorch_params(gp_kernel.base_kernel))


class _Composite(Kernel):
    """Shared code of Sum and Product: children's parameters are prefixed ``"k0."``, ``"k1."``, …"""

    kernels: tuple[Kernel, ...]

    def _validate(self) -> None:
        if not isinstance(self.kernels, tuple):
            raise TypeError(f"kernels must be a tuple of Kernel, got {type(self.kernels).__name__}")
        if len(self.kernels) < 2:
            raise ValueError(f"kernels must hold at least 2 kernels, got {len(self.kernels)}")
        for i, k in enumerate(self.kernels):
            if not isinstance(k, Kernel):
                raise TypeError(f"kernels[{i}] must be a Kernel, got {type(k).__name__}: {k!r}")

    @property
    def stationary(self) -> bool:  # type: ignore[override]
        return all(k.stationary for k in self.kernels)

    @property
    def reflection_invariant(self) -> bool:
        return all(k.reflection_invariant for k in self.kernels)

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for i, k in enumerate(self.kernels):
            out.update({f"k{i}.{name}": shape for name, shape in k.param_shapes(n_features).items()})
        return out

    def params_from(self, flat: dict) -> CompositeParams:
        return CompositeParams(parts=tuple(k.params_from(_sub_params(flat, f"k{i}.")) for i, k in enumerate(self.kernels)))

    def sample_params(self, batch_size: int, n_features: int, generator: torch.Generator) -> CompositeParams:
        return CompositeParams(parts=tuple(k.sample_params(batch_size, n_features, generator) for k in self.kernels))

    def log_prior(self, params: CompositeParams) -> Tensor:
        return torch.stack([k.log_prior(p) for k, p in self._children(params)]).sum(0)

    def check_tree(self, params: object, where: str = "params") -> None:
        if not isinstance(params, CompositeParams) or len(params.parts) != len(self.kernels):
            raise TypeError(f"{where} must be CompositeParams with {len(self.kernels)} parts (for "
                            f"{type(self).__name__}; e.g. from sample_params), got {type(params).__name__}")
        for i, (k, p) in enumerate(zip(self.kernels, params.parts)):
            k.check_tree(p, f"{where}.parts[{i}]")

    def _children(self, params: CompositeParams):
        self.check_tree(params)
        return list(zip(self.kernels, params.parts))

    def matrix(self, params: Params, x1, x2):
        return self._combine([k.matrix(p, x1, x2) for k, p in self._children(params)])

    def _diag(self, params: Params, x: Tensor) -> Tensor:
        return self._combine([k._diag(p, x) for k, p in self._children(params)])

    def hyperpriors(self) -> dict[str, Hyperprior]:
        out: dict[str, Hyperprior] = {}
        for i, k in enumerate(self.kernels):
            out.update({f"k{i}.{n}": hp for n, hp in k.hyperpriors().items()})
        return out

    def to_gpytorch(self, n_features: int):
        import gpytorch

        gp_class = getattr(gpytorch.kernels, self._gpytorch_name)
        return gp_class(*[k.to_gpytorch(n_features) for k in self.kernels]).double()

    def set_gpytorch_params(self, gp_kernel, params: CompositeParams) -> None:
        for (k, p), gk in zip(self._children(params), gp_kernel.kernels):
            k.set_gpytorch_params(gk, p)

    def get_gpytorch_params(self, gp_kernel) -> CompositeParams:
        return CompositeParams(parts=tuple(k.get_gpytorch_params(gk) for k, gk in zip(self.kernels, gp_kernel.kernels)))


@register
@dataclass(frozen=True)
class Sum(_Composite):
    r"""Sum of kernels (GPyTorch ``AdditiveKernel``): :math:`k = \sum_j k_j`. Build it with ``k1 + k2``."""

    kernels: tuple[Kernel, ...]
    _gpytorch_name = "AdditiveKernel"

    def __post_init__(self) -> None:
        self._validate()

    @staticmethod
    def _combine(parts: list):
        out = parts[0]
        for part in parts[1:]:
            out = out + part
        return out


@register
@dataclass(frozen=True)
class Product(_Composite):
    r"""Product of kernels (GPyTorch ``ProductKernel``): :math:`k = \prod_j k_j`. Build it with ``k1 * k2``."""

    kernels: tuple[Kernel, ...]
    _gpytorch_name = "ProductKernel"

    def __post_init__(self) -> None:
        self._validate()

    @staticmethod
    def _combine(parts: list):
        out = parts[0]
        for part in parts[1:]:
            out = out * part
        return out
