r"""Bayesian neural network prior: datasets from random fully connected networks.

Per dataset: per-layer weight and bias standard deviations :math:`\sigma^w_l, \sigma^b_l` from their hyperpriors
(``Fixed`` for known values), a network with ``depth`` hidden layers of ``width`` units,

.. math::
    h_0 = 2x - 1, \quad h_{l} = \phi(h_{l-1} W_l + b_l), \quad f(x) = h_L W_{L+1} + b_{L+1}, \qquad
    W_l \sim N\!\left(0, (\sigma^w_l)^2 / \text{fan-in}_l\right),\; b_l \sim N(0, (\sigma^b_l)^2)

(without ``fan_in``, :math:`W_l \sim N(0, (\sigma^w_l)^2)`: "N(0, 1) weights" at :math:`\sigma^w = 1`), and
:math:`y = f(x) + \sigma_n \eta`. Like :class:`~priorfit.priors.invariant.InvariantGPPrior` it is stated in the
context's units, the path an estimator serves: the network reads the inputs scaled by the context (so x in
:math:`[0, 1]^d` over the context), and the targets' location and scale are unknown under
:math:`p(\mu, \sigma) \propto 1/\sigma`, so datasets are drawn with :math:`\mu = 0`, :math:`\sigma = 1`.

Its exact reference (:mod:`priorfit.exact.bnn`) samples the weights, their scales, the noise and the targets'
location and scale by NUTS. :mod:`priorfit.priors.functional` fits the scales so that the network's functions
match a GP's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.priors.base import Batch, Symmetries, sample_arguments
from priorfit.priors.conditional import NormalTargets
from priorfit.priors.hyperpriors import Fixed, Hyperprior, LogNormal
from priorfit.priors.inputs import InputSampler, UniformInputs
from priorfit.priors.params import Params
from priorfit.preprocessing import context_input_scaling, scale_inputs
from priorfit.validation import check_int

__all__ = ["BNNPrior", "BNNParams", "BNN_ACTIVATIONS", "network_forward", "network_outputs"]

BNN_ACTIVATIONS = ("relu", "tanh")


def _activation(name: str, xp_module):
    if name == "relu":
        return lambda h: h * (h > 0)
    return xp_module.tanh


def network_outputs(x, weights, biases, activation: str):
    """Every output of a batch of networks at inputs x (`batch x n x d`, already the network's input):
    ``weights[l]`` `batch x fan_in x fan_out`, ``biases[l]`` `batch x fan_out`; returns `batch x n x outputs`.
    Torch tensors or JAX arrays."""
    from array_api_compat import array_namespace

    xp = array_namespace(x)
    phi = _activation(activation, xp)
    h = x
    for layer, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w + b[:, None, :]
        if layer < len(weights) - 1:
            h = phi(h)
    return h


def network_forward(x, weights, biases, activation: str):
    """f of a batch of single-output networks at inputs x (:func:`network_outputs`' first output): `batch x n`."""
    return network_outputs(x, weights, biases, activation)[..., 0]


@dataclass(frozen=True, eq=False)
class BNNParams(Params):
    """A network per dataset: ``weight_std`` and ``bias_std`` (`batch x (depth + 1)`), the weights and biases of
    each layer (tuples; `batch x fan_in x fan_out` and `batch x fan_out`) and ``noise_std`` (`batch`)."""

    weight_std: Tensor
    bias_std: Tensor
    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    noise_std: Tensor


def _hyperpriors(name: str, value: object, layers: int) -> tuple[Hyperprior, ...]:
    if not isinstance(value, tuple) or len(value) != layers or not all(isinstance(v, Hyperprior) for v in value):
        raise TypeError(f"{name} must be a tuple of {layers} Hyperpriors (one per layer: depth + 1), got {value!r}")
    for v in value:
        if v.support.low < 0 or isinstance(v, Fixed) and v.value < 0:
            raise ValueError(f"{name} must hold priors on non-negative values, got {v!r}")
    return value


@register
@dataclass(frozen=True)
class BNNPrior:
    """Random fully connected networks (module docstring).

    Fields:
        width, depth: hidden units per layer and hidden layers.
        activation: "relu" or "tanh".
        weight_std, bias_std: one hyperprior per layer (depth + 1 of them, the read-out last) of
            :math:`\\sigma^w_l` and :math:`\\sigma^b_l`.
        fan_in: divide each layer's weight standard deviation by the square root of its fan-in.
        noise_std: hyperprior of :math:`\\sigma_n`, relative to the network's output.
        inputs: input sampler on [0, 1]^d.
        max_features: the largest d.
    """

    width: int = 16
    depth: int = 2
    activation: str = "relu"
    weight_std: tuple = (Fixed(1.4), Fixed(1.4), Fixed(1.0))
    bias_std: tuple = (Fixed(0.5), Fixed(0.5), Fixed(0.5))
    fan_in: bool = True
    noise_std: Hyperprior = field(default_factory=lambda: LogNormal(loc=-2.0, scale=1.0))
    inputs: InputSampler = field(default_factory=UniformInputs)
    max_features: int = 1

    def __post_init__(self) -> None:
        check_int("width", self.width, minimum=1)
        check_int("depth", self.depth, minimum=1)
        if self.activation not in BNN_ACTIVATIONS:
            raise ValueError(f"activation must be one of {BNN_ACTIVATIONS}, got {self.activation!r}")
        _hyperpriors("weight_std", self.weight_std, self.depth + 1)
        _hyperpriors("bias_std", self.bias_std, self.depth + 1)
        if not isinstance(self.fan_in, bool):
            raise TypeError(f"fan_in must be a bool, got {self.fan_in!r}")
        if not isinstance(self.noise_std, Hyperprior):
            raise TypeError(f"noise_std must be a Hyperprior, got {type(self.noise_std).__name__}")
        if not isinstance(self.inputs, InputSampler):
            raise TypeError(f"inputs must be an InputSampler, got {type(self.inputs).__name__}")
        check_int("max_features", self.max_features, minimum=1)

    @classmethod
    def with_scales(cls, weight_std: float | tuple, bias_std: float | tuple, **fields) -> BNNPrior:
        """A prior with fixed per-layer scales (one number: the same at every layer)."""
        depth = fields.get("depth", cls.depth)

        def fixed(value) -> tuple:
            values = (value,) * (depth + 1) if isinstance(value, (int, float)) else tuple(value)
            return tuple(Fixed(float(v)) for v in values)

        return cls(weight_std=fixed(weight_std), bias_std=fixed(bias_std), **fields)

    @property
    def symmetries(self) -> Symmetries:
        """Reordering features leaves it unchanged (iid first-layer weights); so does y -> -y (a symmetric
        read-out and the flat location prior); reflecting a feature does too (x_j -> 1 - x_j flips the sign of the
        network's input j, which the symmetric weights absorb), when the inputs are symmetric."""
        return Symmetries(reflect_inputs=self.inputs.symmetric, permute_inputs=self.inputs.symmetric,
                          negate_targets=True)

    def weight_scale(self, weight_std, fan_in: int):
        """The standard deviation of a layer's weights from its scale ``weight_std`` (a tensor or JAX array):
        divided by sqrt(fan_in) when the prior is fan-in scaled. One place, for the sampler, the exact references
        and the functional-prior fit alike."""
        return weight_std / (math.sqrt(fan_in) if self.fan_in else 1.0)

    def layer_sizes(self, n_features: int, n_outputs: int = 1) -> list[tuple[int, int]]:
        """(fan-in, fan-out) of each layer for ``n_features`` inputs and ``n_outputs`` read-outs."""
        sizes = [n_features] + [self.width] * self.depth + [n_outputs]
        return list(zip(sizes[:-1], sizes[1:]))

    def references(self, settings=None) -> tuple:
        """The Bayes posterior by tempered SMC with HMC moves over the weights (:mod:`priorfit.exact.bnn`; NUTS
        chains do not cross the posterior's modes), and the practitioners' fitted GPs."""
        from priorfit.exact.baselines import BoTorchGP, SklearnGP
        from priorfit.exact.bnn import BNNPosteriorSMC
        from priorfit.exact.reference import ReferenceSettings

        settings = ReferenceSettings() if settings is None else settings
        return (BNNPosteriorSMC(self), SklearnGP(settings.ml2_restarts), BoTorchGP())

    def sample_params(self, batch_size: int, n_features: int, generator: torch.Generator,
                      n_outputs: int = 1) -> BNNParams:
        """Scales, then weights given them, and the noise, for ``batch_size`` networks with ``n_outputs``
        read-outs (a classifier's logits: one per class)."""
        layers = self.depth + 1
        weight_std = torch.stack([hp.sample((batch_size,), generator) for hp in self.weight_std], -1).double()
        bias_std = torch.stack([hp.sample((batch_size,), generator) for hp in self.bias_std], -1).double()
        weights, biases = [], []
        for layer, (fan_in, fan_out) in enumerate(self.layer_sizes(n_features, n_outputs)):
            std = self.weight_scale(weight_std[:, layer], fan_in)
            z = torch.randn(batch_size, fan_in, fan_out, generator=generator, dtype=torch.float64)
            weights.append(std[:, None, None] * z)
            biases.append(bias_std[:, layer, None] * torch.randn(batch_size, fan_out, generator=generator,
                                                                  dtype=torch.float64))
        assert len(weights) == layers
        noise_std = self.noise_std.sample((batch_size,), generator).double()
        return BNNParams(weight_std=weight_std, bias_std=bias_std, weights=tuple(weights), biases=tuple(biases),
                         noise_std=noise_std)

    def function(self, params: BNNParams, x: Tensor, x_ctx: Tensor) -> Tensor:
        """f at x (`batch x m x d`), the network reading x in the units of the context x_ctx (`batch x n x d`)."""
        lo, width = context_input_scaling(x_ctx)
        return network_forward(2.0 * scale_inputs(x, lo, width) - 1.0, params.weights, params.biases, self.activation)

    def conditional(self, batch: Batch, n_context: int) -> NormalTargets | None:
        """Each query target's normal given the network the dataset was drawn with: its output there, and the
        noise (:mod:`priorfit.priors.conditional`; the network is read in the units of the first ``n_context``
        points, as it was drawn); None when some dataset of the batch has no noise."""
        x, params = batch.x, batch.params
        if not bool((params.noise_std > 0).all()):  # noiseless targets have no density to score against
            return None
        mean = self.function(params, x[:, n_context:], x[:, :n_context])
        return NormalTargets(mean=mean, std=params.noise_std[:, None].to(mean).expand_as(mean))

    def sample(
        self,
        batch_size: int,
        n_points: int,
        generator: torch.Generator,
        n_features: int | None = None,
        device: torch.device | str | None = None,
        n_context: int | None = None,
    ) -> Batch:
        """``batch_size`` datasets of ``n_points`` points, the networks reading the inputs in the units of the first
        ``n_context`` points (default: all); location 0, scale 1."""
        n_features, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        params = self.sample_params(batch_size, n_features, generator)
        x = self.inputs.sample(batch_size, n_points, n_features, generator).to(torch.float64)
        eta = torch.randn(batch_size, n_points, generator=generator, dtype=torch.float64)
        y = self.function(params, x, x[:, :n_context]) + params.noise_std[:, None] * eta
        return Batch(x=x, y=y, params=params)
