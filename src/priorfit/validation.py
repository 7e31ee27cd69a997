"""Argument checks shared by every module: each error names the argument, what was expected and what came."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_int", "check_float"]


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (bools are refused), or a ValueError naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            expected = f"an int in {minimum}..{maximum}"
        elif minimum is not None:
            expected = f"an int >= {minimum}"
        elif maximum is not None:
            expected = f"an int <= {maximum}"
        else:
            expected = "an int"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_float(name: str, value: object, minimum: float | None = None, *, strict: bool = False,
                maximum: float | None = None) -> float:
    """``value`` as a finite float, >= ``minimum`` (> with ``strict``) and <= ``maximum``, or a ValueError naming
    ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum}"
        bound += "" if maximum is None else f"{' and' if bound else ''} <= {maximum}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)
