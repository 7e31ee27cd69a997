r"""BNN classification: labels from a softmax over a random network's outputs.

For a dataset with :math:`C` classes (drawn per batch as every prior of labels draws it,
:func:`~priorfit.priors.classification.number_of_classes`): a network of the :class:`~priorfit.priors.bnn.BNNPrior`
``network`` with :math:`C` read-outs instead of one (its layer scales from their hyperpriors, its weights given
them), reading the inputs scaled by the context as every prior here does, and a label-noise level
:math:`\epsilon` from its hyperprior; each label is drawn from

.. math::
    p(y = c \mid x) = (1 - \epsilon)\, \mathrm{softmax}(f(x))_c + \epsilon / C.

The read-out's biases make unequal class frequencies; its weight scale sets how sharp the classes are. The read-out
columns are independent and identically distributed, so the prior is invariant to relabelling; features are
exchangeable and (with symmetric inputs) reflection-invariant, as for the regression BNN.

Each dataset states its classes' probabilities at every point (:class:`LabelProbabilities`), so training scores
the network against them (:meth:`BNNClassificationPrior.conditional`). Its exact reference is the posterior
predictive by tempered SMC over the weights (:mod:`priorfit.exact.bnn_classification`), the machinery of the
regression BNN's reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.preprocessing import context_input_scaling, scale_inputs
from priorfit.priors.base import Batch, Symmetries, sample_arguments
from priorfit.priors.bnn import BNNParams, BNNPrior, network_outputs
from priorfit.priors.classification import (
    CategoricalTargets,
    LabelProbabilities,
    draw_labels,
    number_of_classes,
    stated_probabilities,
)
from priorfit.priors.hyperpriors import Fixed, Hyperprior, LogNormal
from priorfit.validation import check_int

__all__ = ["BNNClassificationParams", "BNNClassificationPrior", "default_classification_network"]


def default_classification_network(max_features: int = 8) -> BNNPrior:
    """Two tanh layers of 16 units, and a read-out whose weight scale is log-normal with median 4.5 (logits a few
    units apart: classes from nearly separable to heavily overlapping) and whose biases have standard deviation 0.5
    (unequal class frequencies). Tanh rather than ReLU: ReLU units' positive mean adds an input-independent part to
    every logit, and with three classes nearly four times as many datasets had one class above 90% (15% against 4%
    of 400 draws of 128 points, d = 4). The network's ``noise_std`` is not used by a classification prior."""
    return BNNPrior(width=16, depth=2, activation="tanh",
                    weight_std=(Fixed(1.4), Fixed(1.4), LogNormal(loc=1.5, scale=0.75)),
                    bias_std=(Fixed(0.5), Fixed(0.5), Fixed(0.5)), max_features=max_features)


@dataclass(frozen=True, eq=False)
class BNNClassificationParams(LabelProbabilities):
    """What a dataset was drawn with: each point's class probabilities (``probs``, `batch x n x C`), the network
    (``network``, with C read-outs) and the label-noise level (``label_noise``, `batch`)."""

    network: BNNParams
    label_noise: Tensor


@register
@dataclass(frozen=True)
class BNNClassificationPrior:
    """Datasets of inputs and class labels from random networks (see the module docstring).

    Fields:
        network: the network's architecture, layer-scale hyperpriors (the last layer is the read-out), inputs
            and ``max_features``; its ``noise_std`` is not used.
        label_noise: hyperprior of :math:`\\epsilon` on [0, 1] (default none).
        min_classes, max_classes: the number of classes of a batch is uniform on this range, and at most the
            context's size.
    """

    network: BNNPrior = field(default_factory=default_classification_network)
    label_noise: Hyperprior = field(default_factory=lambda: Fixed(0.0))
    min_classes: int = 2
    max_classes: int = 10

    #: What a dataset's targets are: class labels.
    target_kind = "categorical"

    def __post_init__(self) -> None:
        if not isinstance(self.network, BNNPrior):
            raise TypeError(f"network must be a BNNPrior, got {type(self.network).__name__}: {self.network!r}")
        if not isinstance(self.label_noise, Hyperprior):
            raise TypeError(f"label_noise must be a Hyperprior, got {type(self.label_noise).__name__}")
        support = self.label_noise.support
        low, high = (self.label_noise.value,) * 2 if isinstance(self.label_noise, Fixed) else (support.low,
                                                                                                 support.high)
        if low < 0 or high > 1:
            raise ValueError(f"label_noise must be a hyperprior on [0, 1], got {self.label_noise!r}")
        check_int("min_classes", self.min_classes, minimum=2)
        check_int("max_classes", self.max_classes, minimum=self.min_classes)

    @property
    def max_features(self) -> int:
        return self.network.max_features

    @property
    def symmetries(self) -> Symmetries:
        """The network's input symmetries; labels are exchangeable, which no ``Symmetries`` field states."""
        own = self.network.symmetries
        return Symmetries(reflect_inputs=own.reflect_inputs, permute_inputs=own.permute_inputs)

    def references(self, settings=None) -> tuple:
        """The Bayes posterior predictive by tempered SMC over the network's weights
        (:mod:`priorfit.exact.bnn_classification`)."""
        from priorfit.exact.bnn_classification import BNNClassificationSMC

        return (BNNClassificationSMC(self),)

    def logits(self, params: BNNParams, x: Tensor, x_ctx: Tensor) -> Tensor:
        """The networks' C outputs at x (`batch x m x d`), read in the units of the context x_ctx: `batch x m x C`."""
        lo, width = context_input_scaling(x_ctx)
        return network_outputs(2.0 * scale_inputs(x, lo, width) - 1.0, params.weights, params.biases,
                               self.network.activation)

    def sample(self, batch_size: int, n_points: int, generator: torch.Generator, n_features: int | None = None,
               device: torch.device | str | None = None, n_context: int | None = None,
               n_classes: int | None = None) -> Batch:
        """``batch_size`` datasets of ``n_points`` points with ``n_features`` features (default: all) and
        ``n_classes`` classes (default: drawn, at most n_context), the networks reading the inputs in the units of
        the first ``n_context`` points (default: all). x `batch x n x d`, y `batch x n` labels, float64;
        ``device`` is accepted for the prior protocol and not used."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        d, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        n_classes = number_of_classes(self, n_context, generator, n_classes)
        network = self.network.sample_params(batch_size, d, generator, n_outputs=n_classes)
        label_noise = self.label_noise.sample((batch_size,), generator).to(torch.float64)
        x = self.network.inputs.sample(batch_size, n_points, d, generator).to(torch.float64)
        probs = torch.softmax(self.logits(network, x, x[:, :n_context]), dim=-1)
        probs = (1.0 - label_noise[:, None, None]) * probs + label_noise[:, None, None] / n_classes
        params = BNNClassificationParams(probs=probs, network=network, label_noise=label_noise)
        return Batch(x=x, y=draw_labels(probs, generator), params=params)

    def conditional(self, batch: Batch, n_context: int) -> CategoricalTargets:
        """The exact class probabilities of each label after the first ``n_context`` of each dataset of
        ``batch`` (one this prior drew), given the network it was drawn with."""
        return stated_probabilities(batch, n_context)
