r"""GP classification: labels from a softmax over independent latent GPs.

For a dataset with :math:`C` classes (drawn per batch, uniform on ``min_classes`` ... ``max_classes``, and at most
the context's size, since a classifier is fitted to the classes its training data holds): one set of
hyperparameters :math:`\theta` from the GP prior's hyperpriors, shared by the classes; per class :math:`c` a
constant mean :math:`m_c` from the GP's mean hyperprior (unequal means make unequal class frequencies) and a
latent function :math:`f_c \sim GP(m_c, k_\theta)`, independent across classes; at each point the latent value
:math:`g_c(x) = f_c(x) + \sigma \varepsilon_c` (the GP's noise hyperprior, a white-noise part of the latent:
label noise), and the label :math:`y \sim \text{Categorical}(\text{softmax}(g(x)))`. With :math:`C = 2` this is
logistic GP classification of :math:`g_1 - g_2`. Classes are exchangeable: the prior is invariant to relabelling.
The latent functions are drawn on the inputs scaled by the context (each feature by the range of the first
``n_context`` points, as :mod:`priorfit.preprocessing` does), so the prior is stated in the units a classifier is
shown and a lengthscale is a fraction of the data's own range, whatever units a user's features are in.

A query label's exact distribution given the latent values its dataset was drawn with is
:math:`\text{softmax}(g(x^*))` (:meth:`GPClassificationPrior.conditional`): what a Rao-Blackwellised
cross-entropy scores the network against instead of the one sampled label.

Its exact reference is the posterior predictive by NUTS (:mod:`priorfit.exact.classification`). Labels are
float64 class indices 0 ... C - 1 in ``Batch.y``; :attr:`GPClassificationPrior.target_kind` tells
training to fit a classifier (``ModelConfig.n_classes``) on them, never a regression PFN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.preprocessing import context_input_scaling, scale_inputs
from priorfit.priors.base import Batch, Symmetries
from priorfit.priors.gp import GPParams, GPPrior, cholesky_with_jitter
from priorfit.priors.params import Params
from priorfit.validation import check_int

__all__ = ["CategoricalTargets", "ClassificationParams", "GPClassificationPrior", "LabelProbabilities",
           "TabularLabelPrior", "draw_labels", "number_of_classes", "stated_probabilities"]


@dataclass(frozen=True)
class CategoricalTargets:
    """The exact class probabilities of each held-out label given its dataset's latent values: `batch x m x C`,
    float64, rows summing to 1."""

    probs: Tensor


@dataclass(frozen=True, eq=False)
class LabelProbabilities(Params):
    """What a dataset of a prior of labels was drawn with, where that is only the class probabilities at each point
    (`batch x n x C`): the tabular priors, and mixtures of priors of labels."""

    probs: Tensor


def number_of_classes(prior, n_context: int, generator: torch.Generator, n_classes: int | None = None) -> int:
    """The number of classes of a batch of a prior of labels (its ``min_classes`` and ``max_classes``): checked
    when given, else uniform on min_classes ... max_classes cut to the context's size (never below
    min_classes), since a classifier is fitted to the classes its training data holds."""
    if n_classes is None:
        most = max(prior.min_classes, min(prior.max_classes, n_context))
        n_classes = int(torch.randint(prior.min_classes, most + 1, (1,), generator=generator))
    return check_int("n_classes", n_classes, minimum=prior.min_classes, maximum=prior.max_classes)


def stated_probabilities(batch: Batch, n_context: int) -> CategoricalTargets:
    """The class probabilities of each label after the first ``n_context`` that a batch of a prior of labels
    states (its params are :class:`LabelProbabilities`): such a prior's ``conditional``."""
    if not isinstance(batch.params, LabelProbabilities):
        raise TypeError("batch must be one this prior drew (its params are LabelProbabilities)")
    return CategoricalTargets(batch.params.probs[:, n_context:])


class TabularLabelPrior:
    """What the tabular priors of labels share (random causal graphs, factors, trees): reflecting or reordering
    features leaves the prior as it is, each dataset states its class probabilities at every point (its params are
    :class:`LabelProbabilities`), so the conditional training scores against is those, and there is no exact
    reference (the posterior would integrate over random structures that nothing here computes)."""

    #: What a dataset's targets are: class labels.
    target_kind = "categorical"

    @property
    def symmetries(self) -> Symmetries:
        """Features are exchangeable and reflectable; labels are exchangeable, which no ``Symmetries`` field states."""
        return Symmetries(reflect_inputs=True, permute_inputs=True)

    def references(self, settings=None) -> tuple:
        """None (see the class docstring)."""
        return ()

    def conditional(self, batch: Batch, n_context: int) -> CategoricalTargets:
        """The exact class probabilities of each label after the first ``n_context`` of each dataset of ``batch``
        (one this prior drew), given the structure it was drawn from: what the dataset states."""
        return stated_probabilities(batch, n_context)


def draw_labels(probs: Tensor, generator: torch.Generator) -> Tensor:
    """One label per point from class probabilities `probs` (`batch x n x C`): float64 class indices, drawn by
    inverting each point's cumulative distribution at a uniform number."""
    u = torch.rand(*probs.shape[:-1], 1, generator=generator, dtype=probs.dtype)
    return (u > probs.cumsum(-1)[..., :-1]).sum(-1).to(torch.float64)


@dataclass(frozen=True, eq=False)
class ClassificationParams(Params):
    """What a dataset was drawn with: the GP's hyperparameters (``gp.mean`` unused: the classes' own means are in
    ``class_means``), each class's mean (`batch x C`) and the latent values at every point (`batch x n x C`)."""

    gp: GPParams
    class_means: Tensor
    latents: Tensor


@register
@dataclass(frozen=True)
class GPClassificationPrior:
    """Datasets of inputs and class labels (see the module docstring).

    Fields:
        gp: the latent GP: kernel and hyperpriors, the mean hyperprior drawn once per class, the noise
            hyperprior the latent's white-noise part; its inputs and ``max_features`` are this prior's.
        min_classes, max_classes: the number of classes of a batch's datasets is uniform on this range, cut to the
            context's size when ``sample`` is told it (but never below min_classes).
    """

    gp: GPPrior = field(default_factory=GPPrior)
    min_classes: int = 2
    max_classes: int = 10

    #: What a dataset's targets are: class labels. A regression PFN cannot be trained on them.
    target_kind = "categorical"

    def __post_init__(self) -> None:
        if not isinstance(self.gp, GPPrior):
            raise TypeError(f"gp must be a GPPrior, got {type(self.gp).__name__}: {self.gp!r}")
        check_int("min_classes", self.min_classes, minimum=2)
        check_int("max_classes", self.max_classes, minimum=self.min_classes)

    @property
    def max_features(self) -> int:
        return self.gp.max_features

    @property
    def symmetries(self) -> Symmetries:
        """The latent GP's input symmetries; labels are exchangeable, which no ``Symmetries`` field states."""
        return Symmetries(reflect_inputs=self.gp.symmetries.reflect_inputs,
                          permute_inputs=self.gp.symmetries.permute_inputs)

    def references(self, settings=None) -> tuple:
        """The Bayes posterior predictive of data whose context holds every class: NUTS over the hyperparameters,
        the classes' means and the latents (:mod:`priorfit.exact.classification`), as ``settings`` (a
        ``ReferenceSettings``) sets it; and the practitioner's ML-II GP classifier (Laplace, scikit-learn)."""
        from priorfit.exact.baselines import SklearnGPClassifier
        from priorfit.exact.classification import GPClassificationMarginal
        from priorfit.exact.reference import ReferenceSettings

        settings = ReferenceSettings() if settings is None else settings
        return (GPClassificationMarginal(self, settings.nuts_warmup, settings.nuts_samples, settings.nuts_chains),
                SklearnGPClassifier(settings.ml2_restarts))

    def sample(self, batch_size: int, n_points: int, generator: torch.Generator, n_features: int | None = None,
               device: torch.device | str | None = None, n_context: int | None = None,
               n_classes: int | None = None) -> Batch:
        """``batch_size`` datasets of ``n_points`` points, all with ``n_classes`` classes (default: drawn from the
        generator, uniform on min_classes ... max_classes, at most n_context): x `batch x n x d`, y `batch x n` labels, float64.
        The latents are drawn on the inputs scaled by the first ``n_context`` points (default: all); ``device`` is
        accepted for the prior protocol and not used."""
        check_int("batch_size", batch_size, minimum=1)
        check_int("n_points", n_points, minimum=1)
        n_context = n_points if n_context is None else check_int("n_context", n_context, minimum=1, maximum=n_points)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        n_features = self.max_features if n_features is None else n_features
        check_int("n_features", n_features, minimum=1, maximum=self.max_features)
        n_classes = number_of_classes(self, n_context, generator, n_classes)
        params = self.gp.sample_params(batch_size, n_features, generator)
        class_means = self.gp.mean.sample((batch_size, n_classes), generator).to(torch.float64)
        x = self.gp.inputs.sample(batch_size, n_points, n_features, generator).to(torch.float64)
        z = torch.randn(batch_size, n_points, n_classes, generator=generator, dtype=torch.float64)
        eta = torch.randn(batch_size, n_points, n_classes, generator=generator, dtype=torch.float64)
        lo, width = context_input_scaling(x[:, :n_context])
        at = scale_inputs(x, lo, width)
        chol = cholesky_with_jitter(self.gp.kernel.forward(params.kernel, at, at), self.gp.jitter)
        latents = class_means[:, None, :] + chol @ z + params.noise_std[:, None, None] * eta
        y = draw_labels(torch.softmax(latents, dim=-1), generator)
        return Batch(x=x, y=y, params=ClassificationParams(gp=params, class_means=class_means, latents=latents))

    def conditional(self, batch: Batch, n_context: int) -> CategoricalTargets:
        """The exact class probabilities of each label after the first ``n_context`` of each dataset of ``batch``
        (one this prior drew) given the latent values it was drawn with: the softmax of the query's latents."""
        if not isinstance(batch.params, ClassificationParams):
            raise TypeError("batch must be one this prior drew (its params are ClassificationParams)")
        return CategoricalTargets(torch.softmax(batch.params.latents[:, n_context:], dim=-1))
