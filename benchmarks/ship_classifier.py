"""Ship a trained classifier inside the package, with its measured report in its metadata.

  python benchmarks/ship_classifier.py runs/classifier --prior benchmarks/results/classification_prior_gp.json \
      --calibration benchmarks/results/classification_calibration_gp.json \
      --real benchmarks/results/classification_real_gp.json --latency benchmarks/results/classification_latency_gp.json

Each results file is one part of ``benchmarks/classification.py`` (``--part prior``, ``calibration``, ``real``,
``latency``) run on this checkpoint: the script refuses a part measured on other weights (``model_weights_sha256``), then writes
src/priorfit/models/<name>.safetensors with ``metadata["fidelity"]`` = {"kind": "classification", "prior": ...,
"calibration": ..., "real": ..., "latency": ...} (each part's summary, cells and command), and
``metadata["default_ensemble_size"]``, the ensemble ``PFNClassifier`` uses for it by default: with K > 1 the report
also holds every part measured at K (``fidelity["ensemble"]``: prior, calibration, the real-data groups and latency),
so that it covers what ``PFNClassifier()`` then does; the top-level parts stay the network's own (ensemble 1).
``--prior-n128`` adds the n = 128 prior cells (``fidelity["prior_n128"]``, and at K in ``fidelity["ensemble"]``),
from files that together hold each such cell once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from classification import GROUPS, PRIOR_CONTEXTS, PRIOR_FEATURES, SPLITS  # noqa: E402

from priorfit.checkpoint import save_checkpoint  # noqa: E402
from priorfit.models import load_model  # noqa: E402
from priorfit.principal_axes import trained_on_principal_axes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("prior", "calibration", "real", "latency")
#: The cells a prior part must hold (its n = 128 cells are a run of their own) and a calibration part must hold.
PRIOR_CELLS = {(d, n) for d in PRIOR_FEATURES for n in PRIOR_CONTEXTS if n <= 32}
#: The long-context prior cells, measured in runs of their own (their references are dearer): --prior-n128.
LONG_PRIOR_CELLS = {(d, n) for d in PRIOR_FEATURES for n in PRIOR_CONTEXTS if n > 32}
CALIBRATION_CELLS = {(d, n) for d in PRIOR_FEATURES for n in PRIOR_CONTEXTS}


def _part_of(data: dict) -> str:
    """Which part of benchmarks/classification.py wrote a results file: the part it names, or, in files written
    before results named their part, what its cells hold."""
    if "part" in data:
        return data["part"]
    cell = (data.get("cells") or [{}])[0]
    if "median_ms" in data:
        return "latency"
    if "splits" in data:
        return "real"
    return "prior" if "gap" in cell else "calibration" if "oracle_ece" in cell else "unknown"


def _group_of(data: dict) -> str:
    """A real-data part's group of sets: the group it names, or the one its datasets come from."""
    if "group" in data:
        return data["group"]
    names = {cell["dataset"] for cell in data["cells"]}
    return next((group for group, sources in GROUPS.items() if names and names <= {s.name for s in sources}),
                "unknown")


def _read(flag: str, path: Path) -> dict:
    """A results file's data, or a clear refusal naming the flag."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{flag} {path}: cannot read a results file ({err})") from None
    cells = data.get("cells", []) if isinstance(data, dict) else None
    if (not isinstance(data, dict) or "model_weights_sha256" not in data or not isinstance(cells, list)
            or not all(isinstance(cell, dict) for cell in cells)):
        raise SystemExit(f"{flag} {path} is not a results file of benchmarks/classification.py")
    return data


def _gp_component(flag: str, path: Path, data: dict) -> None:
    """Refuse a prior or calibration part scored on another component of a mixture than its GP prior."""
    if data.get("component", "gp") != "gp":
        raise SystemExit(f"{flag} {path} scores the {data['component']} component; the report's is the GP's")


def _entry(data: dict, path: Path) -> dict:
    """A part as the report keeps it: the results file's data, less the model's path, with the file's name."""
    return {k: v for k, v in data.items() if k != "model"} | {"results_file": str(path)}


def _whole(flag: str, path: Path, data: dict, part: str) -> None:
    """Refuse a part that is not the benchmark's whole part: every prior or calibration cell of the GP component,
    every set of a real-data group over all its splits."""
    try:
        if part in ("prior", "calibration"):
            _gp_component(flag, path, data)
            wanted = PRIOR_CELLS if part == "prior" else CALIBRATION_CELLS
            missing = wanted - {(cell["d"], cell["n"]) for cell in data["cells"]}
            if missing:
                raise SystemExit(f"{flag} {path} lacks the cells (d, n) {sorted(missing)}")
        elif part == "real":
            group = _group_of(data)
            if group not in GROUPS:
                raise SystemExit(f"{flag} {path} holds sets of no one group of the benchmark")
            missing = {s.name for s in GROUPS[group]} - {cell["dataset"] for cell in data["cells"]}
            if missing or data.get("splits") != SPLITS:
                raise SystemExit(f"{flag} {path} is not the whole {group} group over {SPLITS} splits (missing "
                                 f"{sorted(missing)}, splits {data.get('splits')})")
    except (KeyError, TypeError) as err:
        raise SystemExit(f"{flag} {path} is not a --part {part} results file ({err!r})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a classifier checkpoint, or a training run's folder")
    for part in PARTS:
        parser.add_argument(f"--{part}", required=True, metavar="JSON",
                            help=f"benchmarks/classification.py --part {part}'s results file for this checkpoint")
    parser.add_argument("--name", default="classifier", help="the shipped model's name (default: classifier)")
    parser.add_argument("--default-ensemble-size", type=int, default=1, metavar="K",
                        help="the ensemble_size PFNClassifier uses for this model when none is given (default 1); "
                             "above 1 it needs every --ensemble-* part measured at K")
    parser.add_argument("--ensemble-prior", metavar="JSON", help="--part prior's file at --ensemble K")
    parser.add_argument("--ensemble-calibration", metavar="JSON", help="--part calibration's file at --ensemble K")
    parser.add_argument("--ensemble-real", metavar="JSON", nargs="+", default=(),
                        help="--part real results files (tuned and held-out groups) of these weights at --ensemble K")
    parser.add_argument("--ensemble-latency", metavar="JSON", help="--part latency's file at --ensemble K")
    parser.add_argument("--prior-n128", metavar="JSON", nargs="+", default=(),
                        help="--part prior results files that together hold each n = 128 cell once (optional; the "
                             "report then covers every cell of the own-prior target)")
    parser.add_argument("--ensemble-prior-n128", metavar="JSON", nargs="+", default=(),
                        help="the same at --ensemble K; needed with --prior-n128 when K is above 1")
    args = parser.parse_args(argv)
    if args.default_ensemble_size < 1:
        parser.error("--default-ensemble-size must be at least 1")
    ensemble_parts = (args.ensemble_prior, args.ensemble_calibration, args.ensemble_real, args.ensemble_latency)
    if args.default_ensemble_size > 1 and not all(ensemble_parts):
        parser.error("--default-ensemble-size above 1 needs --ensemble-prior, --ensemble-calibration, --ensemble-real "
                     "and --ensemble-latency measured at it, so that the report covers what PFNClassifier() then does")
    if args.default_ensemble_size == 1 and (any(ensemble_parts) or args.ensemble_prior_n128):
        parser.error("the --ensemble-* parts go with --default-ensemble-size above 1")
    if args.default_ensemble_size > 1 and bool(args.prior_n128) != bool(args.ensemble_prior_n128):
        parser.error("--prior-n128 and --ensemble-prior-n128 go together when --default-ensemble-size is above 1")

    ckpt = load_model(args.checkpoint)
    if not ckpt.model_config.n_classes:
        raise SystemExit(f"{args.checkpoint} is a regression PFN, not a classifier")
    weights = ckpt.weights_sha256()
    report = {"kind": "classification"}
    def measured(flag: str, path: Path, part: str, whole: bool = True) -> dict:
        """A results file's data, refused if it is not that part, was measured on other weights or (``whole``) is
        not the benchmark's whole part."""
        data = _read(flag, path)
        if _part_of(data) != part:
            raise SystemExit(f"{flag} {path} is not a --part {part} results file")
        if data["model_weights_sha256"] != weights:
            raise SystemExit(f"{flag} {path} was measured on other weights than {args.checkpoint}'s "
                             f"(step {data.get('model_step')} against {ckpt.metadata.get('step')})")
        if whole:
            _whole(flag, path, data, part)
        if data.get("view_weighting", "evidence") != "evidence" and trained_on_principal_axes(ckpt):
            raise SystemExit(f"{flag} {path} was measured with view_weighting={data['view_weighting']!r}; "
                             "PFNClassifier serves this model's two views with its default, 'evidence'")
        return data

    for part in PARTS:
        path = Path(getattr(args, part))
        data = measured(f"--{part}", path, part)
        if data.get("ensemble", 1) != 1:
            raise SystemExit(f"--{part} {path} was measured at ensemble {data['ensemble']}; the report's parts are "
                             "the network's own (ensemble 1), an ensemble's go in the --ensemble-* parts")
        if part == "real" and _group_of(data) != "tuned":
            raise SystemExit(f"--real {path} holds the {_group_of(data)} group; the report's real part is the tuned "
                             "group's")
        report[part] = _entry(data, path)
    def long_cells(flag: str, paths: list[str], size: int) -> list[dict]:
        """The n = 128 prior parts at this ensemble size, refused unless together they hold each such cell once."""
        entries, seen = [], []
        for path in map(Path, paths):
            data = measured(flag, path, "prior", whole=False)  # a part of the n = 128 cells: the whole is checked below
            _gp_component(flag, path, data)
            if data.get("ensemble", 1) != size:
                raise SystemExit(f"{flag} {path} was measured at ensemble {data.get('ensemble', 1)}, not {size}")
            try:
                cells = [(cell["d"], cell["n"]) for cell in data["cells"]]
            except (KeyError, TypeError) as err:
                raise SystemExit(f"{flag} {path} is not a --part prior results file ({err!r})") from None
            if not set(cells) <= LONG_PRIOR_CELLS:
                raise SystemExit(f"{flag} {path} holds cells {sorted(set(cells) - LONG_PRIOR_CELLS)} that are not "
                                 f"n = 128 cells")
            seen += cells
            entries.append(_entry(data, path))
        twice = sorted({cell for cell in seen if seen.count(cell) > 1})
        missing = sorted(LONG_PRIOR_CELLS - set(seen))
        if twice or missing:
            raise SystemExit(f"{flag}: the files must hold each n = 128 cell once (twice: {twice}, missing: {missing})")
        return entries

    if args.prior_n128:
        if any(cell["n"] > 32 for cell in report["prior"]["cells"]):
            raise SystemExit(f"--prior {args.prior} holds n = 128 cells too; with --prior-n128 they go there alone")
        report["prior_n128"] = long_cells("--prior-n128", args.prior_n128, 1)
    if args.default_ensemble_size > 1:
        ensemble = {"size": args.default_ensemble_size, "real": []}
        if args.ensemble_prior_n128:
            ensemble["prior_n128"] = long_cells("--ensemble-prior-n128", args.ensemble_prior_n128,
                                                args.default_ensemble_size)
        for flag, path in [("--ensemble-real", Path(p)) for p in args.ensemble_real] + [
                (f"--ensemble-{part}", Path(getattr(args, f"ensemble_{part}")))
                for part in ("prior", "calibration", "latency")]:
            part = flag.removeprefix("--ensemble-")
            data = measured(flag, path, part)
            if data.get("ensemble") != args.default_ensemble_size:
                raise SystemExit(f"{flag} {path} was measured at ensemble {data.get('ensemble')}, not "
                                 f"{args.default_ensemble_size}")
            entry = _entry(data, path)
            if part == "real":
                entry["group"] = _group_of(data)
                ensemble["real"].append(entry)
            else:
                ensemble[part] = entry
        groups = [entry["group"] for entry in ensemble["real"]]
        if "tuned" not in groups or len(set(groups)) != len(groups):
            raise SystemExit(f"--ensemble-real holds the groups {groups}; it needs the tuned group and each group "
                             "once")
        report["ensemble"] = ensemble
    meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "model_config", "prior")}
    meta["fidelity"] = report
    meta["default_ensemble_size"] = args.default_ensemble_size
    out = save_checkpoint(ROOT / "src" / "priorfit" / "models" / f"{args.name}.safetensors", ckpt.model,
                          ckpt.bar_distribution, ckpt.prior, meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) at step {ckpt.metadata.get('step')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
