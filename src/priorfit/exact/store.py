"""Exact references saved per dataset, so that they are computed once and every later model reuses them.

NUTS marginalisation and ML-II fits are what makes a fidelity report slow (minutes per dataset at n = 128), yet
they depend only on the datasets, never on the PFN: the fidelity protocol draws the same datasets from the same
prior and seed for every model. A :class:`ReferenceStore` keeps, per method, input dimension d, context size n
and dataset index, what a report needs of that dataset's exact result (NLL, CRPS, PIT values, diagnostics, time),
under the reference's name (``Reference.name``).

A store is tied to its protocol (the prior, the seed, datasets per cell, queries per dataset, the NUTS and ML-II
settings): one computed under another protocol is refused, never silently mixed in. Each record also holds a
fingerprint of its dataset, checked on reuse, so a store from a machine whose random numbers or rounding differ
fails loudly instead of scoring the PFN against another dataset's reference.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from priorfit.exceptions import PriorfitError

__all__ = ["ReferenceStore", "ReferenceMismatchError", "dataset_fingerprint"]

_FORMAT = "priorfit-references-1"
_FINGERPRINT_RTOL = 1e-9


class ReferenceMismatchError(PriorfitError, ValueError):
    """A store computed under another protocol, or a record whose dataset is not the one being scored."""


def dataset_fingerprint(x: Tensor, y: Tensor) -> list[float]:
    """Three sums that identify one dataset (x `n x d`, y `n`, context and queries) up to rounding."""
    x, y = x.double(), y.double()
    return [float(x.sum()), float(y.sum()), float((y * y).sum())]


def _same_fingerprint(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(u, v, rel_tol=_FINGERPRINT_RTOL, abs_tol=1e-9) for u, v in zip(a, b))


@dataclass
class ReferenceStore:
    """Per-dataset exact results under one protocol (a JSON-compatible dict that must match exactly).

    ``records[method][f"{d}/{n}"][i]`` is the record of dataset ``i`` of cell (d, n).
    """

    protocol: dict[str, Any]
    records: dict[str, dict[str, dict[int, dict[str, Any]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.protocol = json.loads(json.dumps(self.protocol, sort_keys=True))  # canonical: lists, sorted keys

    # ---- access ---------------------------------------------------------------------------------------------

    def get(self, method: str, d: int, n: int, i: int, fingerprint: list[float]) -> dict[str, Any] | None:
        """The record of dataset `i` of cell (d, n), or None; raises if it was computed on another dataset."""
        record = self.records.get(_method(method), {}).get(f"{d}/{n}", {}).get(i)
        if record is not None and not _same_fingerprint(record["fingerprint"], fingerprint):
            raise ReferenceMismatchError(
                f"the stored {method} reference of dataset {i} (d={d}, n={n}) was computed on another dataset "
                f"(fingerprint {record['fingerprint']} vs {fingerprint}): the store is not from this protocol's "
                f"datasets"
            )
        return record

    def put(self, method: str, d: int, n: int, i: int, record: dict[str, Any]) -> None:
        if "fingerprint" not in record:
            raise ValueError("record must hold the dataset's fingerprint")
        self.records.setdefault(_method(method), {}).setdefault(f"{d}/{n}", {})[int(i)] = record

    def count(self, method: str, d: int, n: int) -> int:
        return len(self.records.get(_method(method), {}).get(f"{d}/{n}", {}))

    def __len__(self) -> int:
        return sum(len(cell) for cells in self.records.values() for cell in cells.values())

    # ---- combining and files ---------------------------------------------------------------------------------

    def update(self, other: "ReferenceStore") -> None:
        """Add the records of `other` (same protocol); where both hold a dataset, this store's record stays."""
        if other.protocol != self.protocol:
            raise ReferenceMismatchError(_protocol_difference(other.protocol, self.protocol))
        for method, cells in other.records.items():
            for key, records in cells.items():
                for i, record in records.items():
                    self.records.setdefault(method, {}).setdefault(key, {}).setdefault(i, record)

    def to_json(self) -> dict[str, Any]:
        return dict(format=_FORMAT, protocol=self.protocol, records={
            method: {key: {str(i): cells[key][i] for i in sorted(cells[key])} for key in sorted(cells)}
            for method, cells in self.records.items()
        })

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ReferenceStore":
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ReferenceMismatchError(f"not a priorfit reference store (format {_FORMAT!r} expected)")
        records = {_method(m): {k: {int(i): r for i, r in v.items()} for k, v in cells.items()}
                   for m, cells in data["records"].items()}
        return cls(protocol=data["protocol"], records=records)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceStore":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"references file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ReferenceMismatchError(f"references file {str(path)!r} is not valid JSON: {exc}") from None
        return cls.from_json(data)

    def save(self, path: str | Path) -> None:
        """Write atomically (a stopped run never leaves half a file)."""
        from priorfit.atomic import atomic_write_json

        atomic_write_json(path, self.to_json(), indent=None)

    def check_protocol(self, protocol: dict[str, Any], source: str = "references") -> None:
        wanted = json.loads(json.dumps(protocol, sort_keys=True))
        if wanted != self.protocol:
            raise ReferenceMismatchError(f"{source}: " + _protocol_difference(self.protocol, wanted))


def _method(method: str) -> str:
    """A reference's name (``Reference.name``: "marginal", "ml2", ...), under which its records are kept."""
    if not (isinstance(method, str) and method.isidentifier()):
        raise ValueError(f"method must be a reference's name (an identifier such as 'marginal'), got {method!r}")
    return method


def _protocol_difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    shown = ", ".join(f"{k}: stored {stored.get(k)!r} vs wanted {wanted.get(k)!r}"
                      for k in keys if k != "prior")
    if "prior" in keys:
        shown = "the prior differs" + (f"; {shown}" if shown else "")
    return f"the references were computed under another protocol ({shown})"


def pit_list(values: Tensor) -> list[float]:
    """PIT values rounded for storage (1e-9 moves a coverage count only at an exact tie)."""
    return [round(float(v), 9) for v in values.flatten()]
