"""The ask/tell optimiser and minimize on a tiny PFN: conventions, failures, duplicates, batches, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from priorfit.bo import Integer, Optimizer, Real, Space, SpaceExhausted, minimize  # noqa: F401
from priorfit.bo.surrogate import PFNSurrogate


def bowl(x: np.ndarray) -> float:
    return float(((x - 0.3) ** 2).sum())


def test_minimize_records_every_evaluation_and_returns_the_best(tiny_checkpoint) -> None:
    result = minimize(bowl, [(0.0, 1.0), (0.0, 1.0)], budget=10, seed=0, model=tiny_checkpoint, n_candidates=64)
    values = np.array([t.y for t in result.history])
    assert result.n_evaluations == 10 and result.n_failures == 0
    assert result.fun == values.min() and bowl(result.x) == result.fun
    np.testing.assert_array_equal(result.best_so_far(), np.minimum.accumulate(values))
    assert all(t.suggest_seconds >= 0 for t in result.history)
    again = minimize(bowl, [(0.0, 1.0), (0.0, 1.0)], budget=10, seed=0, model=tiny_checkpoint, n_candidates=64)
    np.testing.assert_array_equal([t.x for t in again.history], [t.x for t in result.history])  # seeded


def test_maximizing_f_is_minimizing_minus_f(tiny_checkpoint) -> None:
    """The same points, in the same order (the trust region's rule included), and each value in its own sign."""
    up = minimize(lambda x: -bowl(x), [(0.0, 1.0), (0.0, 1.0)], budget=12, seed=1, maximize=True,
                  model=tiny_checkpoint, n_candidates=64)
    down = minimize(bowl, [(0.0, 1.0), (0.0, 1.0)], budget=12, seed=1, model=tiny_checkpoint, n_candidates=64)
    np.testing.assert_array_equal([t.x for t in up.history], [t.x for t in down.history])
    assert up.fun == -down.fun == max(t.y for t in up.history)
    np.testing.assert_array_equal(up.best_so_far(), -down.best_so_far())


def test_failures_are_recorded_and_never_suggested_again(tiny_checkpoint) -> None:
    def fragile(x: np.ndarray) -> float:
        if x[0] > 0.6:
            raise RuntimeError("diverged")
        return math.nan if x[0] < 0.1 else bowl(x)

    result = minimize(fragile, [(0.0, 1.0), (0.0, 1.0)], budget=12, seed=0, model=tiny_checkpoint,
                      n_candidates=64)
    failed = [t for t in result.history if not t.ok]
    assert result.n_failures == len(failed) > 0
    assert {t.error.split(":")[0] for t in failed} <= {"RuntimeError", "non-finite value nan"}
    assert all(math.isnan(t.y) for t in failed)
    points = np.array([t.x for t in result.history])
    assert len(np.unique(points.round(12), axis=0)) == len(points)
    assert result.fun == min(t.y for t in result.history if t.ok)


def test_integer_and_log_parameters_and_an_exhausted_space(tiny_checkpoint) -> None:
    space = Space((Integer("k", 0, 2), Real("lr", 1e-3, 1.0, log=True)))
    result = minimize(lambda x: (x[0] - 1) ** 2 + math.log10(x[1]) ** 2, space, budget=8, seed=0,
                      model=tiny_checkpoint, n_candidates=64)
    x = np.array([t.x for t in result.history])
    assert set(x[:, 0]) <= {0.0, 1.0, 2.0} and (x[:, 1] >= 1e-3).all() and (x[:, 1] <= 1.0).all()
    tiny = Space((Integer("a", 0, 1), Integer("b", 0, 1)))
    result = minimize(lambda x: float(x.sum()), tiny, budget=10, seed=0, model=tiny_checkpoint, n_candidates=16)
    assert result.n_evaluations == 4 and result.fun == 0.0  # four points, each once, then it stops
    opt = Optimizer(tiny, model=tiny_checkpoint, seed=0)
    for _ in range(4):
        opt.tell(x := opt.ask(), float(x.sum()))
    with pytest.raises(SpaceExhausted):
        opt.ask()


def test_a_batch_and_pending_points_are_distinct(tiny_checkpoint) -> None:
    opt = Optimizer([(0.0, 1.0), (0.0, 1.0)], model=tiny_checkpoint, seed=0, n_initial=3, n_candidates=64,
                    n_fantasies=8)
    for x in opt.ask(3):
        opt.tell(x, bowl(x))
    batch = opt.ask(3)  # from the surrogate: the second and third average over fantasies of the earlier ones
    assert batch.shape == (3, 2) and len(np.unique(batch.round(9), axis=0)) == 3
    extra = opt.ask()  # three points still pending
    assert not any(np.allclose(extra, b) for b in batch)
    for x in (*batch, extra):
        opt.tell(x, bowl(x))
    assert len(opt.history) == 7 and opt._pending == []


def test_a_failed_batch_leaves_nothing_pending_and_points_can_be_forgotten(tiny_checkpoint) -> None:
    opt = Optimizer(Space((Integer("k", 0, 2),)), model=tiny_checkpoint, seed=0)
    with pytest.raises(SpaceExhausted):
        opt.ask(5)
    assert opt._pending == []
    x = opt.ask()
    opt.tell(np.round(x, 6), 1.0)  # a point that went through a file comes back as the same point
    assert opt._pending == []
    y = opt.ask()
    opt.forget(y)
    assert opt._pending == []
    with pytest.raises(ValueError, match="not a pending point"):
        opt.forget(y)


def test_fantasies_condition_on_the_pending_outcomes() -> None:
    """With the shipped model: at a pending point, each fantasy's predictive sits at that fantasy's own draw."""
    rng = np.random.default_rng(2)
    X = rng.random((10, 1))
    surrogate = PFNSurrogate(None, X, np.sin(5 * X[:, 0]))
    point = torch.tensor([[0.5]], dtype=torch.float64)
    draws, fantasies = surrogate.fantasize(point, 200, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = fantasies.logits(point)[:, 0]
    loc, scale = fantasies.target_affine()
    medians = loc[:, 0] + scale[:, 0] * surrogate.bars.icdf(logits.double(), 0.5)
    assert np.corrcoef(draws[:, 0].numpy(), medians.numpy())[0, 1] > 0.9


def test_repeated_points_are_data(tiny_checkpoint) -> None:
    opt = Optimizer([(0.0, 1.0)], model=tiny_checkpoint, seed=0)
    for y in (1.0, 1.2, 0.9):
        opt.tell([0.5], y)
    opt.tell([0.1], 2.0)
    assert opt.best()[1] == 0.9 and len(opt._observations()[0]) == 4


@pytest.mark.parametrize("call, match", [
    (lambda o: o.tell([0.5, 0.5], 1.0), "coordinates"),
    (lambda o: o.tell([2.0], 1.0), "must lie in"),
    (lambda o: o.tell([0.5], "high"), "y must be a number"),
    (lambda o: o.ask(0), "positive integer"),
])
def test_bad_calls_are_named(tiny_checkpoint, call, match) -> None:
    opt = Optimizer([(0.0, 1.0)], model=tiny_checkpoint)
    with pytest.raises(ValueError, match=match):
        call(opt)


def test_bad_settings_are_named(tiny_checkpoint) -> None:
    with pytest.raises(ValueError, match="at most 2"):
        Optimizer([(0, 1)] * 3, model=tiny_checkpoint)
    with pytest.raises(ValueError, match="on_failure"):
        Optimizer([(0, 1)], model=tiny_checkpoint, on_failure="skip")
    with pytest.raises(ValueError, match="budget=30 exceeds"):
        minimize(bowl, [(0, 1)], budget=30, model=tiny_checkpoint)


def test_precision_is_checked(tiny_checkpoint) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        Optimizer([(0, 1)], model=tiny_checkpoint, precision="float16")
    assert Optimizer([(0, 1)], model=tiny_checkpoint).precision == "float32"
    assert Optimizer([(0, 1)], model=tiny_checkpoint, precision="bfloat16").precision == "bfloat16"


@pytest.mark.parametrize("space", [Space((Real("a", 0.0, 1.0), Real("b", 0.0, 1.0))),
                                   Space((Integer("a", 0, 4), Real("b", 0.0, 1.0)))])
def test_the_acquisition_maximiser_returns_the_best_scored_point_the_space_holds(space) -> None:
    """The returned point is the space's (integers rounded) and is the best of every point the maximiser scored,
    judged by its score where it lies: the score peaks at a = 0.41, inside the integer cell whose centre (0.5)
    scores low, so a candidate near the peak keeps its pre-rounding score only if rounding is ignored."""
    from priorfit.bo.maximize import maximize_acquisition

    scored = []

    def score(x: torch.Tensor) -> torch.Tensor:
        scored.append(x.detach().numpy().copy())
        a, b = x[:, 0], x[:, 1]
        return torch.exp(-((a - 0.41) / 0.02) ** 2) - 0.5 * (a - 0.3) ** 2 - (b - 0.6) ** 2

    x = maximize_acquisition(score, space, np.zeros((0, 2)), np.random.default_rng(0),
                             centres=np.array([[0.4, 0.6]]), n_candidates=256, n_restarts=0)
    calls = [len(c) for c in scored]
    assert np.allclose(space.round_unit(x[None])[0], x)
    held = np.concatenate(scored)
    held = held[np.all(np.abs(space.round_unit(held) - held) < 1e-12, axis=1)]  # scored where they lie
    values = score(torch.as_tensor(held)).numpy()
    assert float(score(torch.as_tensor(x[None]))[0]) >= values.max() - 1e-12
    if not any(isinstance(p, Integer) for p in space.parameters):
        assert abs(x[0] - 0.41) < 0.02  # the peak
        assert calls == [256 + 64]  # continuous: no candidate moved, none scored twice
    else:
        assert x[0] == pytest.approx(0.3)  # the cell of a = 1, not the cell of the peak (a = 2, centre 0.5)
        assert calls[0] == 256 + 64 and len(calls) == 2 and 0 < calls[1] <= 64  # the moved ones, again


def test_joint_samples_start_from_the_one_point_predictive(tiny_checkpoint) -> None:
    """The first point of a joint sample is drawn from the one-point predictive itself (a KS test), and every
    later one from the PFN conditioned on the draws before it, which moves with them."""
    from scipy import stats

    rng = np.random.default_rng(0)
    X, y = rng.random((8, 2)), rng.standard_normal(8)
    surrogate = PFNSurrogate(tiny_checkpoint, X, y)
    points = torch.tensor([[0.2, 0.3], [0.25, 0.3]], dtype=torch.float64)
    draws, fantasies = surrogate.fantasize(points, 4000, torch.Generator().manual_seed(0))
    predictive = surrogate.predictive(points[:1].numpy())
    assert stats.kstest(draws[:, 0].numpy(), lambda v: predictive.cdf(np.asarray(v)[:, None])[:, 0]).pvalue > 1e-3
    # conditioning on a high first draw moves the second point's predictive up (nearby points correlate)
    order = torch.argsort(draws[:, 0])
    assert draws[order[-500:], 1].mean() > draws[order[:500], 1].mean()
    assert fantasies.logits(points).shape[:2] == (4000, 2)


@pytest.mark.parametrize("acquisition", ["logei", "ei", "pi", "quantile", "thompson"])
def test_every_acquisition_runs_to_distinct_points(tiny_checkpoint, acquisition) -> None:
    result = minimize(bowl, [(0.0, 1.0), (0.0, 1.0)], budget=7, seed=0, model=tiny_checkpoint,
                      acquisition=acquisition, n_candidates=32, n_thompson=16)
    points = np.array([t.x for t in result.history])
    assert result.n_evaluations == 7 and len(np.unique(points.round(12), axis=0)) == 7


def test_thompson_batch_conditions_on_pending_points(tiny_checkpoint) -> None:
    opt = Optimizer([(0.0, 1.0)], model=tiny_checkpoint, seed=0, acquisition="thompson", n_thompson=16)
    for x in (0.1, 0.5, 0.9):
        opt.tell([x], bowl(np.array([x])))
    batch = opt.ask(3)
    assert len(np.unique(batch.round(12))) == 3


def test_joint_samples_of_the_shipped_model_are_consistent() -> None:
    """Drawn by the chain rule, the second point's marginal is the shipped model's one-point predictive there, as
    it must be for an exact posterior (the PFN is trained to be one; measured: 0.015 at most between the CDFs)."""
    rng = np.random.default_rng(1)
    X = rng.random((12, 2))
    y = np.sin(6 * X[:, 0]) + X[:, 1] + 0.1 * rng.standard_normal(12)
    surrogate = PFNSurrogate(None, X, y)
    points = np.array([[0.3, 0.4], [0.6, 0.7]])
    draws = surrogate.sample_joint(points, 3000, torch.Generator().manual_seed(0))
    predictive = surrogate.predictive(points[1:])
    levels = np.linspace(0.05, 0.95, 19)
    empirical = np.quantile(draws[:, 1], levels)
    assert np.abs(predictive.cdf(empirical[:, None])[:, 0] - levels).max() < 0.04


def test_the_shipped_bo_model_is_the_default_and_carries_its_fidelity() -> None:
    from priorfit.models import load_model, shipped_models

    assert "bo" in shipped_models()
    ckpt = load_model("bo")
    assert ckpt.model_config.max_features == 8 and ckpt.model_config.invariant
    cells = ckpt.metadata["fidelity"]["cells"]
    assert {(c["n_features"], c["n_context"]) for c in cells} == {(d, n) for d in (1, 2, 4, 8) for n in (8, 32, 128)}
    assert all("marginal" in c["references"] for c in cells)
    opt = Optimizer([(-5.0, 10.0), (0.0, 15.0)], seed=0)
    assert opt.checkpoint is ckpt
    result = minimize(lambda x: float((x[0] - 2.0) ** 2 + (x[1] - 3.0) ** 2), [(-5.0, 10.0), (0.0, 15.0)],
                      budget=16, seed=0)
    # a quadratic bowl: the surrogate's 12 suggestions improve on the 4 design points by far
    design_best = min(t.y for t in result.history[:4])
    assert result.fun < 0.1 * design_best
