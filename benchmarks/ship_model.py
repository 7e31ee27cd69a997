"""Measure a trained GP checkpoint against exact inference and ship it inside the package.

  python benchmarks/ship_model.py runs/gp_default/model.safetensors --name gp_default

Runs the fidelity table of priorfit.evaluate (datasets from the model's own prior, fixed seed), prints it, writes
it to benchmarks/results/<name>_fidelity.json, and saves the checkpoint with the table in its metadata
(``metadata["fidelity"]``) to src/priorfit/models/<name>.safetensors.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from priorfit.checkpoint import load_checkpoint, save_checkpoint
from priorfit.evaluate import cells_to_json, fidelity_report, format_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--name", default="gp_default")
    parser.add_argument("--datasets", type=int, default=128, help="datasets per cell (PFN and oracle)")
    parser.add_argument("--ml2-datasets", type=int, default=32, help="of which ML-II is fitted on the first")
    parser.add_argument("--context", default="2,4,8,16,32,64,128")
    parser.add_argument("--features", default=None, help="e.g. 1,2,4 (default: 1 .. max_features)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ckpt = load_checkpoint(args.checkpoint)
    t = time.perf_counter()
    cells = fidelity_report(
        ckpt,
        n_context=tuple(int(v) for v in args.context.split(",")),
        n_features=tuple(int(v) for v in args.features.split(",")) if args.features else None,
        n_datasets=args.datasets,
        ml2_datasets=args.ml2_datasets,
    )
    table = format_table(cells)
    print(table)
    report = dict(
        protocol=(f"{args.datasets} datasets per cell from the model's own prior (seed 0), 64 queries each; "
                  f"ML-II on the first {args.ml2_datasets}; NLL in nats per query point"),
        command="python " + " ".join(shlex.quote(a) for a in sys.argv),
        minutes=(time.perf_counter() - t) / 60,
        cells=cells_to_json(cells),
    )
    results = ROOT / "benchmarks" / "results" / f"{args.name}_fidelity.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    (results.with_suffix(".txt")).write_text(table + "\n")
    meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "model_config", "prior")}
    meta["fidelity"] = report
    out = save_checkpoint(ROOT / "src" / "priorfit" / "models" / f"{args.name}.safetensors", ckpt.model,
                          ckpt.bar_distribution, ckpt.prior, meta)
    print(f"wrote {results} and {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
