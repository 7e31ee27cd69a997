"""The cells of several `priorfit evaluate` runs of one model, finished or interrupted, as one table.

An evaluation writes OUT/cells.partial.json after each cell and OUT/evaluate.json at the end; this reads either
kind from each folder (evaluate.json where it exists), sorts the cells by (d, n) and writes them with the text
table to OUT.json / OUT.txt. It merges cells only: the pooled calibration curves need finished runs
(``ship_model.py --merge``).

    python benchmarks/combine_cells.py runs/bnn_eval runs/bnn_eval_d1b runs/bnn_eval_d2 \
        --out benchmarks/results/bnn_wip_fidelity
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.evaluate import format_table
from priorfit.evaluate.report import FidelityCell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="`priorfit evaluate --out` folders")
    parser.add_argument("--out", required=True, help="results path without suffix")
    args = parser.parse_args(argv)
    cells, sources = {}, []
    for folder in map(Path, args.folders):
        done = folder / "evaluate.json"
        path = done if done.exists() else folder / "cells.partial.json"
        if not path.exists():
            parser.error(f"{folder}: neither evaluate.json nor cells.partial.json")
        data = json.loads(path.read_text())
        rows = data["cells"] if isinstance(data, dict) else data
        sources.append(dict(path=str(path), cells=len(rows), finished=path == done))
        for row in rows:
            cells[(row["n_features"], row["n_context"])] = FidelityCell.from_json(row)
    ordered = [cells[key] for key in sorted(cells)]
    table = format_table(ordered)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), dict(
        command="python benchmarks/combine_cells.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        sources=sources, cells=[c.to_json() for c in ordered]))
    atomic_write_text(out.with_suffix(".txt"), table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
