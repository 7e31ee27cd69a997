r"""Exact Bayes for the BNN prior (:class:`~priorfit.priors.bnn.BNNPrior`): NUTS over the network's weights.

For ONE dataset, NumPyro's NUTS samples every weight and bias (non-centred: standard normals times their layer's
scale), the scales that have hyperpriors, the noise, and the targets' location :math:`\mu` and log scale
:math:`\log\sigma` (flat: :math:`p(\mu, \sigma) \propto 1/\sigma`), under
:math:`y_i \sim N(\mu + \sigma f(x_i), (\sigma\sigma_n)^2)` with the network reading the context-scaled inputs.
The predictive of a query is the mixture over draws of :math:`N(\mu + \sigma f(x_*), (\sigma\sigma_n)^2)`.

A network's weights are not identifiable (hidden units can be permuted, and for tanh have their signs flipped),
so R-hat and ESS over the weights say nothing about convergence; they are computed over what the predictive
uses: the function at the queries, the noise, the location, the log scale (and any sampled layer scale).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.predictive.mixture import NormalMixturePredictive
from priorfit.preprocessing import context_input_scaling, context_standardization, scale_inputs

__all__ = ["bnn_marginal_predictive", "BNNMarginal"]

_MAX_TREE_DEPTH = 8  # as for Student-t noise: caps the cost of a chain stuck in a narrow region
# Compiled samplers kept (one per data size): each holds XLA executables, and an evaluation that kept dozens (every
# context size, query count and longer rerun) ran out of memory maps in LLVM and crashed.
_CACHED_SAMPLERS = 4


@functools.lru_cache(maxsize=_CACHED_SAMPLERS)
def _bnn_mcmc(prior, n: int, d: int, m: int, num_warmup: int, num_samples: int, num_chains: int,
              target_accept_prob: float) -> Any:
    """A NumPyro MCMC for ``prior`` on n context points and m queries with d features (cached per size)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from priorfit.exact.student_t import _site
    from priorfit.priors.bnn import network_forward

    sizes = prior.layer_sizes(d)
    flat_prior = dist.ImproperUniform(dist.constraints.real, (), ())

    def model(x: Any, y: Any, x_qry: Any) -> None:
        weights, biases = [], []
        for layer, (fan_in, fan_out) in enumerate(sizes):
            w_std = _site(f"weight_std.{layer}", (), prior.weight_std[layer])
            b_std = _site(f"bias_std.{layer}", (), prior.bias_std[layer])
            z_w = numpyro.sample(f"z_w.{layer}", dist.Normal(0.0, 1.0).expand([fan_in, fan_out]).to_event(2))
            z_b = numpyro.sample(f"z_b.{layer}", dist.Normal(0.0, 1.0).expand([fan_out]).to_event(1))
            scale = w_std / (math.sqrt(fan_in) if prior.fan_in else 1.0)
            weights.append((scale * z_w)[None])
            biases.append((b_std * z_b)[None])
        noise = _site("noise_std", (), prior.noise_std)
        loc = numpyro.sample("loc", flat_prior)
        log_scale = numpyro.sample("log_scale", flat_prior)
        both = jnp.concatenate([x, x_qry])[None]
        f = network_forward(both, weights, biases, prior.activation)[0]
        numpyro.deterministic("f_query", f[n:])
        scale = jnp.exp(log_scale)
        numpyro.sample("y", dist.Normal(loc + scale * f[:n], scale * noise), obs=y)

    sampler = NUTS(model, target_accept_prob=target_accept_prob, max_tree_depth=_MAX_TREE_DEPTH)
    return MCMC(sampler, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="sequential", progress_bar=False, jit_model_args=True)


def bnn_marginal_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_warmup: int = 500,
                            num_samples: int = 500, num_chains: int = 2, seed: int = 0, *,
                            target_accept_prob: float = 0.9) -> NormalMixturePredictive:
    """The Bayes posterior predictive of ONE dataset under a ``BNNPrior`` by NUTS (module docstring), with
    ``diagnostics`` as :func:`priorfit.exact.marginal_predictive`'s over the function at the queries, the noise,
    the location and log scale, and any sampled layer scale. Needs n >= 2."""
    from priorfit.exact.invariant import _checked
    from priorfit.exact.marginal import run_numpyro

    x_ctx, y_ctx, x_qry = _checked(x_ctx, y_ctx, x_qry)
    (n, d), m = x_ctx.shape, x_qry.shape[0]
    lo, width = context_input_scaling(x_ctx[None])
    net_ctx = 2.0 * scale_inputs(x_ctx[None], lo, width)[0] - 1.0
    net_qry = 2.0 * scale_inputs(x_qry[None], lo, width)[0] - 1.0
    # the chains run on standardised targets (exact: the prior is invariant to it), mapped back below
    y_loc, y_scale = (float(t) for t in context_standardization(y_ctx[None]))
    mcmc = _bnn_mcmc(prior, n, d, m, num_warmup, num_samples, num_chains, float(target_accept_prob))
    samples, diag = run_numpyro(mcmc, seed, net_ctx.numpy(),
                                ((y_ctx - y_loc) / y_scale).numpy(), net_qry.numpy(),
                                watched=lambda name: not name.startswith(("z_w.", "z_b.")))
    total = num_chains * num_samples

    def flat(name: str, fixed: Any) -> torch.Tensor:
        if name in samples:
            return torch.from_numpy(samples[name].reshape(total, *samples[name].shape[2:]))
        return torch.full((total,), float(fixed.value), dtype=torch.float64)

    scale = y_scale * flat("log_scale", None).exp()
    means = y_loc + y_scale * flat("loc", None)[:, None] + scale[:, None] * flat("f_query", None)
    variances = (scale * flat("noise_std", prior.noise_std)).square()[:, None].expand(-1, m)
    return NormalMixturePredictive(means, variances.clone(), diagnostics=diag)


@dataclass(frozen=True)
class BNNMarginal:
    """The BNN prior's Bayes posterior predictive by NUTS over the weights (:func:`bnn_marginal_predictive`)."""

    prior: object
    num_warmup: int = 200
    num_samples: int = 200
    num_chains: int = 2
    name = "marginal"
    label = "BNN posterior (NUTS)"
    kind = ReferenceKind.MARGINAL

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from priorfit.exact.marginal import nuts_reference_result

        return nuts_reference_result(self, bnn_marginal_predictive, task, seed)
