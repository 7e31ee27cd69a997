"""The largest difference between two fidelity reports' figures, timings aside: for checking that a change
leaves the report as it was (issue 10: "regenerates to within 1e-6").

  python benchmarks/compare_reports.py benchmarks/results/gp_default_fidelity.json runs/eval_regen/evaluate.json

Compares every score both reports hold (NLL, standard errors, CRPS, coverage, gaps, MCMC diagnostics, dataset
counts, the bars' floor) cell by cell; milliseconds per dataset are left out (they are measured afresh). Prints
the largest absolute difference per figure and overall, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path

from priorfit.evaluate import FidelityReport


def _figures(report: FidelityReport) -> dict[tuple, float]:
    out = {}
    for c in report.cells:
        key = (c.n_features, c.n_context)
        out[key + ("bar_floor",)] = c.bar_floor
        for name, scores in [("pfn", c.pfn), *c.references.items()]:
            for field, value in asdict(scores).items():
                if field != "ms_per_dataset":
                    out[key + (name, field)] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args()
    a, b = (_figures(FidelityReport.from_json(json.loads(Path(p).read_text()))) for p in (args.a, args.b))
    both = [k for k in a if k in b and a[k] is not None and b[k] is not None]
    worst: dict[str, tuple[float, tuple]] = {}
    for k in both:
        diff = abs(a[k] - b[k]) if math.isfinite(a[k]) and math.isfinite(b[k]) else (0.0 if a[k] == b[k] else math.inf)
        figure = "/".join(map(str, k[2:]))
        if diff >= worst.get(figure, (-1.0, None))[0]:
            worst[figure] = (diff, k[:2])
    for figure, (diff, cell) in sorted(worst.items()):
        print(f"{figure:>28}: largest difference {diff:.3g} (d, n = {cell})")
    only = sorted({"/".join(map(str, k[2:])) for k in set(a) ^ set(b)})
    print(f"{len(both)} figures compared; largest difference {max(d for d, _ in worst.values()):.3g}")
    if only:
        print("in one report only:", ", ".join(only))


if __name__ == "__main__":
    main()
