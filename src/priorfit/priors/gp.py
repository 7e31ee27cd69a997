r"""Gaussian-process prior over datasets, with hyperpriors on every hyperparameter.

Generative model, per dataset (all draws from one ``torch.Generator``, in float64):

.. math::
    \theta \sim p(\theta), \quad x_{1..n} \sim \text{inputs}, \quad
    f \sim N\left(m \mathbf 1, K_\theta(X, X) + \epsilon I\right), \quad
    y = f + \sigma \eta, \; \eta \sim N(0, I)

so :math:`y \sim N(m \mathbf 1, K_\theta + (\sigma^2 + \epsilon) I)`, with :math:`\sigma` = ``noise_std``,
:math:`m` = ``mean`` and :math:`\epsilon` = ``jitter``. ``priorfit.exact.gp`` computes this model's posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.validation import check_int
from priorfit.priors.base import Batch, Symmetries
from priorfit.priors.conditional import NormalTargets, gaussian_conditional
from priorfit.priors.hyperpriors import Fixed, Hyperprior, LogNormal
from priorfit.priors.inputs import InputSampler, UniformInputs
from priorfit.priors.kernels import RBF, Kernel, Scale
from priorfit.priors.params import Params

__all__ = ["GPPrior", "GPParams", "cholesky_with_jitter"]

GP_PARAM_NAMES = ("noise_std", "mean")


def cholesky_with_jitter(matrix: Tensor, jitter: float, max_tries: int = 4) -> Tensor:
    r"""Lower Cholesky factor `batch x n x n` of :math:`A + \epsilon I` for a `batch x n x n` symmetric ``matrix``.

    Starts with :math:`\epsilon` = ``jitter``; datasets whose factorisation fails are retried with 10x the jitter,
    up to ``max_tries`` attempts in all, and only those datasets. Raises ``torch.linalg.LinAlgError`` naming the
    largest jitter tried if some matrix is still not positive definite.
    """
    if matrix.dim() != 3 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"matrix must have shape batch x n x n, got {tuple(matrix.shape)}")
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter!r}")
    n = matrix.shape[-1]
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    eps = float(jitter)
    chol, info = torch.linalg.cholesky_ex(matrix + eps * eye)
    for _ in range(max_tries - 1):
        failed = info != 0
        if not failed.any():
            return chol
        eps = 10.0 * eps if eps > 0 else 1e-10
        chol_f, info_f = torch.linalg.cholesky_ex(matrix[failed] + eps * eye)
        chol = chol.clone()
        chol[failed] = chol_f
        info = info.clone()
        info[failed] = info_f
    if (info != 0).any():
        bad = torch.nonzero(info != 0).flatten().tolist()
        raise torch.linalg.LinAlgError(
            f"covariance of dataset(s) {bad[:10]} is not positive definite even with jitter {eps:g}"
        )
    return chol


@dataclass(frozen=True, eq=False)
class GPParams(Params):
    """A GP's hyperparameters per dataset: the kernel's tree, ``noise_std`` :math:`\\sigma` and ``mean`` :math:`m`
    (each `batch`)."""

    kernel: Params
    noise_std: Tensor
    mean: Tensor


@register
@dataclass(frozen=True)
class GPPrior:
    r"""GP prior over datasets (see the module docstring for the generative model).

    Fields:
        kernel: covariance function with its hyperpriors.
        noise_std: hyperprior of the observation-noise standard deviation :math:`\sigma`.
        mean: hyperprior of the constant mean :math:`m`.
        inputs: input sampler on [0, 1]^d.
        max_features: the largest d that ``sample`` produces.
        jitter: :math:`\epsilon` added to the diagonal of K before the Cholesky (part of the model).

    ``params`` of a batch are a :class:`GPParams`: the kernel's tree, ``noise_std`` and ``mean`` (each `batch`).

    >>> prior = GPPrior.fixed_rbf()
    >>> batch = prior.sample(8, 32, torch.Generator().manual_seed(0))
    >>> batch.x.shape, batch.y.shape
    (torch.Size([8, 32, 1]), torch.Size([8, 32]))
    """

    kernel: Kernel = field(default_factory=lambda: Scale(RBF()))
    noise_std: Hyperprior = field(default_factory=lambda: LogNormal(loc=-2.3, scale=0.75))
    mean: Hyperprior = field(default_factory=lambda: Fixed(0.0))
    inputs: InputSampler = field(default_factory=UniformInputs)
    max_features: int = 1
    jitter: float = 1e-6

    def __post_init__(self) -> None:
        if not isinstance(self.kernel, Kernel):
            raise TypeError(f"kernel must be a Kernel, got {type(self.kernel).__name__}: {self.kernel!r}")
        for name in ("noise_std", "mean"):
            value = getattr(self, name)
            if not isinstance(value, Hyperprior):
                raise TypeError(f"{name} must be a Hyperprior, got {type(value).__name__}: {value!r}")
        if not isinstance(self.inputs, InputSampler):
            raise TypeError(f"inputs must be an InputSampler, got {type(self.inputs).__name__}: {self.inputs!r}")
        check_int("max_features", self.max_features, minimum=1)
        if (
            isinstance(self.jitter, bool)
            or not isinstance(self.jitter, (int, float))
            or not (math.isfinite(self.jitter) and self.jitter >= 0)
        ):
            raise ValueError(f"jitter must be a finite number >= 0, got {self.jitter!r}")
        clash = set(GP_PARAM_NAMES) & set(self.kernel.hyperpriors())
        if clash:
            raise ValueError(f"kernel hyperparameter names {sorted(clash)} clash with the GP's own {GP_PARAM_NAMES}")

    @classmethod
    def fixed_rbf(cls, lengthscale: float = 0.2, outputscale: float = 1.0, noise_std: float = 0.1) -> GPPrior:
        r"""The benchmark prior: 1-D, :math:`x \sim U[0,1]`, :math:`k = s\,\exp(-\tau^2 / 2\ell^2)`, every
        hyperparameter fixed, zero mean."""
        return cls(
            kernel=Scale(RBF(lengthscale=Fixed(float(lengthscale))), outputscale=Fixed(float(outputscale))),
            noise_std=Fixed(float(noise_std)),
            mean=Fixed(0.0),
            inputs=UniformInputs(),
            max_features=1,
        )

    @property
    def symmetries(self) -> Symmetries:
        """Reflecting and reordering input features leave this prior unchanged when its kernel is reflection
        invariant (e.g. stationary) and its inputs symmetric; negating the targets does when the mean's hyperprior is symmetric about 0."""
        reflect = self.kernel.reflection_invariant and self.inputs.symmetric
        return Symmetries(reflect_inputs=reflect, permute_inputs=self.inputs.symmetric,
                          negate_targets=self.mean.symmetric_about_zero)

    def references(self, settings=None) -> tuple:
        """The exact references of this prior (:mod:`priorfit.exact.reference`): the oracle GP, the NUTS
        marginal over the hyperpriors, and ML-II, each as ``settings`` (a ``ReferenceSettings``) sets it."""
        from priorfit.exact.gp import GPMLII, GPOracle
        from priorfit.exact.marginal import GPMarginal
        from priorfit.exact.reference import ReferenceSettings

        settings = ReferenceSettings() if settings is None else settings
        return (
            GPOracle(self),
            GPMarginal(self, settings.nuts_warmup, settings.nuts_samples, settings.nuts_chains),
            GPMLII(self, settings.ml2_restarts),
        )

    # ---- hyperparameters ----------------------------------------------------------------------------------------

    def param_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        """Per-dataset shape of every hyperparameter by flat name (kernel's, then ``noise_std`` and ``mean``)."""
        return {**self.kernel.param_shapes(n_features), "noise_std": (), "mean": ()}

    def hyperpriors(self) -> dict[str, Hyperprior]:
        """The hyperprior of every hyperparameter by flat name (as :meth:`param_shapes`)."""
        return {**self.kernel.hyperpriors(), "noise_std": self.noise_std, "mean": self.mean}

    def params_from(self, flat: dict) -> GPParams:
        """A :class:`GPParams` from arrays named as in :meth:`param_shapes` (``GPParams.flat``'s inverse)."""
        missing = [name for name in GP_PARAM_NAMES if name not in flat]
        if missing:
            raise ValueError(f"params is missing hyperparameter(s) {missing} of the GP")
        return GPParams(kernel=self.kernel.params_from(flat), noise_std=flat["noise_std"], mean=flat["mean"])

    def sample_params(self, batch_size: int, n_features: int, generator: torch.Generator) -> GPParams:
        """Hyperparameters drawn from the hyperpriors, each `batch_size x *shape` float64."""
        kernel = self.kernel.sample_params(batch_size, n_features, generator)
        noise_std = self.noise_std.sample((batch_size,), generator).to(torch.float64)
        mean = self.mean.sample((batch_size,), generator).to(torch.float64)
        return GPParams(kernel=kernel, noise_std=noise_std, mean=mean)

    def log_prior(self, params: GPParams) -> Tensor:
        """`batch` log density of the hyperparameters under the hyperpriors (``Fixed`` ones contribute 0)."""
        if not isinstance(params, GPParams):
            raise TypeError(f"params must be GPParams, got {type(params).__name__}")
        return (
            self.kernel.log_prior(params.kernel)
            + self.noise_std.log_prob(params.noise_std.to(torch.float64))
            + self.mean.log_prob(params.mean.to(torch.float64))
        )

    def covariance(self, params: GPParams, x1: Tensor, x2: Tensor) -> Tensor:
        """Kernel matrix `batch x n x m` of the latent f between x1 (`batch x n x d`) and x2 (`batch x m x d`)."""
        if not isinstance(params, GPParams):
            raise TypeError(f"params must be GPParams, got {type(params).__name__}")
        return self.kernel.forward(params.kernel, x1, x2)

    def conditional_normal(self, params: GPParams, at_ctx: Tensor, at_qry: Tensor, y_ctx: Tensor,
                           noise_var: Tensor) -> NormalTargets:
        """The query targets' normals given the context's targets ``y_ctx`` (`batch x n`) and ``params``, the
        function evaluated at ``at_ctx`` and ``at_qry`` (`batch x n x d`, `batch x m x d`; the inputs as the
        kernel reads them), each point's noise variance ``noise_var`` (`batch x (n + m)`) and the jitter added."""
        n = at_ctx.shape[1]
        extra = noise_var + self.jitter
        cov = self.kernel.forward(params.kernel, at_ctx, at_ctx) + torch.diag_embed(extra[:, :n])
        cross = self.kernel.forward(params.kernel, at_ctx, at_qry)
        var_qry = self.kernel.diag(params.kernel, at_qry) + extra[:, n:]
        mean = params.mean[:, None]
        out = gaussian_conditional(cov, cross, var_qry, y_ctx - mean)
        return NormalTargets(mean=out.mean + mean, std=out.std)

    def conditional(self, batch: Batch, n_context: int) -> NormalTargets:
        """The exact normal of each target after the first ``n_context`` of each dataset of ``batch`` (one this
        prior drew) given the hyperparameters it was drawn with and its context (:mod:`priorfit.priors.conditional`)."""
        noise = batch.params.noise_std.square()[:, None].expand_as(batch.y)
        x = batch.x
        return self.conditional_normal(batch.params, x[:, :n_context], x[:, n_context:], batch.y[:, :n_context],
                                       noise)

    # ---- sampling -----------------------------------------------------------------------------------------------

    def sample(
        self,
        batch_size: int,
        n_points: int,
        generator: torch.Generator,
        n_features: int | None = None,
        device: torch.device | str | None = None,
        n_context: int | None = None,
    ) -> Batch:
        """Draw ``batch_size`` datasets of ``n_points`` points: x `batch x n x d`, y `batch x n`, float64.

        Every random number comes from the CPU ``generator``; ``device`` (default CPU) is where the kernel
        matrices are built and factorised and where the batch is returned. So a seed gives the same datasets on
        any device (up to rounding), and a GPU does the cubic part. ``n_context`` is ignored: this prior is
        stated in its inputs' own units.
        """
        check_int("batch_size", batch_size, minimum=1)
        check_int("n_points", n_points, minimum=1)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if n_features is None:
            n_features = self.max_features
        check_int("n_features", n_features, minimum=1, maximum=self.max_features)
        return self.draw(batch_size, n_points, n_features, generator, device)

    def draw(self, batch_size: int, n_points: int, n_features: int, generator: torch.Generator,
             device: torch.device | str | None = None, function_inputs=None, noise_factors: Tensor | None = None) -> Batch:
        """:meth:`sample` without the argument checks, drawing the function at ``function_inputs(x)`` instead of
        at x when given (`batch x n x d` -> `batch x n x d`; a prior stated in other units than the inputs', such
        as ``InvariantGPPrior``), and each point's noise standard deviation multiplied by ``noise_factors``
        (`batch x n`) when given (a scale mixture per point: Student-t noise). The batch holds x itself."""
        device = torch.device("cpu") if device is None else torch.device(device)
        params = self.sample_params(batch_size, n_features, generator)
        x = self.inputs.sample(batch_size, n_points, n_features, generator).to(torch.float64)  # b x n x d
        z = torch.randn(batch_size, n_points, 1, generator=generator, dtype=torch.float64)
        eta = torch.randn(batch_size, n_points, generator=generator, dtype=torch.float64)
        if device.type != "cpu":
            params = params.map(lambda t: t.to(device))
            x, z, eta = x.to(device), z.to(device), eta.to(device)
        at = x if function_inputs is None else function_inputs(x)
        k = self.kernel.forward(params.kernel, at, at)  # b x n x n
        chol = cholesky_with_jitter(k, self.jitter)
        f = params.mean[:, None] + (chol @ z).squeeze(-1)  # b x n
        if noise_factors is not None:
            eta = eta * noise_factors.to(eta)
        y = f + params.noise_std[:, None] * eta
        return Batch(x=x, y=y, params=params)
