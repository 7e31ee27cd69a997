"""What the report scripts (ensemble_report.py, precision_report.py) share: the shipped model's float32 report,
issue 3's target, the protocol check between two reports, and the results files they write."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The settings two reports must share for their cells to be compared dataset by dataset.
PROTOCOL = ("seed", "n_datasets", "n_queries", "marginal_datasets", "ml2_datasets", "nuts_warmup", "nuts_samples",
            "nuts_chains", "ml2_restarts")


def target(d: int) -> float:
    """Issue 3's target for the gap to the NUTS marginal: 0.05 nats for d <= 2, 0.10 for d = 3, 4."""
    return 0.05 if d <= 2 else 0.10


def shipped_report() -> dict:
    """The shipped model's report (benchmarks/results/gp_default_fidelity.json): plain, float32."""
    return json.loads((RESULTS / "gp_default_fidelity.json").read_text())


def check_protocol(report: dict, name: str, reference: dict, keys: tuple[str, ...] = PROTOCOL) -> None:
    """Exit with a message if `report` (read from `name`) was measured under other settings than `reference`, or
    either does not record one of them."""
    mine, theirs = report["config"], reference["config"]
    differs = [k for k in keys if k not in mine or k not in theirs or mine[k] != theirs[k]]
    if differs:
        raise SystemExit(f"{name} was measured under another protocol: {differs}")


def write_results(stem: str, table: str, data: dict) -> None:
    """Print `table`, and write it to benchmarks/results/STEM.txt and `data` (with the command) to STEM.json."""
    print(table)
    out = RESULTS / stem
    out.with_suffix(".txt").write_text(table + "\n")
    data = dict(command="python " + " ".join(shlex.quote(a) for a in sys.argv), **data)
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
