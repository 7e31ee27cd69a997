"""The search space's map to the unit cube and back."""

from __future__ import annotations

import numpy as np
import pytest

from priorfit.bo.space import Integer, Real, Space


def test_real_integer_and_log_parameters_round_trip() -> None:
    space = Space((Real("a", -5.0, 10.0), Real("lr", 1e-4, 1e-1, log=True), Integer("layers", 1, 8),
                   Integer("trees", 10, 1000, log=True)))
    x = np.array([[2.5, 1e-3, 3.0, 100.0], [-5.0, 1e-1, 8.0, 10.0]])
    u = space.to_unit(x)
    assert u.shape == (2, 4) and (u >= 0).all() and (u <= 1).all()
    np.testing.assert_allclose(space.from_unit(u), x, rtol=1e-12)
    assert u[0, 1] == pytest.approx(1 / 3)  # log scale: 1e-3 is a third of the way from 1e-4 to 1e-1
    back = space.from_unit(np.array([[0.5, 0.5, 0.49, 0.5]]))[0]
    assert back[2] == round(0.5 + 0.49 * 8) and back[3] == round((9.5 * 1000.5) ** 0.5)


def test_every_integer_value_is_equally_likely_under_a_uniform_draw() -> None:
    space = Space((Integer("k", 0, 2), Integer("n", 1, 4, log=True)))
    x = space.from_unit(np.random.default_rng(0).random((30_000, 2)))
    np.testing.assert_allclose(np.bincount(x[:, 0].astype(int)) / 30_000, [1 / 3] * 3, atol=0.01)
    counts = np.bincount(x[:, 1].astype(int))[1:] / 30_000  # in log: each value's share is its cell's log-width
    want = np.diff(np.log([0.5, 1.5, 2.5, 3.5, 4.5])) / np.log(9)
    np.testing.assert_allclose(counts, want, atol=0.01)


def test_round_unit_lands_on_points_the_space_holds() -> None:
    space = Space((Integer("k", 0, 2), Real("x", 0.0, 1.0)))
    u = space.round_unit(np.array([[0.3, 0.37], [0.8, 0.0]]))
    np.testing.assert_allclose(u, [[1 / 6, 0.37], [5 / 6, 0.0]])  # k = 0 and 2, at their cells' centres
    assert space.size() == float("inf") and Space((Integer("k", 0, 2),)).size() == 3


@pytest.mark.parametrize("make, match", [
    (lambda: Real("a", 1.0, 1.0), "high must exceed low"),
    (lambda: Real("a", 0.0, 1.0, log=True), "log-scaled"),
    (lambda: Real("a", 0.0, float("inf")), "finite"),
    (lambda: Integer("a", 0.5, 3), "integers"),
    (lambda: Space((Real("a", 0, 1), Real("a", 0, 2))), "unique"),
    (lambda: Space.from_bounds([(0, 1, 2)]), "pairs"),
    (lambda: Space.from_bounds(3), "pairs"),
])
def test_bad_parameters_are_named(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_check_rejects_points_outside_the_space() -> None:
    space = Space((Real("a", 0.0, 1.0), Integer("k", 1, 3)))
    with pytest.raises(ValueError, match="'a'"):
        space.check([1.5, 2])
    with pytest.raises(ValueError, match="integer"):
        space.check([0.5, 2.5])
    with pytest.raises(ValueError, match="2 coordinates"):
        space.check([0.5])
