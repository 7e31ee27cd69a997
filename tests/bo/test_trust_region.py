"""The trust region's rules (TuRBO's), and the optimiser searching inside it."""

from __future__ import annotations

import numpy as np
import pytest

from priorfit.bo import Optimizer
from priorfit.bo.trust_region import TrustRegion


def test_grows_after_successes_shrinks_after_failures_and_restarts() -> None:
    region = TrustRegion(dim=2)
    assert region.failure_tolerance == 4 and region.min_context == 8 and region.length == 0.8
    for _ in range(3):
        region.update(True)
    assert region.length == 1.6
    for _ in range(3):
        region.update(True)
    assert region.length == 1.6  # capped at length_max
    halvings = 0
    while not region.restarted:
        for _ in range(4):
            region.update(False)
        halvings += 1
    assert region.restarts == 1 and region.length == 0.8 and halvings == 8  # 1.6 / 2^8 < 2^-7
    region.update(False)
    assert not region.restarted
    assert TrustRegion(dim=6).failure_tolerance == 6
    with pytest.raises(ValueError, match="length_min"):
        TrustRegion(dim=1, length_init=2.0)


def test_box_and_context() -> None:
    region = TrustRegion(dim=2, min_context=3)
    region.length = 0.2
    low, high = region.box(np.array([0.05, 0.5]))
    np.testing.assert_allclose(low, [0.0, 0.4])
    np.testing.assert_allclose(high, [0.15, 0.6])
    x = np.array([[0.5, 0.5], [0.1, 0.5], [0.9, 0.9], [0.05, 0.55], [0.0, 0.0], [0.12, 0.6]])
    assert sorted(region.context(x, np.array([0.05, 0.5]))) == [1, 3, 5]  # within 0.15 in the max norm
    region.length = 0.02
    assert sorted(region.context(x, np.array([0.05, 0.5]))) == [1, 3, 5]  # too few inside: the 3 nearest


def test_suggestions_stay_in_the_region_around_the_best_point(tiny_checkpoint) -> None:
    opt = Optimizer([(0.0, 1.0), (0.0, 1.0)], model=tiny_checkpoint, seed=0, n_candidates=64)
    rng = np.random.default_rng(0)
    for x in rng.random((12, 2)):
        opt.tell(x, float(((x - 0.3) ** 2).sum()))
    opt.trust_region.length = 0.1
    best = opt.best()[0]
    for _ in range(3):
        x = opt.ask()
        assert np.abs(x - best).max() <= 0.05 + 1e-9
        opt.tell(x, float(((x - 0.3) ** 2).sum()))
        best = opt.best()[0]
