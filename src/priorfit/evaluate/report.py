"""A fidelity report's contents: typed scores per method and cell, the pooled calibration curves, JSON in and
out, and the text table.

Methods are named by identifiers: ``"pfn"`` for the network, and each exact reference by its ``Reference.name``
(``"oracle"``, ``"marginal"``, ``"ml2"`` for a GP prior). Display labels travel beside them (``labels``), never
as keys. Reports written before this layout (one flat record of 34 fields per cell) are read too
(:meth:`FidelityReport.from_json`), so earlier results files and shipped models stay readable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from priorfit.evaluate.config import CALIBRATION_LEVELS, EvaluateConfig

__all__ = ["MethodScores", "FidelityCell", "FidelityReport", "format_table", "PFN"]

#: The name of the network's own scores.
PFN = "pfn"


@dataclass(frozen=True)
class MethodScores:
    """One method's scores in one (d, n) cell. NLL in nats per query point and CRPS in y's units, means over the
    datasets the method scored (the first ``datasets`` of the cell); ``*_se`` are standard errors over datasets.

    Attributes:
        datasets: datasets scored. ``failures``: datasets on which the method failed (left out of its scores).
        nll, nll_se, crps, coverage_50, coverage_90: its scores (coverage of its central 50% / 90% intervals).
        ms_per_dataset: milliseconds per dataset.
        gap, gap_se: the PFN's NLL minus this method's, paired on the datasets both scored (None for the PFN).
        max_r_hat, min_ess, divergences: MCMC diagnostics over the cell's datasets (None where not MCMC).
    """

    datasets: int
    nll: float | None = None
    nll_se: float | None = None
    crps: float | None = None
    coverage_50: float | None = None
    coverage_90: float | None = None
    ms_per_dataset: float | None = None
    gap: float | None = None
    gap_se: float | None = None
    failures: int = 0
    max_r_hat: float | None = None
    min_ess: float | None = None
    divergences: int | None = None


@dataclass(frozen=True)
class FidelityCell:
    """One (d, n) cell of the fidelity table: the PFN's scores and each exact reference's, by reference name.
    ``bar_floor`` is the oracle's NLL after its predictive is moved onto the model's bars
    (:meth:`~priorfit.model.bar_distribution.BarDistribution.project`) minus its own: the part of the gap to
    the oracle that the bars' resolution alone sets, which no training removes (None without an oracle)."""

    n_features: int
    n_context: int
    n_datasets: int
    pfn: MethodScores
    references: dict[str, MethodScores] = field(default_factory=dict)
    bar_floor: float | None = None
    pfn_ensemble_members: int = 1

    def gap(self, reference: str) -> float | None:
        """The PFN's paired NLL gap to a reference, None if the cell has no such scores."""
        scores = self.references.get(reference)
        return None if scores is None else scores.gap

    def to_json(self) -> dict[str, Any]:
        return dict(n_features=self.n_features, n_context=self.n_context, n_datasets=self.n_datasets,
                    pfn=asdict(self.pfn), references={k: asdict(v) for k, v in self.references.items()},
                    bar_floor=self.bar_floor, pfn_ensemble_members=self.pfn_ensemble_members)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FidelityCell":
        if "pfn" not in data:
            return _legacy_cell(data)
        return cls(n_features=data["n_features"], n_context=data["n_context"], n_datasets=data["n_datasets"],
                   pfn=MethodScores(**data["pfn"]),
                   references={k: MethodScores(**v) for k, v in data["references"].items()},
                   bar_floor=data.get("bar_floor"), pfn_ensemble_members=data.get("pfn_ensemble_members", 1))


@dataclass
class FidelityReport:
    """The cells, the pooled calibration curves (observed coverage of central intervals per method, at
    ``CALIBRATION_LEVELS``, with the number of points pooled), the example datasets for plotting, the methods'
    display labels, the references' kinds (``ReferenceKind`` values: "oracle", "marginal", "fitted"), and the
    settings."""

    cells: list[FidelityCell]
    calibration: dict[str, list[float]] = field(default_factory=dict)
    calibration_points: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=lambda: {PFN: "PFN"})
    kinds: dict[str, str] = field(default_factory=dict)
    config: EvaluateConfig = field(default_factory=EvaluateConfig)
    seconds: float = float("nan")

    def to_json(self) -> dict[str, Any]:
        return dict(config=asdict(self.config), seconds=self.seconds, levels=list(CALIBRATION_LEVELS),
                    labels=self.labels, kinds=self.kinds, calibration=self.calibration, calibration_points=self.calibration_points,
                    cells=[c.to_json() for c in self.cells], examples=self.examples)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FidelityReport":
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()}
        config.setdefault("path", "raw")  # every report before the user path fed the network raw
        config["gap_targets"] = tuple((int(d), float(t)) for d, t in config.get("gap_targets", ()))
        labels = data.get("labels") or {PFN: "PFN", **{name: label for label, name in _LEGACY_NAMES.items()}}
        rename = {} if "labels" in data else _LEGACY_NAMES  # old reports keyed curves and examples by label
        examples = [{rename.get(k, k): v for k, v in ex.items()} for ex in data.get("examples", [])]
        return cls(cells=[FidelityCell.from_json(c) for c in data["cells"]],
                   calibration={rename.get(k, k): v for k, v in data.get("calibration", {}).items()},
                   calibration_points={rename.get(k, k): v for k, v in data.get("calibration_points", {}).items()},
                   examples=examples, labels=labels, kinds=data.get("kinds") or dict(_LEGACY_KINDS),
                   config=EvaluateConfig(**config),
                   seconds=data.get("seconds", float("nan")))

    @classmethod
    def merge(cls, reports: list["FidelityReport"]) -> "FidelityReport":
        """One report from reports on other cells (e.g. other d, run side by side): cells sorted by (d, n),
        calibration curves averaged with weights by their number of points, the first examples found, the
        seconds added up."""
        names = {name for r in reports for name in r.calibration}
        calibration, points = {}, {}
        for name in sorted(names):
            parts = [(r.calibration[name], r.calibration_points.get(name, 1)) for r in reports if name in r.calibration]
            total = sum(w for _, w in parts)
            calibration[name] = [sum(c[i] * w for c, w in parts) / total for i in range(len(CALIBRATION_LEVELS))]
            points[name] = total
        labels = {k: v for r in reports for k, v in r.labels.items()}
        kinds = {k: v for r in reports for k, v in r.kinds.items()}
        return cls(cells=sorted((c for r in reports for c in r.cells), key=lambda c: (c.n_features, c.n_context)),
                   calibration=calibration, calibration_points=points,
                   examples=next((r.examples for r in reports if r.examples), []), labels=labels, kinds=kinds,
                   config=reports[0].config, seconds=sum(r.seconds for r in reports))


# ----------------------------------------------------------------------------------------------------------------
# the text table


def format_table(cells: list[FidelityCell]) -> str:
    """A fixed-width text table (NLL in nats per query point; gaps are the PFN's minus each method's, paired, with
    the standard error where it matters; ``floor`` is the bars' floor; R-hat the largest and ESS the smallest of
    the MCMC references, over the ``mcmc`` datasets they ran on)."""
    names = list(dict.fromkeys(name for c in cells for name in c.references))

    def fmt(v: float | None, spec: str) -> str:
        return "-".rjust(len(format(0.0, spec))) if v is None else format(v, spec)

    def gap(s: MethodScores | None) -> str:
        if s is None or s.gap is None:
            return "-"
        return f"{s.gap:+.3f}" if s.gap_se is None or not math.isfinite(s.gap_se) else f"{s.gap:+.3f}±{s.gap_se:.3f}"

    head = (f"{'d':>2} {'n':>4} | {'pfn':>7} " + " ".join(f"{k:>8}" for k in names) + " | "
            + " ".join(f"{'-' + k:>14}" for k in names) + f" {'floor':>6} | {'cov50':>5} {'cov90':>5} | "
            + f"{'CRPS pfn':>8} " + " ".join(f"{k:>8}" for k in names) + " | "
            + f"{'ms pfn':>6} " + " ".join(f"{k:>8}" for k in names) + f" | {'R-hat':>5} {'ESS':>5} {'mcmc':>4}")
    lines = [head, "-" * len(head)]
    for c in cells:
        refs = [c.references.get(k) for k in names]
        mcmc = [s for s in refs if s is not None and s.max_r_hat is not None]
        r_hats = [s.max_r_hat for s in mcmc]
        ess = [s.min_ess for s in mcmc if s.min_ess is not None]
        lines.append(
            f"{c.n_features:>2} {c.n_context:>4} | {c.pfn.nll:7.3f} "
            + " ".join(fmt(None if s is None else s.nll, "8.3f") for s in refs) + " | "
            + " ".join(f"{gap(s):>14}" for s in refs) + f" {fmt(c.bar_floor, '+6.3f')} | "
            + f"{c.pfn.coverage_50:5.2f} {c.pfn.coverage_90:5.2f} | {c.pfn.crps:8.4f} "
            + " ".join(fmt(None if s is None else s.crps, "8.4f") for s in refs) + " | "
            + f"{c.pfn.ms_per_dataset:6.2f} " + " ".join(fmt(None if s is None else s.ms_per_dataset, "8.1f")
                                                       for s in refs)
            + f" | {fmt(max(r_hats) if r_hats else None, '5.3f')} {fmt(min(ess) if ess else None, '5.0f')}"
            + f" {fmt(max(s.datasets for s in mcmc) if mcmc else None, '4.0f')}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# reports written before methods were named (a flat record per cell, curves keyed by display label)

_LEGACY_NAMES = {"PFN": PFN, "oracle GP": "oracle", "marginal (NUTS)": "marginal", "ML-II GP": "ml2"}
_LEGACY_KINDS = {"oracle": "oracle", "marginal": "marginal", "ml2": "fitted"}


def _legacy_cell(c: dict[str, Any]) -> FidelityCell:
    pfn = MethodScores(datasets=c["n_datasets"], nll=c["pfn_nll"], nll_se=c["pfn_nll_se"], crps=c["pfn_crps"],
                       coverage_50=c["coverage_50"], coverage_90=c["coverage_90"],
                       ms_per_dataset=c["pfn_ms_per_dataset"])
    refs = {"oracle": MethodScores(datasets=c["n_datasets"], nll=c["oracle_nll"], crps=c["oracle_crps"],
                                   ms_per_dataset=c["oracle_ms_per_dataset"], gap=c["gap_to_oracle"],
                                   gap_se=c["gap_to_oracle_se"])}
    if c.get("marginal_datasets"):
        refs["marginal"] = MethodScores(
            datasets=c["marginal_datasets"], nll=c["marginal_nll"], crps=c["marginal_crps"],
            coverage_50=c["marginal_coverage_50"], coverage_90=c["marginal_coverage_90"],
            ms_per_dataset=c["marginal_ms_per_dataset"], gap=c["gap_to_marginal"], gap_se=c["gap_to_marginal_se"],
            max_r_hat=c["marginal_max_r_hat"], min_ess=c["marginal_min_ess"], divergences=c["marginal_divergences"])
    if c.get("ml2_datasets") or c.get("ml2_failures"):
        refs["ml2"] = MethodScores(
            datasets=c["ml2_datasets"], failures=c.get("ml2_failures", 0), nll=c.get("ml2_nll"),
            crps=c.get("ml2_crps"), ms_per_dataset=c.get("ml2_ms_per_dataset"), gap=c.get("gap_to_ml2"),
            gap_se=c.get("gap_to_ml2_se"))
    return FidelityCell(n_features=c["n_features"], n_context=c["n_context"], n_datasets=c["n_datasets"], pfn=pfn,
                        references=refs, bar_floor=c.get("bar_floor"),
                        pfn_ensemble_members=c.get("pfn_ensemble_members", 1))
