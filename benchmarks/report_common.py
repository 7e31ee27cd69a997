"""What the report scripts (ensemble_report.py, precision_report.py) share: the shipped model's float32 report,
issue 3's target, the protocol check between two reports, and the results files they write."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.evaluate import FidelityReport

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The settings two reports must share for their cells to be compared dataset by dataset.
PROTOCOL = ("seed", "n_datasets", "n_queries", "marginal_datasets", "ml2_datasets", "nuts_warmup", "nuts_samples",
            "nuts_chains", "ml2_restarts")


def target(d: int) -> float:
    """Issue 3's target for the gap to the NUTS marginal: 0.05 nats for d <= 2, 0.10 for d = 3, 4."""
    return 0.05 if d <= 2 else 0.10


def load_report(path: str | Path) -> FidelityReport:
    """A `priorfit evaluate` report (evaluate.json, any format priorfit has written)."""
    return FidelityReport.from_json(json.loads(Path(path).read_text()))


def shipped_report() -> FidelityReport:
    """The shipped model's report (benchmarks/results/gp_default_fidelity.json): plain, float32."""
    return load_report(RESULTS / "gp_default_fidelity.json")


def check_protocol(report: FidelityReport, name: str, reference: FidelityReport,
                   keys: tuple[str, ...] = PROTOCOL) -> None:
    """Exit with a message if `report` (read from `name`) was measured under other settings than `reference`, or
    either does not record one of them."""
    mine, theirs = asdict(report.config), asdict(reference.config)
    differs = [k for k in keys if k not in mine or k not in theirs or mine[k] != theirs[k]]
    if differs:
        raise SystemExit(f"{name} was measured under another protocol: {differs}")


def write_results(stem: str, table: str, data: dict) -> None:
    """Print `table`, and write it to benchmarks/results/STEM.txt and `data` (with the command) to STEM.json."""
    print(table)
    out = RESULTS / stem
    atomic_write_text(out.with_suffix(".txt"), table + "\n")
    atomic_write_json(out.with_suffix(".json"), dict(command="python " + " ".join(shlex.quote(a) for a in sys.argv),
                                                     **data))


def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo), for a results file's record of the machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
