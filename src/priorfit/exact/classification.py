r"""Exact Bayes for GP classification (:class:`~priorfit.priors.classification.GPClassificationPrior`): the
posterior predictive of a query's class given a context whose labels hold all C classes of the dataset (what a
classifier PFN is trained to give, :mod:`priorfit.model.categorical`).

NUTS (NumPyro) samples, jointly, the GP's hyperparameters :math:`\theta` (kernel and noise), the classes' means
:math:`m_c` and the latent values at the context, non-centred: :math:`g_c = m_c + L_\theta w_c`, :math:`w_c \sim
N(0, I)`, :math:`L_\theta L_\theta^\top = K_\theta + (\sigma^2 + \epsilon) I` on the inputs scaled by the context,
as the prior draws them; the labels are Categorical(softmax(g)). Per draw, a query's latents are Gaussian given
the context's, :math:`N(m + v^\top w, k_{**} + \sigma^2 + \epsilon - v^\top v)` with :math:`v = L_\theta^{-1}
k_*`, independent across classes, and the class probabilities are the expectation of their softmax: Monte Carlo
with ``latent_draws`` draws per posterior draw. R-hat and ESS cover every sampled quantity, latents included
(``max_r_hat``, ``min_ess``), and, apart, what the reference is used for: each query's class probabilities per
posterior draw (``predictive_max_r_hat``, ``predictive_min_ess``). With 128 x C latents the first is the largest
of hundreds of statistics; the second says whether the chains agree on the predictive itself.

"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.exceptions import InputDataError
from priorfit.predictive.categorical import ClassProbabilities
from priorfit.priors.gp import cholesky_with_jitter
from priorfit.priors.hyperpriors import Fixed

__all__ = ["classification_predictive", "GPClassificationMarginal"]

_MAX_TREE_DEPTH = 8
_LATENT_DRAWS = 64


def _checked(x_ctx: object, y_ctx: object, x_qry: object) -> tuple[Tensor, Tensor, Tensor, int]:
    from priorfit.exact.marginal import _check_data

    x_ctx, y_ctx, x_qry = _check_data(x_ctx, y_ctx, x_qry)
    labels = y_ctx.long()
    if bool((labels != y_ctx).any()) or int(labels.min()) < 0:
        raise InputDataError("y_ctx must hold class indices 0 ... C - 1")
    n_classes = int(labels.max()) + 1
    if set(labels.tolist()) != set(range(n_classes)):
        raise InputDataError(f"y_ctx must hold every class 0 ... {n_classes - 1} (the posterior is that of data whose "
                             "classes are all in the context)")
    return x_ctx, labels, x_qry, n_classes


@functools.lru_cache(maxsize=8)
def _mcmc(prior, n: int, d: int, n_classes: int, num_warmup: int, num_samples: int, num_chains: int,
          target_accept_prob: float) -> Any:
    """A NumPyro MCMC (NUTS) on n context points with ``n_classes`` classes. Cached per size."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from priorfit.exact.invariant import _shape_table
    from priorfit.exact.student_t import _site

    table = _shape_table(prior, d)
    kernel, jitter = prior.gp.kernel, float(prior.gp.jitter)

    def model(x: Any, y: Any) -> None:
        flat = {name: _site(name, shape, hp) for name, shape, hp in table}
        means = _site("class_means", (n_classes,), prior.gp.mean)
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([n, n_classes]).to_event(2))
        params = kernel.params_from(flat)
        cov = kernel.matrix(params.map(lambda a: a[None]), x[None], x[None])[0]
        cov = cov + (jnp.square(flat["noise_std"]) + jitter) * jnp.eye(n)
        g = means + jnp.linalg.cholesky(cov) @ w
        numpyro.sample("y", dist.Categorical(logits=g), obs=y)

    sampler = NUTS(model, target_accept_prob=target_accept_prob, max_tree_depth=_MAX_TREE_DEPTH)
    return MCMC(sampler, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="sequential", progress_bar=False, jit_model_args=True)


def _query_probabilities(prior, flat: dict[str, Tensor], means: Tensor, w: Tensor, xc: Tensor, xq: Tensor,
                         latent_draws: int, seed: int) -> Tensor:
    """`S x m x C` class probabilities per posterior draw (``flat`` kernel/noise values `S x ...`, ``means`` `S x C`,
    ``w`` `S x n x C`), each query's latents drawn ``latent_draws`` times given the context's."""
    kernel, jitter = prior.gp.kernel, prior.gp.jitter
    generator = torch.Generator().manual_seed(seed)
    per_draw = []
    s, n, c = w.shape
    for start in range(0, s, 128):
        rows = slice(start, start + 128)
        params = kernel.params_from({k: v[rows] for k, v in flat.items() if k != "noise_std"})
        b = w[rows].shape[0]
        s2 = flat["noise_std"][rows].square() + jitter
        cov = kernel.forward(params, xc.expand(b, -1, -1), xc.expand(b, -1, -1)) + s2[:, None, None] * torch.eye(
            n, dtype=torch.float64)
        chol = cholesky_with_jitter(cov, 0.0)
        cross = kernel.forward(params, xc.expand(b, -1, -1), xq.expand(b, -1, -1))  # b x n x m
        v = torch.linalg.solve_triangular(chol, cross, upper=False)
        mean = means[rows][:, None, :] + torch.einsum("bnm,bnc->bmc", v, w[rows])  # b x m x C
        var = (kernel.diag(params, xq.expand(b, -1, -1)) + s2[:, None] - v.square().sum(1)).clamp_min(0.0)
        eps = torch.randn(latent_draws, *mean.shape, generator=generator, dtype=torch.float64)
        per_draw.append(torch.softmax(mean + var.sqrt()[..., None] * eps, dim=-1).mean(0))  # b x m x C
    return torch.cat(per_draw)


def _predictive_diagnostics(per_draw: Tensor, num_chains: int) -> dict[str, float]:
    """Split R-hat (largest) and ESS (smallest) over the queries' class probabilities, per posterior draw
    (`S x m x C`, chain-major), as the sampled sites' are computed."""
    from priorfit.exact.marginal import _nuts_diagnostics

    grouped = per_draw.reshape(num_chains, -1, *per_draw.shape[1:]).numpy()
    diag = _nuts_diagnostics({"query_probabilities": grouped}, np.zeros(0))
    return {"predictive_max_r_hat": diag["max_r_hat"], "predictive_min_ess": diag["min_ess"]}


def _kernel_flat(table: tuple, draws: dict[str, Tensor], total: int) -> dict[str, Tensor]:
    """Every kernel hyperparameter and the noise of ``table`` (name, shape, hyperprior), `total x shape`: the
    sampled draws, or the fixed value repeated."""
    return {name: draws[name] if name in draws else torch.full((total, *shape), float(hp.value), dtype=torch.float64)
            for name, shape, hp in table}


def classification_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_warmup: int = 500,
                              num_samples: int = 500, num_chains: int = 2, seed: int = 0, *,
                              target_accept_prob: float = 0.9,
                              latent_draws: int = _LATENT_DRAWS) -> ClassProbabilities:
    """The posterior predictive class probabilities (`m x C`) of ONE dataset under ``prior`` (see the module
    docstring); y_ctx holds class indices, every class 0 ... C - 1 at least once. ``diagnostics``: max split
    R-hat, min ESS, divergences (as :func:`priorfit.exact.marginal.run_numpyro` reports them)."""
    from priorfit.exact.invariant import _shape_table
    from priorfit.exact.marginal import run_numpyro
    from priorfit.preprocessing import context_input_scaling, scale_inputs

    x_ctx, labels, x_qry, n_classes = _checked(x_ctx, y_ctx, x_qry)
    n, d = x_ctx.shape
    lo, width = context_input_scaling(x_ctx[None])
    xc, xq = scale_inputs(x_ctx[None], lo, width)[0], scale_inputs(x_qry[None], lo, width)[0]
    table = _shape_table(prior, d)
    mcmc = _mcmc(prior, n, d, n_classes, num_warmup, num_samples, num_chains, float(target_accept_prob))
    total = num_chains * num_samples
    grouped, diag = run_numpyro(mcmc, seed, xc.numpy(), labels.numpy())
    draws = {k: torch.from_numpy(v.reshape(total, *v.shape[2:])) for k, v in grouped.items()}
    means = draws.pop("class_means") if "class_means" in draws else torch.full(
        (total, n_classes), float(prior.gp.mean.value), dtype=torch.float64)
    flat = _kernel_flat(table, draws, total)
    per_draw = _query_probabilities(prior, flat, means, draws["w"], xc, xq, latent_draws, seed)
    diag.update(_predictive_diagnostics(per_draw, num_chains))
    return ClassProbabilities(per_draw.mean(0), diagnostics=diag)


@dataclass(frozen=True)
class GPClassificationMarginal:
    """The Bayes posterior predictive of a GP classification prior (:func:`classification_predictive`)."""

    prior: object
    num_warmup: int = 300
    num_samples: int = 300
    num_chains: int = 2
    name = "marginal"
    label = "GP classification marginal (NUTS)"
    kind = ReferenceKind.MARGINAL

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        return ReferenceResult.from_mcmc(classification_predictive(
            self.prior, task.x_ctx, task.y_ctx, task.x_qry, self.num_warmup, self.num_samples, self.num_chains,
            seed))
