r"""Exact Bayes for the BNN prior (:class:`~priorfit.priors.bnn.BNNPrior`): tempered SMC with HMC moves over the
network's weights (the reference), and NUTS (a cross-check where its chains mix).

A BNN's posterior has modes in function space that NUTS chains do not cross: on the shipped BNN prior, two chains
disagreed (R-hat over the function at the queries up to 3.0) in 7 of 10 cells even at 4x the chain length. Tempered
SMC (:func:`bnn_smc_predictive`) moves a population from the prior to the posterior and keeps each mode's posterior
weight; :class:`BNNPosteriorSMC` is the prior's marginal reference.

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

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.predictive.mixture import NormalMixturePredictive
from priorfit.preprocessing import context_input_scaling, context_standardization, scale_inputs
from priorfit.priors.hyperpriors import Fixed

__all__ = ["bnn_marginal_predictive", "BNNMarginal", "bnn_smc_predictive", "BNNPosteriorSMC"]

_MAX_TREE_DEPTH = 8  # as for Student-t noise: caps the cost of a chain stuck in a narrow region
# Compiled samplers kept (one per data size): each holds XLA executables, and an evaluation that kept dozens (every
# context size, query count and longer rerun) ran out of memory maps in LLVM and crashed.
_CACHED_SAMPLERS = 4


def _network_sites(prior, sizes: list) -> tuple[list, list]:
    """NumPyro sites of a network's weights and biases (non-centred: standard normals times their layer's scale,
    which is a site itself where it has a hyperprior): the weights and biases, each with a batch axis of 1."""
    import numpyro
    import numpyro.distributions as dist

    from priorfit.exact.student_t import _site

    weights, biases = [], []
    for layer, (fan_in, fan_out) in enumerate(sizes):
        w_std = _site(f"weight_std.{layer}", (), prior.weight_std[layer])
        b_std = _site(f"bias_std.{layer}", (), prior.bias_std[layer])
        z_w = numpyro.sample(f"z_w.{layer}", dist.Normal(0.0, 1.0).expand([fan_in, fan_out]).to_event(2))
        z_b = numpyro.sample(f"z_b.{layer}", dist.Normal(0.0, 1.0).expand([fan_out]).to_event(1))
        weights.append((prior.weight_scale(w_std, fan_in) * z_w)[None])
        biases.append((b_std * z_b)[None])
    return weights, biases


def network_inputs(x_ctx: torch.Tensor, x_qry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The context's and the queries' inputs (`n x d`, `m x d`) as a prior's networks read them: scaled by the
    context's range to [-1, 1]."""
    lo, width = context_input_scaling(x_ctx[None])
    return tuple(2.0 * scale_inputs(x[None], lo, width)[0] - 1.0 for x in (x_ctx, x_qry))


def _network_inputs(x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_qry: torch.Tensor) -> tuple:
    """What the samplers see of one dataset: inputs scaled by the context's range to [-1, 1] (as the prior feeds
    its networks), and targets standardised by the context (exact: the prior is invariant to it), with the
    location and scale that map the predictive back."""
    net_ctx, net_qry = network_inputs(x_ctx, x_qry)
    y_loc, y_scale = (float(t) for t in context_standardization(y_ctx[None]))
    return net_ctx, (y_ctx - y_loc) / y_scale, net_qry, y_loc, y_scale


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
        weights, biases = _network_sites(prior, sizes)
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
    net_ctx, y_std, net_qry, y_loc, y_scale = _network_inputs(x_ctx, y_ctx, x_qry)
    mcmc = _bnn_mcmc(prior, n, d, m, num_warmup, num_samples, num_chains, float(target_accept_prob))
    samples, diag = run_numpyro(mcmc, seed, net_ctx.numpy(), y_std.numpy(), net_qry.numpy(),
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


# --- tempered SMC with HMC moves --------------------------------------------------------------------------------
_TARGET_ESS = 0.5  # each next temperature keeps half the particles' effective sample size
_TARGET_ACCEPT = 0.75  # each temperature's HMC step size moves towards this acceptance rate
#: At n = 2 the posterior is the prior (no tempering, so a particle costs little) and the predictive's tails are
#: heaviest (the scale 1/t with t near 0 is Cauchy-like): with 512 particles per run one d = 2 dataset's NLL sat
#: 0.2 nats above its value with 8,192, so two-point datasets get this many times the particles.
_TWO_POINT_PARTICLE_FACTOR = 16
_MAX_TEMPERATURES = 500  # a run needing more stops (SMCStalled) rather than spinning


class SMCStalled(RuntimeError):
    """A tempered SMC run that did not reach the posterior within ``_MAX_TEMPERATURES`` temperatures."""


def _smc_model(prior, n: int, sizes: list, start: bool) -> Any:
    r"""The NumPyro model the SMC samples, for ONE dataset of n standardised targets ``y`` (mean 0).

    The location is integrated out in closed form and the scale enters as :math:`t = 1/\sigma`, whitened: with
    :math:`\tilde y, \tilde f` the centred targets and network outputs, :math:`a = \|\tilde y\|^2`,
    :math:`b = \tilde y \cdot \tilde f`, :math:`c = \|\tilde f\|^2`, the flat-location, :math:`1/|\sigma|`-scale
    posterior given the network and the noise is
    :math:`p(t) \propto |t|^{n-2} \exp(-(a t^2 - 2 b t + c) / 2\sigma_n^2)`; sampling
    :math:`\eta \sim N(0, 1)` with :math:`t = b/a + \sigma_n \eta / \sqrt a` leaves the factor
    :math:`\exp(-(c - b^2/a) / 2\sigma_n^2) (|t| / \sigma_n)^{n-2}`, which is the "likelihood" the SMC tempers
    in (``start``: the model without it, the prior). Negative t (sigma) is allowed: the prior is symmetric under
    f -> -f, so it mirrors the positive half and leaves the predictive unchanged. No funnel between the noise and
    the scale is left for HMC, and at n = 2 the posterior is the prior (c = b^2/a) and needs no tempering.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from priorfit.exact.student_t import _site
    from priorfit.priors.bnn import network_forward

    def model(x: Any, y: Any, x_qry: Any) -> None:
        weights, biases = _network_sites(prior, sizes)
        noise = _site("noise_std", (), prior.noise_std)
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0))
        f = network_forward(jnp.concatenate([x, x_qry])[None], weights, biases, prior.activation)[0]
        f_mean = jnp.mean(f[:n])
        f_c, y_c = f[:n] - f_mean, y - jnp.mean(y)
        a, b, c = jnp.sum(y_c**2), jnp.sum(y_c * f_c), jnp.sum(f_c**2)
        t = b / a + noise * eta / jnp.sqrt(a)
        if not start:
            numpyro.factor("likelihood", -jnp.maximum(c - b**2 / a, 0.0) / (2 * noise**2)
                           + (n - 2) * (jnp.log(jnp.abs(t)) - jnp.log(noise)))
        # the predictive given this network, noise and t: N(mean_query, (noise / t)^2 (1 + 1/n))
        numpyro.deterministic("mean_query", jnp.mean(y) + (f[n:] - f_mean) / t)
        numpyro.deterministic("log_abs_scale", -jnp.log(jnp.abs(t)))

    return model


def tempered_smc_pieces(start_model, full_model, shapes: tuple, num_mcmc_steps: int,
                        num_integration_steps: int) -> tuple:
    """Compiled pieces of a tempered SMC from ``start_model`` (the prior) to ``full_model`` (the posterior), two
    NumPyro models of the same sites taking the arguments ``shapes`` stands for: ``(first, step, constrain)``,
    for :func:`tempered_smc_run`."""
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.smc.tuning.from_particles import particles_stds
    from numpyro.infer.util import initialize_model, unconstrain_fn

    start = initialize_model(jax.random.PRNGKey(0), start_model, model_args=shapes, dynamic_args=True)
    full = initialize_model(jax.random.PRNGKey(0), full_model, model_args=shapes, dynamic_args=True)
    hmc = blackjax.hmc.build_kernel()

    @jax.jit
    def first(draws: dict) -> Any:
        unconstrained = jax.vmap(lambda p: unconstrain_fn(start_model, shapes, {}, p))(draws)
        return blackjax.smc.tempered.init(unconstrained)

    @jax.jit
    def step(key: Any, state: Any, step_size: Any, *args: Any) -> tuple:
        log_start = start.potential_fn(*args)
        log_full = full.potential_fn(*args)
        inverse_mass = particles_stds(state.particles) ** 2  # the particles' spread, refreshed every temperature

        def kernel(k, s, logdensity_fn, step_size):
            return hmc(k, s, logdensity_fn, step_size, inverse_mass, num_integration_steps)

        def finite(v: Any) -> Any:  # a non-finite density (e.g. a noise scale that underflowed) is a zero one
            return jnp.where(jnp.isfinite(v), v, -jnp.inf)

        smc = blackjax.adaptive_tempered_smc(
            lambda u: finite(-log_start(u)), lambda u: finite(log_start(u) - log_full(u)), kernel, blackjax.hmc.init,
            {"step_size": jnp.reshape(step_size, (1,))}, blackjax.smc.resampling.systematic, _TARGET_ESS,
            num_mcmc_steps=num_mcmc_steps)
        state, info = smc.step(key, state)
        return state, info.log_likelihood_increment, jnp.mean(info.update_info.acceptance_rate)

    @jax.jit
    def constrain(particles: Any, *args: Any) -> dict:
        return jax.vmap(full.postprocess_fn(*args))(particles)

    return first, step, constrain


@functools.lru_cache(maxsize=_CACHED_SAMPLERS)
def _bnn_smc(prior, n: int, d: int, m: int, num_particles: int, num_mcmc_steps: int,
             num_integration_steps: int) -> tuple:
    """Compiled pieces of :func:`bnn_smc_predictive` for ``prior`` on n context points, m queries and d features
    (cached per size): ``(first, step, constrain)``."""
    import jax.numpy as jnp

    sizes = prior.layer_sizes(d)
    start_model, full_model = (_smc_model(prior, n, sizes, start) for start in (True, False))
    shapes = (jnp.zeros((n, d)), jnp.linspace(-1.0, 1.0, n), jnp.zeros((m, d)))
    return tempered_smc_pieces(start_model, full_model, shapes, num_mcmc_steps, num_integration_steps)


def network_start_draws(network, params) -> dict:
    """The sites of :func:`_network_sites` (constrained; torch tensors) of ``network`` (a ``BNNPrior``) for the
    networks of ``params`` (a ``BNNParams`` the prior's own sampler drew): the sampled layer scales and the
    standardised weights and biases."""
    draws = {}
    for layer, fan_in in enumerate(w.shape[1] for w in params.weights):
        w_std, b_std = params.weight_std[:, layer], params.bias_std[:, layer]
        if not isinstance(network.weight_std[layer], Fixed):
            draws[f"weight_std.{layer}"] = w_std
        if not isinstance(network.bias_std[layer], Fixed):
            draws[f"bias_std.{layer}"] = b_std
        draws[f"z_w.{layer}"] = params.weights[layer] / network.weight_scale(w_std, fan_in)[:, None, None]
        draws[f"z_b.{layer}"] = params.biases[layer] / b_std[:, None]
    return draws


def _start_draws(prior, d: int, num_particles: int, seed: int) -> dict:
    """Prior draws of the SMC's sites (constrained) by the prior's own sampler, and eta ~ N(0, 1)."""
    import jax.numpy as jnp

    gen = torch.Generator().manual_seed(seed)
    params = prior.sample_params(num_particles, d, gen)
    draws = network_start_draws(prior, params)
    if not isinstance(prior.noise_std, Fixed):
        draws["noise_std"] = params.noise_std
    draws["eta"] = torch.randn(num_particles, generator=gen, dtype=torch.float64)
    return {k: jnp.asarray(v.double().numpy()) for k, v in draws.items()}


def tempered_smc_run(pieces: tuple, draws: dict, args: tuple, key: Any) -> tuple[dict, Any, float, int]:
    """One tempered SMC run with ``pieces`` (:func:`tempered_smc_pieces`) from the prior draws ``draws``
    (constrained JAX arrays) on the data ``args``: the constrained particles (deterministic sites included), their
    log weights, the log evidence increment over the prior (up to constants) and the number of temperatures."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    first, step, constrain = pieces
    state = first(draws)
    step_size, log_evidence, temperatures = 0.1, 0.0, 0
    while float(state.tempering_param) < 1.0:
        if temperatures >= _MAX_TEMPERATURES:
            raise SMCStalled(f"tempered SMC needed more than {_MAX_TEMPERATURES} temperatures")
        key, sub = jax.random.split(key)
        state, increment, accept = step(sub, state, jnp.asarray(step_size), *args)
        log_evidence += float(increment)
        step_size *= float(np.exp(2.0 * (float(accept) - _TARGET_ACCEPT)))
        temperatures += 1
    values = constrain(state.particles, *args)
    return values, jnp.log(state.weights), log_evidence, temperatures


def tempered_smc_runs(pieces: tuple, args: tuple, start_draws: Any, num_runs: int, num_particles: int, seed: int,
                      dropped: tuple[str, ...]) -> tuple[list[dict], list, dict]:
    """``num_runs`` independent runs of :func:`tempered_smc_run` on the data ``args`` (inside ``_x64()``), each from
    ``start_draws(seed)``'s prior draws: each run's particles (numpy, float64; sites whose names start with
    ``dropped`` left out), their log weights, and the diagnostics: split R-hat and ESS with the runs as chains
    (particles resampled by weight in a random order, so R-hat measures how far the runs disagree), the runs' log
    evidences and numbers of temperatures."""
    import jax
    import numpy as np

    from priorfit.exact.marginal import _nuts_diagnostics

    runs, log_weights, evidences, temperatures = [], [], [], []
    for key in jax.random.split(jax.random.PRNGKey(seed), num_runs):
        draws = start_draws(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        values, lw, evidence, steps = tempered_smc_run(pieces, draws, args, key)
        runs.append({k: np.asarray(v, dtype=np.float64) for k, v in values.items() if not k.startswith(dropped)})
        log_weights.append(np.asarray(lw, dtype=np.float64))
        evidences.append(evidence)
        temperatures.append(steps)
    rng = np.random.default_rng(seed)
    grouped = {}
    for name in runs[0]:
        rows = []
        for values, lw in zip(runs, log_weights):
            w = np.exp(lw - lw.max())
            rows.append(values[name][rng.choice(num_particles, size=num_particles, p=w / w.sum())])
        grouped[name] = np.stack(rows)
    diag = _nuts_diagnostics(grouped, np.zeros((num_runs, num_particles), dtype=bool))
    diag.update(method="tempered_smc", log_evidence=evidences, temperatures=temperatures)
    return runs, log_weights, diag


def bnn_smc_predictive(prior, x_ctx: object, y_ctx: object, x_qry: object, num_particles: int = 512,
                       num_runs: int = 4, num_mcmc_steps: int = 4, num_integration_steps: int = 16,
                       seed: int = 0) -> NormalMixturePredictive:
    """The Bayes posterior predictive of ONE dataset under a ``BNNPrior`` by adaptive tempered SMC with HMC moves
    [DDJ2006]_ (BlackJAX), ``num_runs`` independent runs of ``num_particles`` pooled.

    Why not NUTS alone: the posterior over a network's weights has modes that NUTS chains do not cross, and
    independent chains weight modes by their basins, not their mass. Tempering moves a population from the prior
    to the posterior through intermediate distributions, reweighting and resampling as it goes, so modes keep
    their posterior weight. The location is integrated out exactly and the scale whitened (:func:`_smc_model`).

    Temperatures are chosen so that each keeps half the effective sample size; each is followed by
    ``num_mcmc_steps`` HMC moves (``num_integration_steps`` leapfrog steps, a diagonal mass matrix from the
    particles' spread, the step size tuned towards 75% acceptance).

    ``diagnostics``: split R-hat and ESS with the runs as chains (particles resampled by weight in a random order,
    so R-hat measures how far the runs disagree) over the predictive mean at the queries, the log scale, the
    noise and any sampled layer scale; the runs' log evidences and numbers of temperatures. Needs n >= 2.

    .. [DDJ2006] P. Del Moral, A. Doucet, A. Jasra. Sequential Monte Carlo samplers. JRSS B 68(3), 2006.
    """
    import jax.numpy as jnp
    import numpy as np

    from priorfit.exact.invariant import _checked
    from priorfit.exact.marginal import _x64

    x_ctx, y_ctx, x_qry = _checked(x_ctx, y_ctx, x_qry)
    n, m = x_ctx.shape[0], x_qry.shape[0]
    net_ctx, y_std, net_qry, y_loc, y_scale = _network_inputs(x_ctx, y_ctx, x_qry)
    d = x_ctx.shape[1]
    with _x64():
        args = tuple(jnp.asarray(t.numpy()) for t in (net_ctx, y_std, net_qry))
        pieces = _bnn_smc(prior, n, d, m, num_particles, num_mcmc_steps, num_integration_steps)
        runs, log_weights, diag = tempered_smc_runs(
            pieces, args, lambda s: _start_draws(prior, d, num_particles, s), num_runs, num_particles, seed,
            dropped=("z_w.", "z_b.", "eta"))

    def pooled(name: str, fixed: Any = None) -> torch.Tensor:
        if name in runs[0]:
            return torch.from_numpy(np.concatenate([r[name] for r in runs]))
        return torch.full((num_runs * num_particles,), float(fixed.value), dtype=torch.float64)

    means = y_loc + y_scale * pooled("mean_query")
    sd = y_scale * pooled("log_abs_scale").exp() * pooled("noise_std", prior.noise_std) * math.sqrt(1 + 1 / n)
    variances = sd.square()[:, None].expand(-1, m)
    # every run's weights normalised to 1/num_runs in total: the runs count equally
    lw = np.concatenate([w - np.logaddexp.reduce(w) for w in log_weights])
    return NormalMixturePredictive(means, variances.clone(), log_weights=torch.from_numpy(lw), diagnostics=diag)


@dataclass(frozen=True)
class BNNPosteriorSMC:
    """The BNN prior's Bayes posterior predictive by tempered SMC with HMC moves (:func:`bnn_smc_predictive`):
    ``num_runs`` runs of ``num_particles`` (16 times as many at n = 2), rerun with more moves where they disagree."""

    prior: object
    num_particles: int = 512
    num_runs: int = 4
    num_mcmc_steps: int = 4
    name = "marginal"
    label = "BNN posterior (tempered SMC)"
    kind = ReferenceKind.MARGINAL

    def longer(self, factor: int) -> "BNNPosteriorSMC":
        """The rerun where the runs disagreed (R-hat above the limit): ``factor`` times the HMC moves per
        temperature, so that the particles mix more between reweightings."""
        return dataclasses.replace(self, num_mcmc_steps=factor * self.num_mcmc_steps)

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        n = task.x_ctx.shape[0]
        particles = self.num_particles * (_TWO_POINT_PARTICLE_FACTOR if n == 2 else 1)
        try:
            pred = bnn_smc_predictive(self.prior, task.x_ctx, task.y_ctx, task.x_qry,
                                      num_particles=particles, num_runs=self.num_runs,
                                      num_mcmc_steps=self.num_mcmc_steps, seed=seed)
        except SMCStalled:
            return ReferenceResult(None)  # counted as a failure in the report
        return ReferenceResult.from_mcmc(pred)
