r"""Exact Bayes for BNN classification (:class:`~priorfit.priors.bnn_classification.BNNClassificationPrior`): the
posterior predictive of a query's class by tempered SMC with HMC moves over the network's weights, the machinery
of the regression BNN's reference (:func:`priorfit.exact.bnn.tempered_smc_runs`).

For ONE dataset whose context holds all C classes, the SMC moves a population of networks (C read-outs; weights
and biases non-centred, standard normals times their layer's scale; the scales and the label noise where they have
hyperpriors) from the prior to the posterior under the likelihood
:math:`\prod_i [(1 - \epsilon)\,\mathrm{softmax}(f(x_i))_{y_i} + \epsilon / C]`, the network reading the inputs
scaled by the context to [-1, 1] as the prior draws them. The predictive of a query is the weighted average over
the final particles of its class probabilities, pooled over independent runs (each weighted equally).

Why SMC and not NUTS: as for regression, the weights' posterior has modes that NUTS chains do not cross.
``diagnostics``: split R-hat and ESS with the runs as chains over the query class probabilities and any sampled
scale (:func:`priorfit.exact.bnn.tempered_smc_runs`), the runs' log evidences and numbers of temperatures.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from priorfit.exact.bnn import (
    _CACHED_SAMPLERS,
    SMCStalled,
    _network_sites,
    network_inputs,
    network_start_draws,
    tempered_smc_pieces,
    tempered_smc_runs,
)
from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.predictive.categorical import ClassProbabilities
from priorfit.priors.hyperpriors import Fixed

__all__ = ["bnn_classification_predictive", "BNNClassificationSMC"]


def _model(prior, sizes: list, n_classes: int, start: bool) -> Any:
    """The NumPyro model the SMC samples for ONE dataset (labels ``y``, class indices); ``start``: without the
    likelihood (the prior)."""
    import jax
    import jax.numpy as jnp
    import numpyro

    from priorfit.exact.student_t import _site
    from priorfit.priors.bnn import network_outputs

    def model(x: Any, y: Any, x_qry: Any) -> None:
        weights, biases = _network_sites(prior.network, sizes)
        noise = _site("label_noise", (), prior.label_noise)
        n = x.shape[0]
        logits = network_outputs(jnp.concatenate([x, x_qry])[None], weights, biases, prior.network.activation)[0]
        # log((1 - eps) softmax + eps / C), in log space so that widely spread logits keep a finite density
        log_probs = jnp.logaddexp(jnp.log1p(-noise) + jax.nn.log_softmax(logits, axis=-1),
                                  jnp.log(noise) - jnp.log(n_classes))
        if not start:
            numpyro.factor("likelihood", jnp.sum(jnp.take_along_axis(log_probs[:n], y[:, None], axis=1)))
        numpyro.deterministic("probs_query", jnp.exp(log_probs[n:]))

    return model


@functools.lru_cache(maxsize=_CACHED_SAMPLERS)
def _pieces(prior, n: int, d: int, m: int, n_classes: int, num_mcmc_steps: int, num_integration_steps: int) -> tuple:
    """Compiled SMC pieces for ``prior`` on n context points, m queries, d features and C classes (cached)."""
    import jax.numpy as jnp

    sizes = prior.network.layer_sizes(d, n_classes)
    start_model, full_model = (_model(prior, sizes, n_classes, start) for start in (True, False))
    shapes = (jnp.zeros((n, d)), jnp.arange(n, dtype=jnp.int32) % n_classes, jnp.zeros((m, d)))
    return tempered_smc_pieces(start_model, full_model, shapes, num_mcmc_steps, num_integration_steps)


def _start_draws(prior, d: int, n_classes: int, num_particles: int, seed: int) -> dict:
    """Prior draws of the SMC's sites (constrained), by the prior's own sampler."""
    import jax.numpy as jnp

    gen = torch.Generator().manual_seed(seed)
    params = prior.network.sample_params(num_particles, d, gen, n_outputs=n_classes)
    draws = network_start_draws(prior.network, params)
    if not isinstance(prior.label_noise, Fixed):
        draws["label_noise"] = prior.label_noise.sample((num_particles,), gen)
    return {k: jnp.asarray(v.double().numpy()) for k, v in draws.items()}


def bnn_classification_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_particles: int = 512,
                                  num_runs: int = 4, num_mcmc_steps: int = 4, num_integration_steps: int = 16,
                                  seed: int = 0) -> ClassProbabilities:
    """The posterior predictive class probabilities (`m x C`) of ONE dataset under ``prior`` (a
    ``BNNClassificationPrior``) by tempered SMC (module docstring): ``num_runs`` runs of ``num_particles``, each
    temperature followed by ``num_mcmc_steps`` HMC moves of ``num_integration_steps`` leapfrog steps. y_ctx holds
    class indices, every class 0 ... C - 1 at least once."""
    import jax.numpy as jnp

    from priorfit.exact.classification import _checked
    from priorfit.exact.marginal import _x64
    from priorfit.exceptions import InputDataError
    from priorfit.priors.bnn_classification import BNNClassificationPrior

    if not isinstance(prior, BNNClassificationPrior):
        raise TypeError(f"prior must be a BNNClassificationPrior, got {type(prior).__name__}")
    x_ctx, labels, x_qry, n_classes = _checked(x_ctx, y_ctx, x_qry)
    (n, d), m = x_ctx.shape, x_qry.shape[0]
    if not prior.min_classes <= n_classes <= prior.max_classes:
        raise InputDataError(f"y_ctx holds {n_classes} classes; the prior draws {prior.min_classes} to "
                             f"{prior.max_classes}")
    if d > prior.max_features:
        raise InputDataError(f"x_ctx has {d} features; the prior draws at most {prior.max_features}")
    net_ctx, net_qry = network_inputs(x_ctx, x_qry)
    with _x64():
        args = (jnp.asarray(net_ctx.numpy()), jnp.asarray(labels.numpy().astype(np.int32)), jnp.asarray(net_qry.numpy()))
        pieces = _pieces(prior, n, d, m, n_classes, num_mcmc_steps, num_integration_steps)
        runs, log_weights, diag = tempered_smc_runs(
            pieces, args, lambda s: _start_draws(prior, d, n_classes, num_particles, s), num_runs, num_particles,
            seed, dropped=("z_w.", "z_b."))
    probs = np.zeros((m, n_classes))
    for values, lw in zip(runs, log_weights):  # each run's weights normalised: the runs count equally
        w = np.exp(lw - lw.max())
        probs += np.einsum("p,pmc->mc", w / w.sum(), values["probs_query"]) / num_runs
    return ClassProbabilities(torch.from_numpy(probs / probs.sum(1, keepdims=True)), diagnostics=diag)


@dataclass(frozen=True)
class BNNClassificationSMC:
    """The BNN classification prior's Bayes posterior predictive by tempered SMC
    (:func:`bnn_classification_predictive`), rerun with more moves where the runs disagree."""

    prior: object
    num_particles: int = 512
    num_runs: int = 4
    num_mcmc_steps: int = 4
    name = "marginal"
    label = "BNN classification posterior (tempered SMC)"
    kind = ReferenceKind.MARGINAL

    def longer(self, factor: int) -> "BNNClassificationSMC":
        """``factor`` times the HMC moves per temperature (the rerun where the runs disagreed)."""
        return dataclasses.replace(self, num_mcmc_steps=factor * self.num_mcmc_steps)

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        try:
            pred = bnn_classification_predictive(self.prior, task.x_ctx, task.y_ctx, task.x_qry,
                                                 num_particles=self.num_particles, num_runs=self.num_runs,
                                                 num_mcmc_steps=self.num_mcmc_steps, seed=seed)
        except SMCStalled:
            return ReferenceResult(None)  # counted as a failure in the report
        return ReferenceResult.from_mcmc(pred)
