"""Every seed priorfit derives from a user's seed, in one place, so that no two streams can collide.

New streams take ``derive_seed(seed, *keys)``: NumPy's ``SeedSequence`` hashes the seed and the keys, so distinct
key tuples give independent seeds whatever their size. The fidelity protocol's dataset and example seeds keep
the arithmetic they were published with (stored exact references are tied to those datasets by fingerprint), and
each refuses the arguments for which that arithmetic would collide.
"""

from __future__ import annotations

import numpy as np

from priorfit.validation import check_int

__all__ = ["derive_seed", "dataset_seed", "example_seed"]


def derive_seed(seed: int, *keys: int) -> int:
    """A seed in [0, 2^63) for the stream named by ``keys`` (non-negative ints) under ``seed``."""
    entropy = [check_int("seed", seed, minimum=0)] + [check_int("key", k, minimum=0) for k in keys]
    low, high = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(high & 0x7FFF_FFFF) << 32 | int(low)


def dataset_seed(seed: int, n_features: int, n_context: int) -> int:
    """The seed of the fidelity protocol's datasets of cell (d, n): ``seed * 100_003 + 1000 d + n`` for n <= 512
    and d < 100 (every report so far), where it is one-to-one and misses every :func:`example_seed`; other cells
    get :func:`derive_seed`."""
    check_int("n_features", n_features, minimum=1)
    check_int("n_context", n_context, minimum=0)
    if n_context <= 512 and n_features < 100:
        return check_int("seed", seed, minimum=0) * 100_003 + 1_000 * n_features + n_context
    return derive_seed(seed, 1, n_features, n_context)


def example_seed(seed: int, index: int) -> int:
    """The seed of the report's ``index``-th example dataset: ``seed * 100_003 + 7_777 + index`` (index < 223, so
    that it stays clear of every cell's dataset seed)."""
    check_int("index", index, minimum=0, maximum=222)
    return check_int("seed", seed, minimum=0) * 100_003 + 7_777 + index
