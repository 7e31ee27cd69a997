"""benchmarks/ship_classifier.py refuses a report part that is not the whole part, of the right kind, on the weights
it ships: the shipped report must be what the benchmark measured on those weights, nothing less."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ship_classifier  # noqa: E402

from priorfit.models import load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: The GP classifier's four parts, as it ships them.
PARTS = {"prior": "classification_prior_gp_32sets.json", "calibration": "classification_calibration_gp.json",
         "real": "classification_real_gp.json", "latency": "classification_latency_gp.json"}


@pytest.fixture
def ship(tmp_path, monkeypatch):
    """Run the script on the shipped GP classifier with the given parts (path or data), writing nothing; returns the
    metadata it would have written."""
    written = {}

    def save(path, model, bars, prior, meta):  # keep the metadata; the script then reports the shipped file's size
        written["meta"] = meta
        return ROOT / "src" / "priorfit" / "models" / "classifier.safetensors"

    monkeypatch.setattr(ship_classifier, "save_checkpoint", save)

    def run(extra=(), **parts):
        argv = [str(ROOT / "src" / "priorfit" / "models" / "classifier.safetensors"), *map(str, extra)]
        for part, name in PARTS.items():
            value = parts.get(part, RESULTS / name)
            if isinstance(value, dict):
                path = tmp_path / f"{part}.json"
                path.write_text(json.dumps(value))
                value = path
            argv += [f"--{part}", str(value)]
        ship_classifier.main(argv)
        return written["meta"]

    return run


def _part(name: str) -> dict:
    return json.loads((RESULTS / PARTS[name]).read_text())


def test_the_shipped_parts_are_accepted_and_recorded(ship):
    meta = ship()
    assert meta["default_ensemble_size"] == 1
    assert meta["fidelity"]["prior"]["results_file"].endswith(PARTS["prior"])
    assert meta["fidelity"]["real"]["summary"]["cells"] == 19


def test_a_part_that_is_not_the_whole_part_is_refused(ship):
    prior = _part("prior")
    with pytest.raises(SystemExit, match="lacks the cells"):
        ship(prior=prior | {"cells": prior["cells"][:1]})
    real = _part("real")
    with pytest.raises(SystemExit, match="not the whole tuned group"):
        ship(real=real | {"cells": real["cells"][:3]})
    with pytest.raises(SystemExit, match="not the whole tuned group"):
        ship(real=real | {"splits": 2})
    with pytest.raises(SystemExit, match="no one group"):
        ship(real=real | {"cells": []})


def test_other_weights_other_parts_and_malformed_files_are_refused(ship, tmp_path):
    weights = load_model("classifier").weights_sha256()
    prior = _part("prior")
    assert prior["model_weights_sha256"] == weights
    with pytest.raises(SystemExit, match="other weights"):
        ship(prior=prior | {"model_weights_sha256": "0" * 64})
    with pytest.raises(SystemExit, match="is not a --part prior"):
        ship(prior=_part("calibration"))
    with pytest.raises(SystemExit, match="bnn component"):
        ship(prior=prior | {"component": "bnn"})
    with pytest.raises(SystemExit, match="is not a --part real"):
        ship(real=_part("real") | {"cells": [{"n": 32}]})
    for bad in ({"cells": 5}, {"cells": [1]}, {"model": "x"}):
        with pytest.raises(SystemExit, match="not a results file"):
            ship(prior=bad | {"model_weights_sha256": weights} if "model" not in bad else bad)
    with pytest.raises(SystemExit, match="cannot read"):
        ship(prior=tmp_path / "missing.json")


def test_the_n128_cells_go_in_once_each(ship, tmp_path):
    d12, d4 = RESULTS / "classification_prior_gp_n128_d12.json", RESULTS / "classification_prior_gp_n128_d4_32sets.json"
    meta = ship(extra=["--prior-n128", d12, d4])
    long = meta["fidelity"]["prior_n128"]
    assert sorted((c["d"], c["n"], c["datasets"]) for entry in long for c in entry["cells"]) == [
        (1, 128, 8), (2, 128, 8), (4, 128, 32)]
    with pytest.raises(SystemExit, match=r"missing: \[\(4, 128\)\]"):
        ship(extra=["--prior-n128", d12])
    with pytest.raises(SystemExit, match=r"twice: \[\(4, 128\)\]"):
        ship(extra=["--prior-n128", RESULTS / "classification_prior_gp_n128.json", d4])
    with pytest.raises(SystemExit, match="not n = 128 cells"):
        ship(extra=["--prior-n128", RESULTS / PARTS["prior"], d12, d4])
    with pytest.raises(SystemExit, match="2"):  # an ensemble's n = 128 cells without an ensemble default: usage
        ship(extra=["--ensemble-prior-n128", d4])
    cell_without_n = tmp_path / "cell_without_n.json"
    cell_without_n.write_text(json.dumps({"model_weights_sha256": load_model("classifier").weights_sha256(),
                                          "part": "prior", "cells": [{"d": 1}]}))
    with pytest.raises(SystemExit, match="not a --part prior"):
        ship(extra=["--prior-n128", cell_without_n, d4])
