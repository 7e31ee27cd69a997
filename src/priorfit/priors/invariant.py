r"""A GP prior stated in the units a PFN sees when it is shown only its context's own units.

Generative model, per dataset: inputs x from the GP's input sampler; the function drawn on the inputs scaled by
the context (:func:`priorfit.preprocessing.context_input_scaling` of the first ``n_context`` points), with the
GP's kernel, noise and hyperpriors; then any location and scale of the targets, under the invariant prior
:math:`p(\mu, \sigma) \propto 1/\sigma`. A model with ``ModelConfig.invariant`` standardises the targets by the
context, which removes :math:`\mu` and :math:`\sigma` exactly, so datasets are drawn with :math:`\mu = 0`,
:math:`\sigma = 1` and nothing is lost. The GP's own outputscale and mean only set the shape covariance up to a
factor and a shift, which the integral removes; relative weights (e.g. of a sum of kernels, or the
noise-to-signal ratio) do matter.

Its exact references (:mod:`priorfit.exact.invariant`) integrate location and scale in closed form: a Student-t
per dataset given the shape hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.priors.base import Batch, Symmetries, sample_arguments
from priorfit.priors.conditional import NormalTargets, gaussian_conditional
from priorfit.priors.gp import GPParams, GPPrior
from priorfit.preprocessing import context_input_scaling, scale_inputs

__all__ = ["InvariantGPPrior"]


def _scaled_by_context(n_context: int):
    def scale(x: Tensor) -> Tensor:
        lo, width = context_input_scaling(x[:, :n_context])
        return scale_inputs(x, lo, width)

    return scale


@register
@dataclass(frozen=True)
class InvariantGPPrior:
    """The GP ``gp`` stated in its context's units (see the module docstring).

    Fields:
        gp: the shape of the functions (kernel, noise, hyperpriors, inputs) on context-scaled inputs; its mean's
            hyperprior is ignored (the location is integrated out).
    """

    gp: GPPrior = field(default_factory=GPPrior)

    def __post_init__(self) -> None:
        if not isinstance(self.gp, GPPrior):
            raise TypeError(f"gp must be a GPPrior, got {type(self.gp).__name__}")

    @property
    def max_features(self) -> int:
        return self.gp.max_features

    @property
    def symmetries(self) -> Symmetries:
        """Those of the GP's kernel and inputs; y -> -y always, since the location prior is flat."""
        base = self.gp.symmetries
        return Symmetries(reflect_inputs=base.reflect_inputs, permute_inputs=base.permute_inputs,
                          negate_targets=True)

    def references(self, settings=None) -> tuple:
        """The invariant oracle (Student-t with the true shape hyperparameters), the invariant marginal (the
        shape hyperparameters integrated out by NUTS, as ``settings``, a ``ReferenceSettings``, sets it), and
        the practitioners' fitted GPs (:mod:`priorfit.exact.baselines`: scikit-learn's ML-II with
        ``settings.ml2_restarts`` restarts, BoTorch's SingleTaskGP)."""
        from priorfit.exact.baselines import BoTorchGP, SklearnGP
        from priorfit.exact.invariant import InvariantMarginal, InvariantOracle
        from priorfit.exact.reference import ReferenceSettings

        settings = ReferenceSettings() if settings is None else settings
        return (InvariantOracle(self),
                InvariantMarginal(self, settings.nuts_warmup, settings.nuts_samples, settings.nuts_chains),
                SklearnGP(settings.ml2_restarts), BoTorchGP())

    def shape_covariances(self, params: GPParams, x_ctx: Tensor, x_qry: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The context's shape covariance (`batch x n x n`, noise and jitter included), its covariances with the
        queries (`batch x n x m`) and the queries' variances of noisy y (`batch x m`), all on the inputs scaled
        by the context."""
        lo, width = context_input_scaling(x_ctx)
        xc, xq = scale_inputs(x_ctx, lo, width), scale_inputs(x_qry, lo, width)
        s2 = params.noise_std.square() + self.gp.jitter  # b
        n = x_ctx.shape[1]
        eye = torch.eye(n, dtype=torch.float64, device=x_ctx.device)
        cov = self.gp.kernel.forward(params.kernel, xc, xc) + s2[:, None, None] * eye
        cross = self.gp.kernel.forward(params.kernel, xc, xq)
        var_qry = self.gp.kernel.diag(params.kernel, xq) + s2[:, None]
        return cov, cross, var_qry

    def conditional(self, batch: Batch, n_context: int) -> NormalTargets:
        """The exact normal of each query target of ``batch`` given its shape hyperparameters, location 0, scale 1
        and its first ``n_context`` points (:mod:`priorfit.priors.conditional`): the shape covariances on the
        inputs scaled by that context, as the function was drawn."""
        x = batch.x
        cov, cross, var_qry = self.shape_covariances(batch.params, x[:, :n_context], x[:, n_context:])
        return gaussian_conditional(cov, cross, var_qry, batch.y[:, :n_context])

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
        first ``n_context`` points (default: all of them); location 0 and scale 1 (see the module docstring)."""
        n_features, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        batch = self.gp.draw(batch_size, n_points, n_features, generator, device,
                             function_inputs=_scaled_by_context(n_context))
        params = GPParams(kernel=batch.params.kernel, noise_std=batch.params.noise_std,
                          mean=torch.zeros_like(batch.params.mean))
        return Batch(x=batch.x, y=batch.y - batch.params.mean[:, None], params=params)
