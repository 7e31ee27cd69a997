"""Bayesian optimisation with a PFN surrogate: an ask/tell :class:`Optimizer` and :func:`minimize`.

Each suggestion conditions the PFN on the observations in one forward pass (no hyperparameters to refit) and
maximises an acquisition (:mod:`priorfit.bo.acquisition`) over the unit cube (:mod:`priorfit.bo.maximize`).

Conventions, stated once:

- The first ``n_initial`` suggestions (default ``2 d``, at least 2) are a scrambled Sobol design.
- The optimiser minimises; ``maximize=True`` negates the objective inside and reports it in its own sign.
- A failed evaluation (``tell`` with NaN, inf or None; in :func:`minimize`, an exception or a non-finite value)
  is recorded with its reason. ``on_failure="worst"`` (default) shows it to the surrogate as the worst value seen
  so far, so the search moves away from regions that fail (as SMAC does); ``"ignore"`` leaves it out. A failed
  point is never suggested again.
- Duplicates: no suggestion repeats an observed or pending point (after integer rounding); telling the same point
  twice is allowed (the PFN's prior has observation noise, so repeats are data). A finite space that is used up
  raises :class:`~priorfit.bo.maximize.SpaceExhausted`.
- Points asked but not told are pending: later suggestions average the acquisition over the PFN's joint samples
  of their outcomes (fantasies), which is also how ``ask(n)`` builds a batch.
- Until there are two distinct successful values to condition on, suggestions stay in the Sobol design.
- After the design, a trust region (:mod:`priorfit.bo.trust_region`) decides which observations the PFN is
  conditioned on (those near the best point) and where the acquisition is maximised (a box around it whose side
  adapts to successes and failures); ``trust_region=False`` conditions on everything and searches everywhere.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.stats import qmc

from priorfit.bo.acquisition import Acquisition
from priorfit.bo.maximize import DUPLICATE_TOLERANCE, SpaceExhausted, _is_new, _sobol, maximize_acquisition
from priorfit.bo.space import Space
from priorfit.bo.surrogate import PFNSurrogate
from priorfit.bo.trust_region import TrustRegion
from priorfit.model.precision import check_precision
from priorfit.models import load_model

__all__ = ["Optimizer", "minimize", "Trial", "OptimizeResult", "SpaceExhausted"]

ON_FAILURE = ("worst", "ignore")


@dataclass(frozen=True)
class Trial:
    """One evaluation: the point (user units), its value (NaN if it failed), the reason for a failure, and the
    seconds spent suggesting it and evaluating it (NaN where the optimiser did not time it)."""

    x: np.ndarray
    y: float
    error: str | None = None
    suggest_seconds: float = math.nan
    evaluate_seconds: float = math.nan

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class OptimizeResult:
    """What :func:`minimize` found: the best point and value, and every trial in order."""

    x: np.ndarray
    fun: float
    history: list[Trial] = field(repr=False)
    space: Space = field(repr=False)
    maximize: bool = False

    @property
    def n_evaluations(self) -> int:
        return len(self.history)

    @property
    def n_failures(self) -> int:
        return sum(not t.ok for t in self.history)

    def best_so_far(self) -> np.ndarray:
        """The best value after each evaluation, in the run's direction (NaN until the first success)."""
        y = np.array([t.y if t.ok else (-np.inf if self.maximize else np.inf) for t in self.history])
        best = np.maximum.accumulate(y) if self.maximize else np.minimum.accumulate(y)
        return np.where(np.isfinite(best), best, np.nan)


class Optimizer:
    """Ask/tell Bayesian optimisation over ``space`` with a PFN surrogate.

    Args:
        space: a :class:`Space`, or bounds ``[(low, high), ...]`` for real parameters.
        acquisition: "quantile" (default), "logei", "ei", "pi" or "thompson" (:mod:`priorfit.bo.acquisition`).
        model: the PFN, a shipped model's name or a checkpoint path (default "bo", the model trained for BO;
            None: the regression default, ``invariant_default``).
        maximize: maximise the objective instead of minimising it.
        n_initial: Sobol points before the surrogate takes over (default ``max(2, 2 d)``).
        seed: seeds the Sobol design and the acquisition optimiser's candidates.
        on_failure: "worst" or "ignore" (module docstring).
        n_candidates, n_restarts, refine_iterations: the acquisition optimiser's Sobol candidates, L-BFGS-B
            restarts and iterations per restart (more of each searches harder, and takes longer). The defaults
            (the quantile acquisition, 64 candidates, no L-BFGS-B) were chosen by ``benchmarks/bo_defaults.py``
            on functions and seeds the benchmark does not use: within 0.05 s per suggestion on one CPU thread,
            the fastest setting whose mean regret is within one standard error of the best (docs/bo.md).
        n_fantasies: joint samples of pending outcomes a batch or pending point averages over.
        level: the quantile acquisition's level.
        n_thompson: the candidates one Thompson sample is drawn over (each costs one context encoding).
        trust_region: condition on the observations near the best point and search a box around it, whose size
            adapts (:mod:`priorfit.bo.trust_region`; the PFN resolves values only to a fraction of its context's
            spread). False: every observation, the whole space.
        precision: the PFN's arithmetic, "float32" (default) or "bfloat16" (:class:`~priorfit.PFNRegressor`'s
            option; faster on a CPU with bfloat16 instructions, no better in regret on the dev functions).

    Example:
        >>> opt = Optimizer([(-5.0, 10.0), (0.0, 15.0)], seed=0)
        >>> x = opt.ask(); opt.tell(x, float(x.sum()))
    """

    def __init__(self, space: Space | Sequence[Sequence[float]], *, acquisition: str = "quantile", model="bo",
                 maximize: bool = False, n_initial: int | None = None, seed: int = 0, on_failure: str = "worst",
                 n_candidates: int = 64, n_restarts: int = 0, n_fantasies: int = 32, level: float = 0.1,
                 n_thompson: int = 64, trust_region: bool = True, refine_iterations: int = 20,
                 precision: str = "float32") -> None:
        self.space = space if isinstance(space, Space) else Space.from_bounds(space)
        self.acquisition = Acquisition(acquisition, level)
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {ON_FAILURE}, got {on_failure!r}")
        for name, value, low in (("n_candidates", n_candidates, 1), ("n_restarts", n_restarts, 0),
                                 ("n_fantasies", n_fantasies, 1), ("n_thompson", n_thompson, 4),
                                 ("refine_iterations", refine_iterations, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if n_initial is None:
            n_initial = max(2, 2 * self.space.dim)
        if isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1:
            raise ValueError(f"n_initial must be a positive integer, got {n_initial!r}")
        self.precision = check_precision("precision", precision)
        self.model = model
        self.checkpoint = load_model(model)
        if self.space.dim > self.checkpoint.model_config.max_features:
            raise ValueError(f"the space has {self.space.dim} parameters, but the model was trained for at most "
                             f"{self.checkpoint.model_config.max_features}")
        self.maximize = bool(maximize)
        self.n_initial = n_initial
        self.on_failure = on_failure
        self.n_candidates, self.n_restarts, self.n_fantasies = n_candidates, n_restarts, n_fantasies
        self.n_thompson = n_thompson
        self.refine_iterations = refine_iterations
        self.trust_region = TrustRegion(self.space.dim) if trust_region else None
        self.rng = np.random.default_rng(seed)
        self.torch_generator = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
        self._design = qmc.Sobol(self.space.dim, scramble=True, seed=self.rng)
        self.history: list[Trial] = []
        self._pending: list[np.ndarray] = []  # unit-cube points asked and not yet told
        self._suggest_seconds: dict[bytes, float] = {}

    # -- what the optimiser knows --------------------------------------------------------------------------------
    @property
    def max_observations(self) -> int | None:
        """The most observations the model can condition on (its training contexts' largest size)."""
        return self.checkpoint.max_context

    def _sign(self) -> float:
        return -1.0 if self.maximize else 1.0

    def best(self) -> tuple[np.ndarray, float] | None:
        """The best successful trial's point and value (in the objective's own sign), or None."""
        ok = [t for t in self.history if t.ok]
        if not ok:
            return None
        pick = (max if self.maximize else min)(ok, key=lambda t: t.y)
        return pick.x, pick.y

    def _observations(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit-cube points and minimised values the surrogate conditions on (failures per ``on_failure``)."""
        ok = [t for t in self.history if t.ok]
        if not ok:
            return np.zeros((0, self.space.dim)), np.zeros(0)
        worst = max(self._sign() * t.y for t in ok)
        rows = [(t, self._sign() * t.y) for t in ok]
        if self.on_failure == "worst":
            rows += [(t, worst) for t in self.history if not t.ok]
        x = self.space.to_unit(np.array([t.x for t, _ in rows]))
        return x, np.array([v for _, v in rows])

    def _taken(self) -> np.ndarray:
        d = self.space.dim
        told = self.space.to_unit(np.array([t.x for t in self.history])) if self.history else np.zeros((0, d))
        return np.concatenate([told, np.array(self._pending).reshape(-1, d)])

    # -- ask and tell -------------------------------------------------------------------------------------------
    def ask(self, n: int | None = None) -> np.ndarray:
        """The next point to evaluate (`d`, user units), or ``n`` points (`n x d`) to evaluate in parallel."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"n must be a positive integer or None, got {n!r}")
        pending = len(self._pending)
        try:
            points = [self._ask_one() for _ in range(1 if n is None else n)]
        except Exception:
            del self._pending[pending:]  # a batch that fails part-way leaves nothing pending
            raise
        return points[0] if n is None else np.stack(points)

    def forget(self, x) -> None:
        """Stop treating the pending point ``x`` as pending (its evaluation was abandoned, not failed)."""
        u = self.space.to_unit(self.space.check(x))[0]
        i = self._pending_index(u)
        if i is None:
            raise ValueError(f"x={np.asarray(x).tolist()} is not a pending point")
        del self._pending[i]

    def _pending_index(self, u: np.ndarray) -> int | None:
        """The pending point nearest ``u`` (unit cube), if it is the same point (within the duplicate tolerance)."""
        if not self._pending:
            return None
        distance = np.abs(np.array(self._pending) - u).max(1)
        i = int(np.argmin(distance))
        return i if distance[i] <= DUPLICATE_TOLERANCE else None

    def _ask_one(self) -> np.ndarray:
        start = time.perf_counter()
        x_obs, y_obs = self._observations()
        limit = self.max_observations
        if limit is not None and len(x_obs) + len(self._pending) >= limit:
            raise ValueError(f"the model conditions on at most {limit} observations; this optimiser already has "
                             f"{len(x_obs)} and {len(self._pending)} pending (use a model trained on larger "
                             f"contexts, or start a new optimiser)")
        taken = self._taken()
        n_told = len(self.history) + len(self._pending)
        if n_told < self.n_initial or len(np.unique(y_obs)) < 2:
            u = self._from_design(taken)
        else:
            u = self._from_surrogate(x_obs, y_obs, taken)
        self._pending.append(u)
        x = self.space.from_unit(u[None])[0]
        self._suggest_seconds[x.tobytes()] = time.perf_counter() - start
        return x

    def _from_design(self, taken: np.ndarray) -> np.ndarray:
        for _ in range(64):
            u = self.space.round_unit(self._design.random(1))
            if _is_new(u, taken)[0]:
                return u[0]
        pool = self.space.round_unit(self.rng.random((4096, self.space.dim)))
        pool = pool[_is_new(pool, taken)]
        if len(pool) == 0:
            raise SpaceExhausted("every point of the search space has been observed or is pending")
        return pool[0]

    def _thompson(self, surrogate: PFNSurrogate, x_obs: np.ndarray, y_obs: np.ndarray, taken: np.ndarray,
                  box: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        """The minimiser of one joint posterior sample over ``n_thompson`` candidates (Sobol points, and points
        near the best observations), drawn point by point by the PFN conditioned on the draws before (pending
        points first, so the sample is conditioned on their fantasised outcomes too)."""
        d = self.space.dim
        low, high = (np.zeros(d), np.ones(d)) if box is None else box
        k = self.n_thompson // 4
        centres = x_obs[np.argsort(y_obs)[:5]]
        near = centres[self.rng.integers(len(centres), size=k)] + 0.02 * (high - low) * self.rng.standard_normal(
            (k, d))
        sobol = low + _sobol(d, self.n_thompson - k, self.rng) * (high - low)
        pool = np.concatenate([sobol, np.clip(near, low, high)])
        pool = self.space.round_unit(pool)
        pool = np.unique(pool[_is_new(pool, taken)], axis=0)
        if len(pool) == 0:
            return self._from_design(taken)
        pending = np.array(self._pending).reshape(-1, d)
        draw = surrogate.sample_joint(np.concatenate([pending, pool]), 1, self.torch_generator)[0]
        return pool[int(np.argmin(draw[len(pending):]))]

    def _from_surrogate(self, x_obs: np.ndarray, y_obs: np.ndarray, taken: np.ndarray) -> np.ndarray:
        box = None
        region = self.trust_region
        if region is not None and not region.restarted:
            centre = x_obs[int(np.argmin(y_obs))]
            box = region.box(centre)
            keep = region.context(x_obs, centre)
            if len(np.unique(y_obs[keep])) >= 2:
                x_obs, y_obs = x_obs[keep], y_obs[keep]
            else:
                box = None
        surrogate = PFNSurrogate(self.checkpoint, x_obs, y_obs, self.precision)  # the model checked in __init__
        if self.acquisition.name == "thompson":
            return self._thompson(surrogate, x_obs, y_obs, taken, box)
        acq, bars = self.acquisition, surrogate.bars
        if self._pending:
            draws, fantasies = surrogate.fantasize(torch.as_tensor(np.array(self._pending)), self.n_fantasies,
                                                   self.torch_generator)
            best = torch.minimum(draws.min(1).values, torch.tensor(y_obs.min(), dtype=torch.float64))  # S
            loc, scale = fantasies.target_affine()  # S x 1 each

            def score(x: torch.Tensor) -> torch.Tensor:
                logits = fantasies.logits(x)  # S x m x K
                return acq.average(acq.score(bars, logits, loc, scale, best[:, None]), dim=0)
        else:
            loc, scale = surrogate.target_affine
            best = float(y_obs.min())

            def score(x: torch.Tensor) -> torch.Tensor:
                return acq.score(bars, surrogate.logits(x), loc, scale, best)

        order = np.argsort(y_obs)[:5]
        n_candidates = self.n_candidates if not self._pending else max(self.n_candidates // 4, 16)
        return maximize_acquisition(score, self.space, taken, self.rng, centres=x_obs[order],
                                    n_candidates=n_candidates, n_restarts=self.n_restarts, box=box,
                                    maxiter=self.refine_iterations)

    def tell(self, x, y, error: str | None = None, evaluate_seconds: float = math.nan) -> None:
        """Record the value ``y`` at ``x`` (user units). A NaN, infinite or None ``y``, or an ``error`` message,
        records a failure."""
        xs = self.space.check(x)
        if xs.shape[0] != 1:
            raise ValueError(f"tell takes one point at a time, got {xs.shape[0]}")
        if y is None:
            value = math.nan
        else:
            try:
                value = float(y)
            except (TypeError, ValueError):
                raise ValueError(f"y must be a number, NaN or None, got {y!r}") from None
        if error is None and not math.isfinite(value):
            error = f"non-finite value {value!r}" if y is not None else "no value"
        i = self._pending_index(self.space.to_unit(xs)[0])
        if i is not None:
            del self._pending[i]
        if self.trust_region is not None and len(self.history) >= self.n_initial:
            best = self.best()
            improved = error is None and (best is None or self._sign() * value < self._sign() * best[1]
                                          - 1e-3 * abs(best[1]))
            self.trust_region.update(improved)
        seconds = self._suggest_seconds.pop(xs[0].tobytes(), math.nan)
        self.history.append(Trial(xs[0], value if error is None else math.nan, error, seconds,
                                  float(evaluate_seconds)))


def minimize(fun: Callable[[np.ndarray], float], bounds: Space | Sequence[Sequence[float]], budget: int, *,
             seed: int = 0, maximize: bool = False, callback: Callable[[Trial, Optimizer], None] | None = None,
             **optimizer_options) -> OptimizeResult:
    """Minimise (or, with ``maximize=True``, maximise) ``fun`` over ``bounds`` in ``budget`` evaluations.

    ``fun`` takes a point (a float array of shape ``(d,)``, user units) and returns a float; an exception it
    raises (other than ``KeyboardInterrupt``) or a non-finite value is recorded as a failed trial and the search
    goes on. ``callback(trial, optimizer)`` runs after each evaluation. Other keywords go to :class:`Optimizer`.
    Stops early only if a finite space is used up.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    opt = Optimizer(bounds, seed=seed, maximize=maximize, **optimizer_options)
    limit = opt.max_observations
    if limit is not None and budget > limit:
        raise ValueError(f"budget={budget} exceeds the {limit} observations the model can condition on")
    for _ in range(budget):
        try:
            x = opt.ask()
        except SpaceExhausted:
            break
        start = time.perf_counter()
        error, value = None, math.nan
        try:
            value = float(fun(x.copy()))
        except Exception as err:  # noqa: BLE001 (a failed evaluation is data, not a crash)
            error = f"{type(err).__name__}: {err}"
        opt.tell(x, value, error=error, evaluate_seconds=time.perf_counter() - start)
        if callback is not None:
            callback(opt.history[-1], opt)
    best = opt.best()
    if best is None:
        return OptimizeResult(np.full(opt.space.dim, np.nan), math.nan, opt.history, opt.space, opt.maximize)
    return OptimizeResult(best[0], best[1], opt.history, opt.space, opt.maximize)
