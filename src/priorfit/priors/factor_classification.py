r"""Correlated features, classes linear in the whitened features.

Many real tables measure one thing several ways: the five measurements of a crab all grow with its size, and
what tells two species apart is a small contrast between them (a shape), a direction of little variance. Every
other prior here draws independent inputs, or reads its labels from features on their own scales, so such a
direction almost never carries the label, and a model trained on them is far behind a logistic regression there.

For a dataset with :math:`d` features and :math:`C` classes: :math:`k` shared factors (uniform on
1 ... ``max_factors``, at most :math:`d`), loadings :math:`\Lambda \in \mathbb{R}^{d \times k}` with standard
normal entries and specific standard deviations :math:`\psi_j` (log-normal), so that

.. math::
    x = \Lambda z + \psi \odot \varepsilon, \quad z \sim N(0, I_k),\ \varepsilon \sim N(0, I_d), \quad
    \Sigma = \Lambda \Lambda^\top + \mathrm{diag}(\psi^2).

With :math:`\Sigma = L L^\top`, the whitened inputs :math:`w = L^{-1} x` are standard normal, and the classes'
logits are linear in them, every direction alike whatever its variance in :math:`x`:

.. math::
    \ell_c(x) = s\, \beta_c^\top L^{-1} x / \sqrt{d} + b_c, \quad \beta_c \sim N(0, I_d),\
    b_c \sim N(0, \text{class\_bias\_std}^2),

with a sharpness :math:`s` (log-normal) shared by the classes, so a logit's standard deviation over the inputs is
:math:`s\,|\beta_c| / \sqrt{d}`, :math:`s` on average over the directions. Labels are drawn from :math:`\mathrm{softmax}(\ell(x))`. Each feature's sign and each class's index
are exchangeable, as are the features: the prior is invariant to reflecting or reordering features and to
relabelling classes. Since the logits are linear in :math:`x`, they move exactly with any positive rescaling of a
feature (its loading and specific scale with it), so units do not matter either.

Every dataset states its classes' probabilities at each point (:class:`LabelProbabilities`), so training scores
the network against them (:meth:`FactorClassificationPrior.conditional`). It is a component of the tabular prior
for real data, like the SCM prior; ``references()`` is empty (its exact posterior would integrate over
:math:`\Lambda` and :math:`\psi` given the inputs, which nothing here computes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.priors.base import Batch, sample_arguments
from priorfit.priors.classification import LabelProbabilities, TabularLabelPrior, draw_labels, number_of_classes
from priorfit.validation import check_float, check_int

__all__ = ["FactorClassificationParams", "FactorClassificationPrior", "factor_logits"]

#: The least specific standard deviation (the loadings' entries are standard normal): keeps the covariance's Cholesky
#: factor well conditioned. Under the default hyperprior a feature falls below it once in about 10^9 draws.
_LEAST_SPECIFIC = 1e-3


def factor_logits(x: Tensor, loadings: Tensor, specific: Tensor, directions: Tensor, sharpness: Tensor,
                  biases: Tensor) -> Tensor:
    """The classes' logits at x (`batch x m x d`) for the stated loadings, specific standard deviations,
    directions, sharpness and biases (see the module docstring): `batch x m x C`."""
    cov = loadings @ loadings.transpose(1, 2) + torch.diag_embed(specific ** 2)
    white = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), x.transpose(1, 2), upper=False)
    return sharpness[:, None, None] * (white.transpose(1, 2) @ directions) / math.sqrt(x.shape[-1]) + biases[:, None]


@dataclass(frozen=True, eq=False)
class FactorClassificationParams(LabelProbabilities):
    """What a dataset was drawn with: each point's class probabilities (``probs``, `batch x n x C`), the loadings
    (`batch x d x k`), the specific standard deviations (`batch x d`), the class directions (`batch x d x C`), the
    sharpness (`batch`) and the class biases (`batch x C`)."""

    loadings: Tensor
    specific: Tensor
    directions: Tensor
    sharpness: Tensor
    biases: Tensor


@register
@dataclass(frozen=True)
class FactorClassificationPrior(TabularLabelPrior):
    """Datasets of correlated features and class labels linear in the whitened features (see the module docstring).

    Fields:
        max_features: the most input features.
        max_factors: the number of shared factors of a batch is uniform on 1 ... max_factors (at most d).
        specific_loc, specific_scale: log of each feature's specific standard deviation is normal with this mean
            (in [-6, 3]) and standard deviation (at most 2), and at least 1e-3 (the loadings' entries are standard
            normal, so exp(specific_loc) is a feature's own noise relative to what it shares; at the default,
            median 0.37, a feature with the median loading, 0.67, correlates 0.88 with a single factor).
        sharpness_loc, sharpness_scale: log of the sharpness ``s`` is normal with these (mean in [-5, 5],
            standard deviation at most 2).
        class_bias_std: standard deviation of each class's bias (class imbalance).
        min_classes, max_classes: the number of classes of a batch is uniform on this range, and at most the
            context's size.
    """

    max_features: int = 8
    max_factors: int = 2
    specific_loc: float = -1.0
    specific_scale: float = 1.0
    sharpness_loc: float = 1.0
    sharpness_scale: float = 1.0
    class_bias_std: float = 0.5
    min_classes: int = 2
    max_classes: int = 10

    def __post_init__(self) -> None:
        check_int("max_features", self.max_features, minimum=1)
        check_int("max_factors", self.max_factors, minimum=1)
        check_float("specific_loc", self.specific_loc, minimum=-6.0, maximum=3.0)
        check_float("specific_scale", self.specific_scale, minimum=0.0, maximum=2.0)
        check_float("sharpness_loc", self.sharpness_loc, minimum=-5.0, maximum=5.0)
        check_float("sharpness_scale", self.sharpness_scale, minimum=0.0, maximum=2.0)
        check_float("class_bias_std", self.class_bias_std, minimum=0.0, maximum=10.0)
        check_int("min_classes", self.min_classes, minimum=2)
        check_int("max_classes", self.max_classes, minimum=self.min_classes)

    def sample(self, batch_size: int, n_points: int, generator: torch.Generator, n_features: int | None = None,
               device: torch.device | str | None = None, n_context: int | None = None,
               n_classes: int | None = None) -> Batch:
        """``batch_size`` datasets of ``n_points`` points with ``n_features`` features (default: all) and
        ``n_classes`` classes (default: drawn, at most n_context). x `batch x n x d`, y `batch x n` labels,
        float64; ``device`` is accepted for the prior protocol and not used."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        d, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        n_classes = number_of_classes(self, n_context, generator, n_classes)
        k = int(torch.randint(1, min(self.max_factors, d) + 1, (1,), generator=generator))

        def normal(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64)

        loadings = normal(batch_size, d, k)
        specific = torch.exp(self.specific_loc + self.specific_scale * normal(batch_size, d)).clamp_min(_LEAST_SPECIFIC)
        x = normal(batch_size, n_points, k) @ loadings.transpose(1, 2) + specific[:, None] * normal(
            batch_size, n_points, d)
        directions = normal(batch_size, d, n_classes)
        sharpness = torch.exp(self.sharpness_loc + self.sharpness_scale * normal(batch_size))
        biases = self.class_bias_std * normal(batch_size, n_classes)
        probs = torch.softmax(factor_logits(x, loadings, specific, directions, sharpness, biases), dim=-1)
        params = FactorClassificationParams(probs=probs, loadings=loadings, specific=specific,
                                            directions=directions, sharpness=sharpness, biases=biases)
        return Batch(x=x, y=draw_labels(probs, generator), params=params)
