"""benchmarks/compare_real.py: the figures it prints are arithmetic on the two files, and files that cannot be
compared are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare_real  # noqa: E402


def results(losses: dict, best_other: float = 0.5, **fields) -> dict:
    cells = [dict(dataset=name, n=n, pfn_minus_best_other=loss - best_other,
                  methods={"pfn": {"log_loss": loss}, "logistic": {"log_loss": best_other}})
             for (name, n), loss in losses.items()]
    return dict(cells=cells, summary={"pfn_best": sum(c["pfn_minus_best_other"] < 0 for c in cells),
                                      "pfn_pooled_ece": 0.02}, splits=20, group="tuned", ensemble=2, **fields)


def test_prints_each_files_figures_and_the_largest_rise():
    candidate = results({("iris", 32): 0.49, ("crabs", 32): 0.56})
    shipped = results({("iris", 32): 0.55, ("crabs", 32): 0.52})
    text = compare_real.compare(candidate, shipped)
    assert "candidate (k = 2): mean excess +0.02500, within 0.02 in 1 of 2, best in 1" in text
    assert "shipped (k = 2): mean excess +0.03500, within 0.02 in 0 of 2" in text
    assert "largest rise of a cell's log loss: +0.0400 (crabs, n = 32)" in text


def test_files_that_cannot_be_compared_are_refused(tmp_path, capsys):
    a = results({("iris", 32): 0.49})
    with pytest.raises(SystemExit, match="other cells"):
        compare_real.compare(a, results({("wine", 32): 0.49}))
    b = results({("iris", 32): 0.49})
    b["group"] = "held-out"
    with pytest.raises(SystemExit, match="differ in group"):
        compare_real.compare(a, b)
    with pytest.raises(SystemExit, match="no cells"):
        compare_real.compare(results({}), results({}))
    (tmp_path / "a.json").write_text(json.dumps(a))
    with pytest.raises(SystemExit, match="cannot read"):
        compare_real.main([str(tmp_path / "a.json"), str(tmp_path / "missing.json")])
