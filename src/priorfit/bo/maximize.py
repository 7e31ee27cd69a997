"""Maximising an acquisition over the unit cube: Sobol candidates (and a cloud around the best points seen)
scored in batched forward passes, the best few refined by L-BFGS-B with gradients through the PFN, then mapped
to points the space holds (integers rounded) that are not already observed or pending."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy import optimize
from scipy.stats import qmc
from torch import Tensor

from priorfit.bo.space import Space

__all__ = ["maximize_acquisition", "SpaceExhausted", "DUPLICATE_TOLERANCE"]

#: Two unit-cube points closer than this in every coordinate count as the same point.
DUPLICATE_TOLERANCE = 1e-6


class SpaceExhausted(RuntimeError):
    """Every point of a finite (all-integer) space has been observed or is pending."""


def _is_new(u: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Which rows of ``u`` (`m x d`) differ from every row of ``taken`` (`k x d`)."""
    if taken.size == 0:
        return np.ones(len(u), dtype=bool)
    close = np.abs(u[:, None, :] - taken[None, :, :]).max(-1) <= DUPLICATE_TOLERANCE
    return ~close.any(1)


def _sobol(d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``n`` points of a scrambled Sobol sequence of a power-of-2 length (balanced, no warning)."""
    return qmc.Sobol(d, scramble=True, seed=rng).random_base2(max(int(np.ceil(np.log2(max(n, 1)))), 0))[:n]


def _scores(score: Callable[[Tensor], Tensor], u: np.ndarray, chunk: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(u), chunk):
            out.append(score(torch.as_tensor(u[start:start + chunk], dtype=torch.float64)).numpy())
    s = np.concatenate(out) if out else np.zeros(0)
    return np.where(np.isfinite(s), s, -np.inf)


def _refine(score: Callable[[Tensor], Tensor], starts: np.ndarray, maxiter: int, low: np.ndarray,
            high: np.ndarray) -> np.ndarray:
    """L-BFGS-B on the box [low, high] from every row of ``starts`` (`r x d`) at once, gradients by autograd through
    the PFN: the objective is the sum of the points' scores, which separates, so one batched forward pass per
    iteration serves every restart (BoTorch's ``gen_candidates_scipy`` does the same)."""
    r, d = starts.shape

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        x = torch.as_tensor(flat.reshape(r, d), dtype=torch.float64).requires_grad_(True)
        values = score(x)
        finite = torch.isfinite(values)
        total = torch.where(finite, values, torch.zeros_like(values)).sum()
        (grad,) = torch.autograd.grad(total, x)
        grad = torch.where(finite[:, None], grad, torch.zeros_like(grad)).nan_to_num(0.0, 0.0, 0.0)
        return -float(total.detach()), -grad.reshape(-1).numpy()

    bounds = [(float(lo), float(hi)) for lo, hi in zip(np.tile(low, r), np.tile(high, r))]
    result = optimize.minimize(objective, starts.reshape(-1), jac=True, method="L-BFGS-B", bounds=bounds,
                               options=dict(maxiter=maxiter))
    return np.clip(result.x.reshape(r, d), low, high)


def maximize_acquisition(score: Callable[[Tensor], Tensor], space: Space, taken: np.ndarray,
                         rng: np.random.Generator, *, centres: np.ndarray | None = None, n_candidates: int = 512,
                         n_restarts: int = 2, maxiter: int = 20, chunk: int = 1024,
                         box: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The unit-cube point (`d`) that maximises ``score`` (unit-cube points `m x d` -> scores `m`, differentiable)
    in ``box`` (``(low, high)``, default the whole cube) among the points the space holds, excluding ``taken``
    (`k x d`, observed and pending points).

    Candidates: ``n_candidates`` scrambled Sobol points in the box plus a quarter as many around ``centres`` (the
    best points seen; Gaussian steps of log-uniform size from 0.16% to 5% of the box per coordinate). The
    ``n_restarts`` best start L-BFGS-B (``maxiter`` iterations) in the box; the refined points and the best
    candidates, rounded to the space (those the rounding moved, and the refined ones, scored again), give the best
    new one. Raises :class:`SpaceExhausted` if the space holds no new point.
    """
    d = space.dim
    low, high = (np.zeros(d), np.ones(d)) if box is None else (np.asarray(box[0]), np.asarray(box[1]))
    sobol = low + _sobol(d, n_candidates, rng) * (high - low)
    pools = [sobol]
    if centres is not None and len(centres):
        k = max(n_candidates // 4, 1)
        picks = centres[rng.integers(len(centres), size=k)]
        steps = 0.05 * (high - low) * 10.0 ** -rng.uniform(0.0, 1.5, size=(k, 1))  # log-uniform, 0.16% to 5%
        pools.append(np.clip(picks + steps * rng.standard_normal((k, d)), low, high))
    candidates = np.concatenate(pools)
    scores = _scores(score, candidates, chunk)
    order = np.argsort(-scores)
    starts = candidates[order[:n_restarts]]
    starts = starts[np.isfinite(scores[order[:n_restarts]])]
    refined = _refine(score, starts, maxiter, low, high) if len(starts) else np.zeros((0, d))
    best = candidates[order[:64]]
    pool = space.round_unit(np.concatenate([refined, best]))
    # a candidate that rounding left where it was keeps its score; refined and moved points are scored again
    known = np.concatenate([np.full(len(refined), np.nan), scores[order[:64]]])
    known[len(refined):][np.any(np.abs(pool[len(refined):] - best) > 1e-12, axis=1)] = np.nan
    new = _is_new(pool, taken)
    pool, known = pool[new], known[new]
    if len(pool) == 0:  # every good candidate is already taken (a small integer space): any new point
        pool = space.round_unit(rng.random((4096, d)))
        pool = pool[_is_new(pool, taken)]
        if len(pool) == 0:
            raise SpaceExhausted("every point of the search space has been observed or is pending")
        known = np.full(len(pool), np.nan)
    unknown = np.isnan(known)
    if unknown.any():
        known[unknown] = _scores(score, pool[unknown], chunk)
    return pool[int(np.argmax(known))]
