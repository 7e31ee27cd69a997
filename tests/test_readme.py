"""The README's two quick starts run as printed, on the shipped models: a user's first lines must not fail."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start(first_call: str) -> str:
    """The one ```python block of the README that makes this call."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if first_call in b]
    assert len(blocks) == 1, f"the README should hold one python block calling {first_call}, found {len(blocks)}"
    return blocks[0]


def test_the_regression_quick_start_runs():
    namespace: dict = {}
    exec(quick_start("PFNRegressor().fit("), namespace)
    dist, X_new = namespace["dist"], namespace["X_new"]
    median = namespace["reg"].predict(X_new)
    assert median.shape == (len(X_new),) and np.isfinite(median).all()
    lower, upper = np.asarray(dist.quantile([0.05, 0.95])).T  # (queries, levels)
    assert (lower < median).all() and (median < upper).all()


def test_the_classification_quick_start_runs():
    namespace: dict = {}
    exec(quick_start("PFNClassifier().fit("), namespace)
    clf, X = namespace["clf"], namespace["X"]
    assert list(clf.classes_) == ["benign", "malignant"]
    proba = clf.predict_proba(X[200:205])
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.predict(X[200:205])) <= {"benign", "malignant"}

