"""Issue 11's fidelity targets, cell by cell, from a shipped fidelity report (user path).

  python benchmarks/units_free_targets.py benchmarks/results/invariant_default_fidelity.json

Per cell (d, n): the PFN's gap to the invariant NUTS marginal ± its standard error against the target (0.05 nats
for d <= 2, 0.10 for d = 3, 4), the coverage of its central 90% and 50% intervals against 87-93% and 47-53%,
the fitted baselines' gaps, and the NUTS diagnostics. Prints a markdown table and the counts, and writes them to
``<report>_targets.md`` beside the report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from priorfit.atomic import atomic_write_text
from priorfit.evaluate import FidelityReport

GAP_TARGET = {1: 0.05, 2: 0.05, 3: 0.10, 4: 0.10}
COVERAGE_90 = (0.87, 0.93)
COVERAGE_50 = (0.47, 0.53)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    path = Path(argv[0])
    report = FidelityReport.from_json(json.loads(path.read_text()))
    rows = ["| d | n | gap to marginal | target | met | 90% cov. | 50% cov. | gap to scikit-learn GP | gap to BoTorch | "
            "NUTS datasets | max R-hat | min ESS |", "|" + "---|" * 12]
    met = cov90 = cov50 = 0
    for c in report.cells:
        marginal = c.references.get("marginal")
        target = GAP_TARGET.get(c.n_features)
        gap_ok = marginal is not None and marginal.gap is not None and target is not None and marginal.gap <= target
        ok90 = COVERAGE_90[0] <= c.pfn.coverage_90 <= COVERAGE_90[1]
        ok50 = COVERAGE_50[0] <= c.pfn.coverage_50 <= COVERAGE_50[1]
        met, cov90, cov50 = met + gap_ok, cov90 + ok90, cov50 + ok50

        def gap(name: str) -> str:
            s = c.references.get(name)
            return "-" if s is None or s.gap is None else f"{s.gap:+.3f} ± {s.gap_se:.3f}"

        rows.append(
            f"| {c.n_features} | {c.n_context} | {gap('marginal')} | {target} | {'yes' if gap_ok else 'no'} | "
            f"{c.pfn.coverage_90:.3f}{'' if ok90 else ' ✗'} | {c.pfn.coverage_50:.3f}{'' if ok50 else ' ✗'} | "
            f"{gap('sklearn_gp')} | {gap('botorch')} | {marginal.datasets if marginal else '-'} | "
            f"{marginal.max_r_hat:.3f} | {marginal.min_ess:.0f} |" if marginal and marginal.max_r_hat is not None
            else f"| {c.n_features} | {c.n_context} | - | {target} | no | {c.pfn.coverage_90:.3f} | "
                 f"{c.pfn.coverage_50:.3f} | {gap('sklearn_gp')} | {gap('botorch')} | - | - | - |")
    total = len(report.cells)
    summary = (f"\nCells meeting the gap target: {met} of {total}; 90% coverage within 87-93%: {cov90} of {total}; "
               f"50% coverage within 47-53%: {cov50} of {total}. Path: {report.config.path}.\n")
    text = "\n".join(rows) + "\n" + summary
    print(text)
    atomic_write_text(path.with_name(path.stem + "_targets.md"), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
