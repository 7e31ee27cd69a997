"""Measure a trained GP checkpoint against exact inference and ship it inside the package.

  python benchmarks/ship_model.py runs/gp_default/model.safetensors --name gp_default

Runs priorfit.evaluate (DESIGN.md's fidelity protocol on datasets from the model's own prior, fixed seed; NUTS and
ML-II on the first datasets of each cell), prints the table, writes benchmarks/results/<name>_fidelity.{json,txt}
and the plots to docs/<name>/, and saves the checkpoint with the report in its metadata (``metadata["fidelity"]``)
to src/priorfit/models/<name>.safetensors.

To use more cores, run `priorfit evaluate CHECKPOINT --features 1,2 --out A` and `... --features 3,4 --out B`
side by side with the same settings, then `ship_model.py CHECKPOINT --merge A/evaluate.json B/evaluate.json`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.checkpoint import load_checkpoint, save_checkpoint
from priorfit.evaluate import EvaluateConfig, FidelityReport, evaluate, format_table, plot_report

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--name", default="gp_default")
    defaults = EvaluateConfig()
    parser.add_argument("--datasets", type=int, default=defaults.n_datasets,
                        help=f"datasets per cell, PFN and oracle (default {defaults.n_datasets})")
    parser.add_argument("--marginal-datasets", type=int, default=defaults.marginal_datasets,
                        help=f"of which NUTS marginalises the first (default {defaults.marginal_datasets})")
    parser.add_argument("--ml2-datasets", type=int, default=defaults.ml2_datasets,
                        help=f"of which ML-II is fitted on the first (default {defaults.ml2_datasets})")
    parser.add_argument("--context", default="2,4,8,16,32,64,128")
    parser.add_argument("--features", default=None, help="e.g. 1,2,4 (default: 1 .. max_features)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-save", action="store_true", help="measure and write results, do not ship")
    parser.add_argument("--init-from", default=None, metavar="MODEL",
                        help="record that CHECKPOINT was warm-started from MODEL (for checkpoints whose training "
                             "state predates that record)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="ship with these `priorfit evaluate` reports of CHECKPOINT (other cells) instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ckpt = load_checkpoint(args.checkpoint)
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        if any(Path(p["model"]).resolve() != Path(args.checkpoint).resolve() for p in parts):
            raise SystemExit(f"--merge: every report must be of {args.checkpoint}")
        report = FidelityReport.merge([FidelityReport.from_json(p) for p in parts])
    else:
        config = EvaluateConfig(
            n_context=tuple(int(v) for v in args.context.split(",")),
            n_features=tuple(int(v) for v in args.features.split(",")) if args.features else None,
            n_datasets=args.datasets, marginal_datasets=args.marginal_datasets, ml2_datasets=args.ml2_datasets,
        )
        report = evaluate(ckpt, config)
    table = format_table(report.cells)
    print(table)
    data = dict(command="python " + " ".join(shlex.quote(a) for a in sys.argv), minutes=report.seconds / 60,
                **report.to_json())
    results = ROOT / "benchmarks" / "results" / f"{args.name}_fidelity.json"
    atomic_write_json(results, data)
    atomic_write_text(results.with_suffix(".txt"), table + "\n")
    plots = plot_report(report, ROOT / "docs" / args.name)
    print(f"wrote {results} and {', '.join(str(p) for p in plots)}")
    if args.no_save:
        return
    meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "model_config", "prior")}
    if args.init_from and not meta.get("init_from"):
        source = load_checkpoint(args.init_from).metadata
        meta["init_from"] = dict(source=args.init_from, step=source.get("step"),
                                 train_seconds=source.get("train_seconds"), init_from=source.get("init_from"))
    meta["fidelity"] = {k: v for k, v in data.items() if k != "calibration"}
    out = save_checkpoint(ROOT / "src" / "priorfit" / "models" / f"{args.name}.safetensors", ckpt.model,
                          ckpt.bar_distribution, ckpt.prior, meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
