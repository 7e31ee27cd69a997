r"""Exact GP regression for a :class:`~priorfit.priors.gp.GPPrior`: the closed-form posterior predictive and
marginal likelihood with known hyperparameters (the oracle), and ML-II with GPyTorch (the practitioner's baseline).

The model is the prior's own: :math:`y \sim N(m \mathbf 1, K + s^2 I)` with :math:`s^2 = \sigma^2 + \epsilon`
(noise variance plus the prior's jitter, exactly as ``GPPrior.sample`` draws y). Predictions are for *noisy* y.

References:
    [RW2006] C. E. Rasmussen, C. K. I. Williams. Gaussian Processes for Machine Learning. MIT Press, 2006,
        Algorithm 2.1 (p. 19) and eq. 5.8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.exceptions import InputDataError
from priorfit.predictive.normal import NormalPredictive
from priorfit.priors.gp import GP_PARAM_NAMES, GPParams, GPPrior, cholesky_with_jitter
from priorfit.validation import check_int

__all__ = ["gp_predictive", "gp_log_marginal_likelihood", "ml2_fit", "MLIIFit", "GPOracle", "GPMLII"]


# ----------------------------------------------------------------------------------------------------------------
# validation


def _check_prior(prior: object) -> None:
    if not isinstance(prior, GPPrior):
        raise TypeError(f"prior must be a GPPrior, got {type(prior).__name__}")


def _tensor(name: str, value: object, dims: int, shape_doc: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise InputDataError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(value).__name__}")
    if value.dim() != dims:
        raise InputDataError(f"{name} must have shape {shape_doc} ({dims} dims), got shape {tuple(value.shape)}")
    value = value.to(torch.float64)
    if not torch.isfinite(value).all():
        raise InputDataError(f"{name} contains NaN or infinite values")
    return value


def _check_gp_params(params: GPParams, batch: int) -> GPParams:
    if not isinstance(params, GPParams):
        raise TypeError(f"params must be GPParams (e.g. Batch.params of a GPPrior), got {type(params).__name__}")
    checked = {}
    for name in GP_PARAM_NAMES:
        value = getattr(params, name)
        if not isinstance(value, Tensor) or tuple(value.shape) != (batch,):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"params.{name} must be a tensor of shape ({batch},) (batch), got {shape}")
        value = value.to(torch.float64)
        if not torch.isfinite(value).all():
            raise ValueError(f"params.{name} contains NaN or infinite values")
        checked[name] = value
    return GPParams(kernel=params.kernel, **checked)


def _noise_var(prior: GPPrior, params: GPParams) -> Tensor:
    """`batch` total observation variance s^2 = noise_std^2 + jitter."""
    return params.noise_std.square() + prior.jitter


# ----------------------------------------------------------------------------------------------------------------
# closed forms


def gp_predictive(
    prior: GPPrior, params: GPParams, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Exact posterior predictive of noisy y at the queries, given the hyperparameters ([RW2006] Alg. 2.1):

    .. math::
        \mu_* = m + k_*^\top (K + s^2 I)^{-1} (y - m), \qquad
        v_* = k_{**} - k_*^\top (K + s^2 I)^{-1} k_* + s^2

    Args:
        prior: the GP prior (kernel, jitter).
        params: hyperparameters, each with leading dim `batch` (a ``GPParams``, as ``Batch.params``).
        x_ctx: `batch x n x d` context inputs (n may be 0: then this is the prior predictive).
        y_ctx: `batch x n` context targets.
        x_qry: `batch x m x d` query inputs.

    Returns:
        mean `batch x m` and variance `batch x m` (float64) of each query's y, marginally.
    """
    _check_prior(prior)
    x_ctx = _tensor("x_ctx", x_ctx, 3, "batch x n x d")
    y_ctx = _tensor("y_ctx", y_ctx, 2, "batch x n")
    x_qry = _tensor("x_qry", x_qry, 3, "batch x m x d")
    b, n, d = x_ctx.shape
    if tuple(y_ctx.shape) != (b, n):
        raise InputDataError(f"y_ctx must have shape {(b, n)} (batch x n, from x_ctx), got {tuple(y_ctx.shape)}")
    if x_qry.shape[0] != b or x_qry.shape[2] != d:
        raise InputDataError(
            f"x_qry must have shape ({b}, m, {d}) (batch x m x d, from x_ctx), got {tuple(x_qry.shape)}"
        )
    params = _check_gp_params(params, b)
    s2 = _noise_var(prior, params)[:, None]  # b x 1
    mean = params.mean[:, None]  # b x 1
    k_qq = prior.kernel.diag(params.kernel, x_qry)  # b x m
    if n == 0:
        return mean.expand(b, x_qry.shape[1]).clone(), k_qq + s2
    k = prior.kernel.forward(params.kernel, x_ctx, x_ctx)  # b x n x n
    k_cq = prior.kernel.forward(params.kernel, x_ctx, x_qry)  # b x n x m
    # Alg. 2.1 line 2: L = cholesky(K + s^2 I) (extra jitter only if that fails)
    chol = cholesky_with_jitter(k + s2[:, :, None] * torch.eye(n, dtype=torch.float64), 0.0)
    # line 3: alpha = L^T \ (L \ (y - m))
    alpha = torch.cholesky_solve((y_ctx - mean)[:, :, None], chol)  # b x n x 1
    # line 4: mean_* = k_*^T alpha (+ m)
    mu = mean + (k_cq.transpose(-1, -2) @ alpha).squeeze(-1)  # b x m
    # line 5: v = L \ k_*
    v = torch.linalg.solve_triangular(chol, k_cq, upper=False)  # b x n x m
    # line 6: V[f_*] = k(x_*, x_*) - v^T v, clamped at 0 against round-off; then add the noise of y
    var_f = (k_qq - v.square().sum(-2)).clamp_min(0.0)
    return mu, var_f + s2


def gp_log_marginal_likelihood(prior: GPPrior, params: GPParams, x: Tensor, y: Tensor) -> Tensor:
    r"""`batch` log marginal likelihood :math:`\log N(y \mid m \mathbf 1, K + s^2 I)` ([RW2006] Alg. 2.1 line 7):

    .. math:: \log p(y \mid X) = -\tfrac12 (y - m)^\top \alpha - \sum_i \log L_{ii} - \tfrac n2 \log 2\pi

    x is `batch x n x d`, y is `batch x n`. For n = 0 it is 0.
    """
    _check_prior(prior)
    x = _tensor("x", x, 3, "batch x n x d")
    y = _tensor("y", y, 2, "batch x n")
    b, n, _ = x.shape
    if tuple(y.shape) != (b, n):
        raise InputDataError(f"y must have shape {(b, n)} (batch x n, from x), got {tuple(y.shape)}")
    params = _check_gp_params(params, b)
    if n == 0:
        return torch.zeros(b, dtype=torch.float64)
    s2 = _noise_var(prior, params)
    k = prior.kernel.forward(params.kernel, x, x) + s2[:, None, None] * torch.eye(n, dtype=torch.float64)
    chol = cholesky_with_jitter(k, 0.0)  # line 2
    r = (y - params.mean[:, None])[:, :, None]  # b x n x 1
    alpha = torch.cholesky_solve(r, chol)  # line 3
    quad = (r * alpha).sum((-2, -1))
    logdet_half = torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * quad - logdet_half - 0.5 * n * math.log(2.0 * math.pi)  # line 7


# ----------------------------------------------------------------------------------------------------------------
# ML-II with GPyTorch


def _exact_gp_class():
    import gpytorch

    class _ExactGP(gpytorch.models.ExactGP):
        def __init__(self, x: Tensor, y: Tensor, likelihood: Any, covar_module: Any) -> None:
            super().__init__(x, y, likelihood)
            self.mean_module = gpytorch.means.ConstantMean()
            self.covar_module = covar_module

        def forward(self, x: Tensor):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    return _ExactGP


def _exact_settings():
    """GPyTorch settings that force Cholesky everywhere (no CG / Lanczos above 800 points), for exact numbers."""
    import contextlib

    import gpytorch

    stack = contextlib.ExitStack()
    stack.enter_context(gpytorch.settings.fast_computations(False, False, False))
    stack.enter_context(gpytorch.settings.max_cholesky_size(10**9))
    stack.enter_context(gpytorch.settings.fast_pred_var(False))
    return stack


@dataclass(frozen=True)
class MLIIFit:
    """Result of :func:`ml2_fit`.

    Attributes:
        params: fitted hyperparameters of one dataset (a ``GPParams`` without the batch dimension).
        log_marginal_likelihood: exact log marginal likelihood (total over the n points) at ``params``.
        model: the fitted ``gpytorch.models.ExactGP`` (float64), in eval mode.
        likelihood: its ``GaussianLikelihood``.
    """

    params: GPParams
    log_marginal_likelihood: float
    model: Any
    likelihood: Any

    def predict(self, x_qry: Tensor) -> tuple[Tensor, Tensor]:
        """Predictive mean and variance (`m` each, float64) of noisy y at x_qry (`m x d`), from GPyTorch."""
        x_qry = _tensor("x_qry", x_qry, 2, "m x d")
        d = self.model.train_inputs[0].shape[-1]
        if x_qry.shape[1] != d:
            raise InputDataError(f"x_qry must have {d} columns (as x_ctx), got shape {tuple(x_qry.shape)}")
        self.model.eval()
        self.likelihood.eval()
        with torch.no_grad(), _exact_settings():
            pred = self.likelihood(self.model(x_qry))
            return pred.mean.detach().clone(), pred.variance.detach().clone()


def ml2_fit(
    prior: GPPrior,
    x_ctx: Tensor,
    y_ctx: Tensor,
    restarts: int = 3,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
) -> MLIIFit:
    r"""Type-II maximum likelihood for ONE dataset, as a GPyTorch user fits it:

    .. math:: \hat\theta = \arg\max_\theta \log N(y \mid c \mathbf 1, K_\theta + \sigma^2 I)

    Model: ``ExactGP`` with ``ConstantMean`` (c), ``prior.kernel.to_gpytorch(d)`` and ``GaussianLikelihood``
    (noise variance >= 1e-4, GPyTorch's default constraint), all float64, Cholesky always. Pure maximum likelihood:
    the hyperpriors are *not* used as penalties, and ``Fixed`` hyperparameters are fitted like the others (the
    baseline knows the kernel family, not its values). Each start runs ``torch.optim.LBFGS`` (strong Wolfe line
    search, up to ``max_iter`` iterations) on the exact marginal log likelihood; the best final value wins.

    Args:
        prior: gives the kernel structure, and the hyperpriors to draw restarts from.
        x_ctx: `n x d` inputs (n >= 1); y_ctx: `n` targets.
        restarts: number of starts in all (>= 1). The first starts from GPyTorch's default initialisation (every
            raw parameter 0, i.e. softplus(0) ~ 0.69 for positive ones; constant mean 0); the others from
            hyperparameters drawn from the hyperpriors.
        max_iter: L-BFGS iterations per start.
        generator: for the restart draws; default ``torch.Generator().manual_seed(0)``.
    """
    import gpytorch

    _check_prior(prior)
    x_ctx = _tensor("x_ctx", x_ctx, 2, "n x d")
    y_ctx = _tensor("y_ctx", y_ctx, 1, "n")
    n, d = x_ctx.shape
    if n < 1:
        raise InputDataError(f"x_ctx must hold at least 1 point for ML-II, got shape {tuple(x_ctx.shape)}")
    if tuple(y_ctx.shape) != (n,):
        raise InputDataError(f"y_ctx must have shape ({n},) (n, from x_ctx), got {tuple(y_ctx.shape)}")
    check_int("restarts", restarts, minimum=1)
    check_int("max_iter", max_iter, minimum=1)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")

    likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
    model = _exact_gp_class()(x_ctx, y_ctx, likelihood, prior.kernel.to_gpytorch(d)).double()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    default_state = {k: v.clone() for k, v in model.state_dict().items()}
    min_noise = float(likelihood.noise_covar.raw_noise_constraint.lower_bound) * 1.01

    best_value, best_state = -math.inf, None
    for start in range(restarts):
        model.load_state_dict(default_state)
        if start > 0:
            init = prior.sample_params(1, d, generator)
            prior.kernel.set_gpytorch_params(model.covar_module, init.kernel.map(lambda t: t[0]))
            likelihood.noise = torch.clamp(init.noise_std.square(), min=min_noise)
            model.mean_module.constant = init.mean[0]
        model.train()
        likelihood.train()
        optimizer = torch.optim.LBFGS(
            model.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = -mll(model(x_ctx), y_ctx)
            loss.backward()
            return loss

        try:
            with _exact_settings():
                optimizer.step(closure)
                with torch.no_grad():
                    value = float(mll(model(x_ctx), y_ctx)) * n  # ExactMarginalLogLikelihood divides by n
        except (RuntimeError, ValueError):  # a start that walks into a non-PD region is skipped
            continue
        if math.isfinite(value) and value > best_value:
            best_value = value
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is None:
        raise RuntimeError(f"ML-II failed from all {restarts} starts (every marginal likelihood was non-finite)")
    model.load_state_dict(best_state)
    model.eval()
    likelihood.eval()
    params = GPParams(kernel=prior.kernel.get_gpytorch_params(model.covar_module),
                      noise_std=likelihood.noise.detach().reshape(()).sqrt().clone(),
                      mean=model.mean_module.constant.detach().reshape(()).clone())
    return MLIIFit(params=params, log_marginal_likelihood=best_value, model=model, likelihood=likelihood)


# ----------------------------------------------------------------------------------------------------------------
# the GP prior's references (see priorfit.exact.reference)


@dataclass(frozen=True)
class GPOracle:
    """The exact GP posterior with the hyperparameters each dataset was drawn with (``Task.truth``)."""

    prior: GPPrior
    name = "oracle"
    label = "oracle GP"
    kind = ReferenceKind.ORACLE

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        mean, var = gp_predictive(self.prior, task.truth, task.x_ctx[None], task.y_ctx[None], task.x_qry[None])
        return ReferenceResult(NormalPredictive(mean[0], var[0]))


@dataclass(frozen=True)
class GPMLII:
    """ML-II (:func:`ml2_fit`), the practitioner's baseline: the hyperparameters fitted by marginal likelihood,
    then plugged in. A dataset on which every start fails is reported as failed."""

    prior: GPPrior
    restarts: int = 3
    name = "ml2"
    label = "ML-II GP"
    kind = ReferenceKind.FITTED

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        try:
            fit = ml2_fit(self.prior, task.x_ctx, task.y_ctx, restarts=self.restarts,
                          generator=torch.Generator().manual_seed(seed))
        except RuntimeError:  # every restart hit a non-PD kernel matrix
            return ReferenceResult(None)
        return ReferenceResult(NormalPredictive(*fit.predict(task.x_qry)))
