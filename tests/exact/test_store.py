"""Reference store: round trip, protocol and dataset checks, merging."""

from __future__ import annotations

import json

import pytest
import torch

from priorfit.exact.store import ReferenceMismatchError, ReferenceStore, dataset_fingerprint

PROTOCOL = dict(prior={"type": "GPPrior", "max_features": 2}, seed=0, n_datasets=8, n_queries=4)


def dataset(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(6, 2, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)


def record(seed: int, nll: float) -> dict:
    return dict(fingerprint=dataset_fingerprint(*dataset(seed)), nll=nll, pit=[0.1, 0.5, 0.9, 0.3])


def test_round_trip_through_file(tmp_path) -> None:
    store = ReferenceStore(PROTOCOL)
    store.put("marginal", 1, 4, 0, record(0, 1.25))
    store.put("ml2", 2, 8, 3, record(1, -0.5))
    store.save(tmp_path / "refs.json")
    loaded = ReferenceStore.load(tmp_path / "refs.json")
    assert loaded.protocol == store.protocol and len(loaded) == 2
    assert loaded.get("marginal", 1, 4, 0, dataset_fingerprint(*dataset(0)))["nll"] == 1.25
    assert loaded.get("ml2", 2, 8, 3, dataset_fingerprint(*dataset(1)))["nll"] == -0.5
    assert loaded.get("marginal", 1, 4, 1, dataset_fingerprint(*dataset(0))) is None
    assert loaded.count("marginal", 1, 4) == 1 and loaded.count("ml2", 1, 4) == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_fingerprint_of_another_dataset_is_refused() -> None:
    store = ReferenceStore(PROTOCOL)
    store.put("marginal", 1, 4, 0, record(0, 1.0))
    x, y = dataset(0)
    store.get("marginal", 1, 4, 0, dataset_fingerprint(x, y * (1 + 1e-13)))  # rounding passes
    with pytest.raises(ReferenceMismatchError, match="another dataset"):
        store.get("marginal", 1, 4, 0, dataset_fingerprint(x, y + 1e-6))


def test_another_protocol_is_refused_and_named() -> None:
    store = ReferenceStore(PROTOCOL)
    with pytest.raises(ReferenceMismatchError, match="seed: stored 0 vs wanted 1"):
        store.check_protocol(dict(PROTOCOL, seed=1))
    with pytest.raises(ReferenceMismatchError, match="the prior differs"):
        store.update(ReferenceStore(dict(PROTOCOL, prior={"type": "GPPrior", "max_features": 3})))
    store.check_protocol(json.loads(json.dumps(PROTOCOL)))  # the same protocol, via JSON: accepted


def test_update_adds_and_keeps_existing_records() -> None:
    a, b = ReferenceStore(PROTOCOL), ReferenceStore(PROTOCOL)
    a.put("marginal", 1, 4, 0, record(0, 1.0))
    b.put("marginal", 1, 4, 0, record(0, 9.0))
    b.put("marginal", 1, 4, 1, record(1, 2.0))
    a.update(b)
    assert len(a) == 2
    assert a.get("marginal", 1, 4, 0, dataset_fingerprint(*dataset(0)))["nll"] == 1.0


def test_bad_files_and_arguments(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ReferenceStore.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReferenceMismatchError, match="not valid JSON"):
        ReferenceStore.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"cells": []}')
    with pytest.raises(ReferenceMismatchError, match="not a priorfit reference store"):
        ReferenceStore.load(tmp_path / "other.json")
    store = ReferenceStore(PROTOCOL)
    with pytest.raises(ValueError, match="method must be a reference's name"):
        store.put("marginal (NUTS)", 1, 4, 0, record(0, 1.0))
    with pytest.raises(ValueError, match="fingerprint"):
        store.put("marginal", 1, 4, 0, dict(nll=1.0))
