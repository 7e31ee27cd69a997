r"""A GP-matched functional prior: a BNN's per-layer weight and bias scales fitted so that the functions it
draws look like a target GP's [TRMF2022]_.

The distance between the two priors over functions is measured where functions can be compared: at M random
measurement points :math:`X_M` (uniform in the unit cube, fresh at every step), each prior gives a distribution
over :math:`\mathbb R^M`, and the fit minimises the Wasserstein distance between them,

.. math:: \min_\psi\; \mathbb E_{X_M}\; W_2\big(p_{\text{BNN}, \psi}(f(X_M)),\; p_{\text{GP}}(f(X_M))\big)

over :math:`\psi` = the log scales of every layer. Each side is represented by N function draws (the BNN's
reparameterised: standard normal weights times the scales, so the draws are differentiable in :math:`\psi`), and
the distance between the two empirical measures is computed *exactly*, as the optimal assignment between the
two sets of N points (``scipy.optimize.linear_sum_assignment`` on the N x N squared distances; the gradient
flows through the matched pairs, the assignment being locally constant). [TRMF2022]_ estimate the distance
with a Lipschitz critic trained adversarially (the Kantorovich dual of W1), which scales to many measurement
points; for the few points and draws used here the exact assignment costs milliseconds, has no critic to train
and no critic's bias, so we use it.

An empirical distance between N draws is positive even between two draws of one prior, and in M dimensions it
shrinks slowly with N; :func:`wasserstein` therefore reports, beside the assignment W2 and its floor (two
independent GP draws), the sliced W2 (the mean over random directions of the squared 1-D distance, whose
empirical estimate converges at the parametric rate) and its floor.

References:
    .. [TRMF2022] B.-H. Tran, S. Rossi, D. Milios, M. Filippone. All you need is a good functional prior for
        Bayesian deep learning. JMLR 23(74), 2022.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from priorfit.priors.bnn import BNNPrior, network_forward
from priorfit.priors.gp import GPPrior, cholesky_with_jitter
from priorfit.priors.hyperpriors import Fixed
from priorfit.validation import check_int

__all__ = ["FunctionalPriorFit", "fit_functional_prior", "wasserstein", "bnn_functions", "gp_functions"]


def gp_functions(gp: GPPrior, x: Tensor, draws: int, generator: torch.Generator) -> Tensor:
    """`draws x M` noise-free function values of ``gp`` (its hyperparameters drawn too) at x (`M x d`)."""
    params = gp.sample_params(draws, x.shape[1], generator)
    xb = x.expand(draws, -1, -1)
    chol = cholesky_with_jitter(gp.covariance(params, xb, xb), gp.jitter)
    z = torch.randn(draws, x.shape[0], 1, generator=generator, dtype=torch.float64)
    return params.mean[:, None] + (chol @ z)[..., 0]


def bnn_functions(bnn: BNNPrior, log_weight_std: Tensor, log_bias_std: Tensor, x: Tensor, draws: int,
                  generator: torch.Generator) -> Tensor:
    """`draws x M` function values at x (`M x d`, in the unit cube; the network reads 2x - 1) of ``bnn``'s
    networks with per-layer scales exp(``log_weight_std``), exp(``log_bias_std``) (each `depth + 1`),
    differentiable in them."""
    weights, biases = [], []
    for layer, (fan_in, fan_out) in enumerate(bnn.layer_sizes(x.shape[1])):
        z_w = torch.randn(draws, fan_in, fan_out, generator=generator, dtype=torch.float64)
        z_b = torch.randn(draws, fan_out, generator=generator, dtype=torch.float64)
        scale = bnn.weight_scale(log_weight_std[layer].exp(), fan_in)
        weights.append(scale * z_w)
        biases.append(log_bias_std[layer].exp() * z_b)
    return network_forward(2.0 * x.expand(draws, -1, -1) - 1.0, weights, biases, bnn.activation)


def _assignment_w2(a: Tensor, b: Tensor) -> Tensor:
    """W2 between the empirical measures of the rows of a and b (`N x M` each): the square root of the mean
    squared distance of the optimal one-to-one matching, differentiable through the matched pairs."""
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(a, b).square()
    rows, cols = linear_sum_assignment(cost.detach().numpy())
    return cost[torch.as_tensor(rows), torch.as_tensor(cols)].mean().sqrt()


def _sliced_w2(a: Tensor, b: Tensor, projections: Tensor) -> Tensor:
    """Sliced W2 between the empirical measures of the rows of a and b (`N x M` each): the root mean, over unit
    ``projections`` (`P x M`), of the squared 1-D W2 between the projected samples (sorted and matched)."""
    pa, _ = torch.sort(a @ projections.T, dim=0)
    pb, _ = torch.sort(b @ projections.T, dim=0)
    return (pa - pb).square().mean().sqrt()


def _log_scales(bnn: BNNPrior) -> tuple[Tensor, Tensor]:
    def values(priors: tuple) -> Tensor:
        for hp in priors:
            if not isinstance(hp, Fixed) or hp.value <= 0:
                raise ValueError(f"the BNN's scales must be Fixed and positive to be fitted, got {hp!r}")
        return torch.tensor([math.log(hp.value) for hp in priors], dtype=torch.float64)

    return values(bnn.weight_std), values(bnn.bias_std)


@dataclass(frozen=True)
class WassersteinEstimate:
    """Distances between a BNN prior and a GP over R measurement sets, each with the same estimate between two
    independent draws of the GP beside it (the empirical floor, which is not 0 for finite draws):

    - ``w2``, ``w2_se``, ``w2_floor``: W2 of the empirical measures (the optimal assignment), what the fit
      minimises; in M dimensions its floor shrinks slowly with the draws.
    - ``sliced``, ``sliced_se``, ``sliced_floor``: sliced W2 over random directions, whose 1-D empirical
      distances converge at the parametric rate, so its floor is small.
    """

    w2: float
    w2_se: float
    w2_floor: float
    sliced: float
    sliced_se: float
    sliced_floor: float


def wasserstein(bnn: BNNPrior, gp: GPPrior, n_features: int = 1, points: int = 32, draws: int = 512,
                repeats: int = 10, sliced_draws: int = 8192, projections: int = 256,
                seed: int = 0) -> WassersteinEstimate:
    """Distances between ``bnn``'s and ``gp``'s function values at ``points`` uniform measurement points in
    [0, 1]^``n_features``, averaged over ``repeats`` measurement sets (a seed of their own, so every prior is
    measured on the same sets): W2 with ``draws`` functions per prior, sliced W2 with ``sliced_draws`` and
    ``projections`` random directions (see :class:`WassersteinEstimate`)."""
    if draws > sliced_draws:
        raise ValueError(f"draws ({draws}) must not exceed sliced_draws ({sliced_draws}): the W2 uses the first "
                         "draws of the sliced estimate's")
    log_w, log_b = _log_scales(bnn)
    where = torch.Generator().manual_seed(seed)  # measurement sets and directions: the same for every prior
    generator = torch.Generator().manual_seed(seed + 1)  # function draws
    rows = {key: [] for key in ("w2", "w2_floor", "sliced", "sliced_floor")}
    with torch.no_grad():
        for _ in range(repeats):
            x = torch.rand(points, n_features, generator=where, dtype=torch.float64)
            u = torch.randn(projections, points, generator=where, dtype=torch.float64)
            u = u / u.norm(dim=1, keepdim=True)
            gp_a, gp_b = gp_functions(gp, x, sliced_draws, generator), gp_functions(gp, x, sliced_draws, generator)
            f = bnn_functions(bnn, log_w, log_b, x, sliced_draws, generator)
            rows["w2"].append(float(_assignment_w2(f[:draws], gp_a[:draws])))
            rows["w2_floor"].append(float(_assignment_w2(gp_b[:draws], gp_a[:draws])))
            rows["sliced"].append(float(_sliced_w2(f, gp_a, u)))
            rows["sliced_floor"].append(float(_sliced_w2(gp_b, gp_a, u)))
    se = {key: float(np.std(v, ddof=1) / math.sqrt(repeats)) for key, v in rows.items()}
    return WassersteinEstimate(w2=float(np.mean(rows["w2"])), w2_se=se["w2"], w2_floor=float(np.mean(rows["w2_floor"])),
                               sliced=float(np.mean(rows["sliced"])), sliced_se=se["sliced"],
                               sliced_floor=float(np.mean(rows["sliced_floor"])))


@dataclass(frozen=True)
class FunctionalPriorFit:
    """The fitted prior (``prior``: ``bnn`` with its scales replaced) and the distance along the fit
    (``history``: W2 of each step's minibatch)."""

    prior: BNNPrior
    history: tuple[float, ...]


def fit_functional_prior(bnn: BNNPrior, gp: GPPrior, n_features: int = 1, steps: int = 1000, points: int = 32,
                         draws: int = 256, lr: float = 0.05, seed: int = 0) -> FunctionalPriorFit:
    """Fit ``bnn``'s per-layer weight and bias scales (Fixed values, the starting point) so that its functions
    match ``gp``'s (module docstring): Adam with learning rate ``lr`` on the log scales for ``steps`` steps, each
    on fresh ``points`` measurement points and ``draws`` functions per prior."""
    check_int("steps", steps, minimum=1)
    check_int("points", points, minimum=1)
    check_int("draws", draws, minimum=2)
    log_w, log_b = (t.clone().requires_grad_(True) for t in _log_scales(bnn))
    optimizer = torch.optim.Adam([log_w, log_b], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(steps):
        x = torch.rand(points, n_features, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            target = gp_functions(gp, x, draws, generator)
        loss = _assignment_w2(bnn_functions(bnn, log_w, log_b, x, draws, generator), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    fitted = dataclasses.replace(bnn, weight_std=tuple(Fixed(float(v)) for v in log_w.detach().exp()),
                                 bias_std=tuple(Fixed(float(v)) for v in log_b.detach().exp()))
    return FunctionalPriorFit(prior=fitted, history=tuple(history))
