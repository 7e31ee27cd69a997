"""What bfloat16 inference costs the shipped model in fidelity: its report in float32 and in bfloat16, cell by cell.

  priorfit evaluate gp_default --precision bfloat16 --out runs/eval_bf16 --threads 1 --marginal-datasets 256 \\
      --ml2-datasets 64 --references benchmarks/results/gp_default_references.json --no-new-references --no-plots
  python benchmarks/precision_report.py runs/eval_bf16/evaluate.json

Reads the float32 report (benchmarks/results/gp_default_fidelity.json, the shipped model's) and a bfloat16 report
on the same protocol and datasets, and prints per cell the PFN's NLL in each precision and their difference (the
same datasets and held-out points, so the difference is paired and exact), the gap to the NUTS marginal in each,
and the 50% / 90% coverage in each; then whether any cell changes sides of issue 3's target. Its speed is
measured by `python benchmarks/bench_speed.py --bfloat16`. Writes benchmarks/results/gp_default_precision.{json,txt}.
"""

from __future__ import annotations

import argparse

from report_common import PROTOCOL, check_protocol, load_report, shipped_report, target, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="evaluate.json of `priorfit evaluate gp_default --precision bfloat16`")
    args = parser.parse_args()
    plain = shipped_report()
    fast = load_report(args.report)
    if fast.config.precision != "bfloat16":
        raise SystemExit(f"{args.report} is not a bfloat16 report (precision {fast.config.precision!r})")
    check_protocol(fast, args.report, plain, PROTOCOL + ("ensemble_size",))
    by_cell = {(c.n_features, c.n_context): c for c in fast.cells}
    head = (f"{'d':>2} {'n':>4} | {'NLL f32':>8} {'bf16':>8} {'diff':>8} | {'-marginal f32':>13} {'bf16':>7} | "
            f"{'cov50 f32':>9} {'bf16':>5} | {'cov90 f32':>9} {'bf16':>5}")
    lines, rows, flipped = [head, "-" * len(head)], [], []
    for c in plain.cells:
        d, n = c.n_features, c.n_context
        b = by_cell[(d, n)]
        diff = b.pfn.nll - c.pfn.nll
        if (c.gap("marginal") <= target(d)) != (b.gap("marginal") <= target(d)):
            flipped.append((d, n))
        lines.append(f"{d:>2} {n:>4} | {c.pfn.nll:8.4f} {b.pfn.nll:8.4f} {diff:+8.5f} | "
                     f"{c.gap('marginal'):+13.4f} {b.gap('marginal'):+7.4f} | "
                     f"{c.pfn.coverage_50:9.3f} {b.pfn.coverage_50:5.3f} | "
                     f"{c.pfn.coverage_90:9.3f} {b.pfn.coverage_90:5.3f}")
        rows.append(dict(n_features=d, n_context=n, nll_float32=c.pfn.nll, nll_bfloat16=b.pfn.nll,
                         nll_difference=diff, gap_to_marginal_float32=c.gap("marginal"),
                         gap_to_marginal_bfloat16=b.gap("marginal"), coverage_50_float32=c.pfn.coverage_50,
                         coverage_50_bfloat16=b.pfn.coverage_50, coverage_90_float32=c.pfn.coverage_90,
                         coverage_90_bfloat16=b.pfn.coverage_90))
    diffs = [r["nll_difference"] for r in rows]
    lines.append(f"NLL bfloat16 - float32 over {len(rows)} cells: from {min(diffs):+.5f} to {max(diffs):+.5f} "
                 f"(mean {sum(diffs) / len(diffs):+.5f}) nats per held-out point")
    lines.append("cells whose target (gap to the marginal <= 0.05 for d <= 2, <= 0.10 for d = 3, 4) changes: "
                 + (", ".join(f"d={d} n={n}" for d, n in flipped) or "none"))
    write_results("gp_default_precision", "\n".join(lines),
                  dict(cells=rows, target_changes=[dict(n_features=d, n_context=n) for d, n in flipped]))


if __name__ == "__main__":
    main()
