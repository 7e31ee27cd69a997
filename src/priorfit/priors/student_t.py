r"""Heavy tails by scale mixtures: the Student-t process.

**Student-t process** (:class:`StudentTProcessPrior`), per dataset: the GP's hyperparameters :math:`\theta` and
its draw :math:`g = f + \sigma\eta` (function plus noise) as :class:`~priorfit.priors.gp.GPPrior` makes them, a
variance factor :math:`s` from the mixing prior, and

.. math:: y = m \mathbf 1 + \sqrt{s}\, g, \qquad y \mid s, \theta \sim N(m \mathbf 1, s\,(K_\theta + \sigma^2 I))

so the whole covariance, noise included, is scaled: a scale mixture of GPs. With :math:`s \sim
\mathrm{IG}(a, b)` the marginal of y is a multivariate Student-t with :math:`2a` degrees of freedom and scale
matrix :math:`(b/a)(K + \sigma^2 I)` (covariance :math:`b/(a-1)\,(K + \sigma^2 I)` for :math:`a > 1`), and its
posterior predictive is again a Student-t whose degrees of freedom grow with n (:mod:`priorfit.exact.student_t`).
This is the scale mixture of NNGPs of [LYYL2022]_ when the kernel is :class:`~priorfit.priors.nngp.NNGP`: an
inverse-gamma prior on the last layer's variance. Other mixing priors (``Gamma``, ``LogNormal``; a ``HalfCauchy``
on the standard deviation with ``mixing_on="std"``) have a 1-D quadrature as their exact reference.

In the units-free path the targets' overall scale is already integrated out under the invariant prior, so a model
of this prior is trained and measured on the raw path (a non-invariant model), where the closed form applies.

References:
    .. [LYYL2022] H. Lee, E. Yun, H. Yang, J. Lee. Scale mixtures of neural network Gaussian processes. ICLR 2022.
    .. [SWG2014] A. Shah, A. G. Wilson, Z. Ghahramani. Student-t processes as alternatives to Gaussian
        processes. AISTATS 2014.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.priors.base import Batch, Symmetries
from priorfit.priors.gp import GPParams, GPPrior
from priorfit.priors.hyperpriors import Fixed, Hyperprior, InverseGamma
from priorfit.priors.params import Params
from priorfit.validation import check_int

__all__ = ["StudentTProcessPrior", "StudentTProcessParams", "MIXING_ON"]

MIXING_ON = ("variance", "std")


@dataclass(frozen=True, eq=False)
class StudentTProcessParams(Params):
    """A Student-t process's latent values per dataset: the GP's hyperparameters ``gp`` and the variance factor
    ``variance`` :math:`s` (`batch`) that scales its covariance."""

    gp: GPParams
    variance: Tensor


@register
@dataclass(frozen=True)
class StudentTProcessPrior:
    r"""A scale mixture of the GP ``gp`` (module docstring).

    Fields:
        gp: kernel, noise, mean and inputs of the GP that is scaled; its kernel's own outputscale, if any, and
            the mixing prior multiply.
        mixing: the prior of the variance factor :math:`s` (``mixing_on="variance"``) or of its square root
            (``"std"``). ``InverseGamma(a, b)`` on the variance gives the Student-t process with a closed form.
        mixing_on: "variance" or "std".
    """

    gp: GPPrior = field(default_factory=GPPrior)
    mixing: Hyperprior = field(default_factory=lambda: InverseGamma(2.0, 2.0))
    mixing_on: str = "variance"

    def __post_init__(self) -> None:
        if not isinstance(self.gp, GPPrior):
            raise TypeError(f"gp must be a GPPrior, got {type(self.gp).__name__}: {self.gp!r}")
        if not isinstance(self.mixing, Hyperprior):
            raise TypeError(f"mixing must be a Hyperprior (e.g. InverseGamma), got {type(self.mixing).__name__}")
        if self.mixing.support.low < 0 or isinstance(self.mixing, Fixed) and self.mixing.value <= 0:
            raise ValueError(f"mixing must be a prior on positive values, got {self.mixing!r}")
        if self.mixing_on not in MIXING_ON:
            raise ValueError(f"mixing_on must be one of {MIXING_ON}, got {self.mixing_on!r}")

    @property
    def max_features(self) -> int:
        return self.gp.max_features

    @property
    def closed_form(self) -> bool:
        """Whether the variance factor integrates out in closed form (an inverse-gamma prior on the variance)."""
        return isinstance(self.mixing, InverseGamma) and self.mixing_on == "variance"

    @property
    def symmetries(self) -> Symmetries:
        """The GP's: scaling by :math:`\\sqrt s` commutes with every one of them."""
        return self.gp.symmetries

    def references(self, settings=None) -> tuple:
        """The Student-t process given the GP's hyperparameters each dataset was drawn with (the oracle; the
        variance factor integrated out), and the Bayes posterior with every hyperparameter integrated out
        (:mod:`priorfit.exact.student_t`; not for another mixing prior than the inverse gamma on the variance
        together with hyperpriors on the GP)."""
        from priorfit.exact.reference import ReferenceSettings
        from priorfit.exact.student_t import StudentTProcessMarginal, StudentTProcessOracle

        settings = ReferenceSettings() if settings is None else settings
        oracle = StudentTProcessOracle(self)
        free = any(not isinstance(hp, Fixed) for hp in self.gp.hyperpriors().values())
        if free and not self.closed_form:  # no exact marginal: NUTS would need the quadrature inside it
            return (oracle,)
        return oracle, StudentTProcessMarginal(self, settings.nuts_warmup, settings.nuts_samples,
                                               settings.nuts_chains)

    def variance_factor(self, mixed: Tensor) -> Tensor:
        """The variance factor :math:`s` from a draw of the mixing prior."""
        return mixed if self.mixing_on == "variance" else mixed.square()

    def sample(
        self,
        batch_size: int,
        n_points: int,
        generator: torch.Generator,
        n_features: int | None = None,
        device: torch.device | str | None = None,
        n_context: int | None = None,
    ) -> Batch:
        """``batch_size`` datasets of ``n_points`` points (``n_context`` is ignored: this prior is stated in its
        inputs' own units)."""
        check_int("batch_size", batch_size, minimum=1)
        check_int("n_points", n_points, minimum=1)
        n_features = self.max_features if n_features is None else n_features
        check_int("n_features", n_features, minimum=1, maximum=self.max_features)
        batch = self.gp.draw(batch_size, n_points, n_features, generator, device)
        variance = self.variance_factor(self.mixing.sample((batch_size,), generator).to(torch.float64))
        variance = variance.to(batch.y.device)
        mean = batch.params.mean[:, None]
        y = mean + variance.sqrt()[:, None] * (batch.y - mean)
        return Batch(x=batch.x, y=y, params=StudentTProcessParams(gp=batch.params, variance=variance))
