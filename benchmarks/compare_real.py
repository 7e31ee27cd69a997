"""Two real-data results files of ``classification.py --part real`` side by side: the candidate's and the shipped
model's figures on the same cells, and how each cell's PFN log loss moved.

  python benchmarks/compare_real.py benchmarks/results/classification_real_tabular_axes_ensemble2.json \\
      benchmarks/results/classification_real_tabular_robust_ensemble2.json

Prints, for each file, the mean excess of the PFN's log loss over the best baseline, the cells within 0.02 of it,
the cells where the PFN is best, and its pooled ECE (as stored), then each cell's PFN log loss in both and the
change, and the largest rise. Writes nothing: every figure is arithmetic on the two files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def summary(data: dict) -> dict:
    excess = [c["pfn_minus_best_other"] for c in data["cells"]]
    return dict(cells=len(excess), mean_excess=sum(excess) / len(excess),
                within_0_02=sum(e <= 0.02 for e in excess), best=data["summary"]["pfn_best"],
                pooled_ece=data["summary"]["pfn_pooled_ece"], ensemble=data.get("ensemble"))


def compare(candidate: dict, shipped: dict) -> str:
    for field in ("splits", "group"):  # files from before a field existed lack it; their cells still must match
        if field in candidate and field in shipped and candidate[field] != shipped[field]:
            raise SystemExit(f"the files differ in {field}: {candidate.get(field)!r} against {shipped.get(field)!r}")
    if not candidate["cells"]:
        raise SystemExit("the files hold no cells")
    ours = {(c["dataset"], c["n"]): c for c in candidate["cells"]}
    theirs = {(c["dataset"], c["n"]): c for c in shipped["cells"]}
    if ours.keys() != theirs.keys():
        raise SystemExit(f"the files hold other cells: only in the candidate {sorted(ours.keys() - theirs.keys())}, "
                         f"only in the shipped {sorted(theirs.keys() - ours.keys())}")
    lines = []
    for name, data in (("candidate", candidate), ("shipped", shipped)):
        s = summary(data)
        k = "1, by the file's date" if s["ensemble"] is None else s["ensemble"]  # files before --ensemble: k = 1
        lines.append(f"{name:>9} (k = {k}): mean excess {s['mean_excess']:+.5f}, within 0.02 in "
                     f"{s['within_0_02']} of {s['cells']}, best in {s['best']}, pooled ECE {s['pooled_ece']:.3f}")
    lines.append(f"\n{'dataset':>20} {'n':>4} | {'candidate':>9} {'shipped':>9} {'change':>8} | excess now")
    rises = []
    for key in theirs:
        a, b = ours[key]["methods"]["pfn"]["log_loss"], theirs[key]["methods"]["pfn"]["log_loss"]
        rises.append((a - b, key))
        lines.append(f"{key[0]:>20} {key[1]:>4} | {a:9.4f} {b:9.4f} {a - b:+8.4f} | "
                     f"{ours[key]['pfn_minus_best_other']:+.4f}")
    rise, key = max(rises)
    lines.append(f"\nlargest rise of a cell's log loss: {rise:+.4f} ({key[0]}, n = {key[1]})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("shipped", type=Path)
    args = parser.parse_args(argv)
    try:
        candidate, shipped = (json.loads(p.read_text()) for p in (args.candidate, args.shipped))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"cannot read a results file: {error}") from None
    print(compare(candidate, shipped))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
