r"""Heavy tails by scale mixtures: the Student-t process, and Student-t observation noise.

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

**Student-t observation noise** (:class:`StudentTNoisePrior`): a scale mixture per point, what makes a model
robust to outliers. Per dataset, degrees of freedom :math:`\nu` from their hyperprior, per point a precision
factor :math:`\lambda_i \sim \mathrm{Gamma}(\nu/2, \text{rate } \nu/2)`, and

.. math:: y_i = \mu + \sigma\left(f(x_i) + \sigma_n \eta_i / \sqrt{\lambda_i}\right), \qquad \eta_i \sim N(0, 1)

so the noise :math:`\sigma_n \eta_i / \sqrt{\lambda_i}` is Student-t with :math:`\nu` degrees of freedom. It is
stated in the context's units like :class:`~priorfit.priors.invariant.InvariantGPPrior` (f drawn on the
context-scaled inputs, :math:`p(\mu, \sigma) \propto 1/\sigma`), the path an estimator serves; its exact
reference samples the GP's hyperparameters, :math:`\nu`, :math:`\mu`, :math:`\log\sigma` and the latent
function by NUTS under the Student-t likelihood (the precisions integrated out), and its oracle, given the
precisions, integrates :math:`\mu, \sigma` and f in closed form (:mod:`priorfit.exact.student_t`).

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
from priorfit.priors.base import Batch, Symmetries, sample_arguments
from priorfit.priors.conditional import NormalTargets
from priorfit.priors.gp import GPParams, GPPrior
from priorfit.priors.hyperpriors import Fixed, Hyperprior, InverseGamma, LogNormal, Shifted
from priorfit.priors.invariant import InvariantGPPrior, _scaled_by_context
from priorfit.priors.params import Params

__all__ = ["StudentTProcessPrior", "StudentTProcessParams", "StudentTNoisePrior", "StudentTNoiseParams",
           "gamma_precisions", "MIXING_ON"]

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

    def conditional(self, batch: Batch, n_context: int) -> NormalTargets:
        """The exact normal of each query target of ``batch`` given its GP hyperparameters, its variance factor
        and its first ``n_context`` points (:mod:`priorfit.priors.conditional`): the GP's, the targets mapped back
        by the factor and the spread scaled by it."""
        params = batch.params
        mean, root = params.gp.mean[:, None], params.variance.sqrt()[:, None]
        unscaled = Batch(x=batch.x, y=mean + (batch.y - mean) / root, params=params.gp)
        gp = self.gp.conditional(unscaled, n_context)
        return NormalTargets(mean=mean + root * (gp.mean - mean), std=root * gp.std)

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
        n_features, _ = sample_arguments(batch_size, n_points, n_features, None, self.max_features)
        batch = self.gp.draw(batch_size, n_points, n_features, generator, device)
        variance = self.variance_factor(self.mixing.sample((batch_size,), generator).to(torch.float64))
        variance = variance.to(batch.y.device)
        mean = batch.params.mean[:, None]
        y = mean + variance.sqrt()[:, None] * (batch.y - mean)
        return Batch(x=batch.x, y=y, params=StudentTProcessParams(gp=batch.params, variance=variance))


# ----------------------------------------------------------------------------------------------------------------
# Student-t observation noise


def gamma_precisions(df: Tensor, n_points: int, generator: torch.Generator) -> Tensor:
    r"""`batch x n_points` draws of :math:`\lambda \sim \mathrm{Gamma}(\nu/2, \text{rate } \nu/2)` for each
    dataset's degrees of freedom ``df`` (`batch`), by the exact inverse CDF of uniforms from ``generator``."""
    from scipy import special

    u = torch.rand(df.shape[0], n_points, generator=generator, dtype=torch.float64).clamp(1e-300, 1 - 1e-16)
    half = (df.to(torch.float64) / 2)[:, None].expand_as(u)
    return torch.from_numpy(special.gammaincinv(half.numpy(), u.numpy())) / half


@dataclass(frozen=True, eq=False)
class StudentTNoiseParams(Params):
    r"""Latent values of a dataset with Student-t noise: the GP's hyperparameters ``gp`` (its mean 0: the location
    is integrated out), the degrees of freedom ``df`` (`batch`) and each point's precision factor
    ``precisions`` :math:`\lambda_i` (`batch x n`)."""

    gp: GPParams
    df: Tensor
    precisions: Tensor


@register
@dataclass(frozen=True)
class StudentTNoisePrior:
    r"""The GP ``gp`` in its context's units (as :class:`~priorfit.priors.invariant.InvariantGPPrior`) with
    Student-t observation noise whose degrees of freedom have the hyperprior ``df`` (module docstring).

    Fields:
        gp: the shape of the functions (kernel, noise scale :math:`\sigma_n`, hyperpriors, inputs) on
            context-scaled inputs; its mean's hyperprior is ignored (the location is integrated out).
        df: hyperprior of the noise's degrees of freedom :math:`\nu`. The default, 1 + LogNormal(1, 1.2) (median
            3.7), gives :math:`\nu < 2` (gross outliers) to 20% of datasets and :math:`\nu > 30` (nearly
            Gaussian noise) to 2.4%: a model learns what outliers look like only from datasets that have them.
            :math:`\nu \geq 1` keeps the noise no heavier than a Cauchy (below that, float32 overflows).
    """

    gp: GPPrior = field(default_factory=GPPrior)
    df: Hyperprior = field(default_factory=lambda: Shifted(LogNormal(loc=1.0, scale=1.2), shift=1.0))

    def __post_init__(self) -> None:
        if not isinstance(self.gp, GPPrior):
            raise TypeError(f"gp must be a GPPrior, got {type(self.gp).__name__}: {self.gp!r}")
        if not isinstance(self.df, Hyperprior):
            raise TypeError(f"df must be a Hyperprior (e.g. LogNormal), got {type(self.df).__name__}")
        if self.df.support.low < 0 or isinstance(self.df, Fixed) and self.df.value <= 0:
            raise ValueError(f"df must be a prior on positive values, got {self.df!r}")

    @property
    def max_features(self) -> int:
        return self.gp.max_features

    @property
    def invariant(self) -> InvariantGPPrior:
        """The same prior with Gaussian noise."""
        return InvariantGPPrior(self.gp)

    @property
    def symmetries(self) -> Symmetries:
        """Those of the invariant prior: per-point noise scales are exchangeable and symmetric."""
        return self.invariant.symmetries

    def references(self, settings=None) -> tuple:
        """The oracle (the GP's hyperparameters, the degrees of freedom and the context's precisions the
        dataset was drawn with), the Bayes posterior by NUTS (:mod:`priorfit.exact.student_t`), and the
        practitioners' fitted GPs with Gaussian and with Student-t likelihoods."""
        from priorfit.exact.baselines import BoTorchGP, SklearnGP
        from priorfit.exact.reference import ReferenceSettings
        from priorfit.exact.student_t import StudentTNoiseMarginal, StudentTNoiseOracle

        settings = ReferenceSettings() if settings is None else settings
        return (StudentTNoiseOracle(self),
                StudentTNoiseMarginal(self, settings.nuts_warmup, settings.nuts_samples, settings.nuts_chains),
                SklearnGP(settings.ml2_restarts), BoTorchGP())

    def conditional(self, batch: Batch, n_context: int) -> NormalTargets:
        """The exact normal of each query target of ``batch`` given its GP hyperparameters, every point's noise
        precision factor (the query's own included) and its first ``n_context`` points
        (:mod:`priorfit.priors.conditional`): given the precisions, the noise is Gaussian."""
        params = batch.params
        at = _scaled_by_context(n_context)(batch.x)
        noise = params.gp.noise_std.square()[:, None] / params.precisions.to(batch.y)
        return self.gp.conditional_normal(params.gp, at[:, :n_context], at[:, n_context:],
                                          batch.y[:, :n_context], noise)

    def sample(
        self,
        batch_size: int,
        n_points: int,
        generator: torch.Generator,
        n_features: int | None = None,
        device: torch.device | str | None = None,
        n_context: int | None = None,
    ) -> Batch:
        """``batch_size`` datasets of ``n_points`` points whose functions are drawn on the inputs scaled by the
        first ``n_context`` points (default: all of them), with Student-t noise; location 0 and scale 1."""
        n_features, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        df = self.df.sample((batch_size,), generator).to(torch.float64)
        precisions = gamma_precisions(df, n_points, generator)
        batch = self.gp.draw(batch_size, n_points, n_features, generator, device,
                             function_inputs=_scaled_by_context(n_context), noise_factors=precisions.rsqrt())
        gp = GPParams(kernel=batch.params.kernel, noise_std=batch.params.noise_std,
                      mean=torch.zeros_like(batch.params.mean))
        return Batch(x=batch.x, y=batch.y - batch.params.mean[:, None],
                     params=StudentTNoiseParams(gp=gp, df=df, precisions=precisions))
