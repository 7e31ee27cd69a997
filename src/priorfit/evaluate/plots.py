"""The fidelity report's plots: NLL and paired gaps per context size, calibration curves, 1-D examples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from priorfit.atomic import atomic_save_figure
from priorfit.evaluate.config import CALIBRATION_LEVELS
from priorfit.evaluate.report import PFN, FidelityCell, FidelityReport, MethodScores

__all__ = ["plot_report"]


def _scores(cell: FidelityCell, name: str) -> MethodScores | None:
    return cell.pfn if name == PFN else cell.references.get(name)


def _fitted(report: FidelityReport) -> set[str]:
    """Plug-in baselines (ML-II), whose NLL explodes on small contexts: kept out of the axis limits."""
    return {name for name, kind in report.kinds.items() if kind == "fitted"}


_COLORS = {PFN: "C0", "oracle": "C2", "marginal": "C3", "ml2": "C1"}


def _color(name: str) -> str | None:
    return _COLORS.get(name)  # other references take matplotlib's next colour


def plot_report(report: FidelityReport, out_dir: str | Path) -> list[Path]:
    """Write nll_vs_context.png (top: NLL per context size and d, every method; bottom: the PFN's paired gap to
    each method with its standard error), calibration.png (observed vs nominal
    coverage of central intervals, pooled over the cells) and, when the report has 1-D examples, examples.png.
    Each file is written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    names = [PFN] + list(dict.fromkeys(name for c in report.cells for name in c.references))
    fitted = _fitted(report)
    ds = sorted({c.n_features for c in report.cells})
    fig, axes = plt.subplots(2, len(ds), figsize=(4 * len(ds), 6.4), squeeze=False, sharey=False)
    for ax, d in zip(axes[0], ds):
        cells = [c for c in report.cells if c.n_features == d]
        ns = [c.n_context for c in cells]
        shown = []
        for name in names:
            pts = [(n, _scores(c, name).nll) for n, c in zip(ns, cells)
                   if _scores(c, name) is not None and _scores(c, name).nll is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", color=_color(name), label=report.labels.get(name, name), ms=3)
                if name not in fitted:
                    shown += [v for _, v in pts]
        # a fitted baseline's NLL explodes on small contexts (overfitted hyperparameters): keep the others readable
        lo, hi = min(shown), max(shown)
        pad = 0.15 * (hi - lo) + 0.05
        ax.set_ylim(lo - pad, hi + 2 * pad)
        for name in fitted:
            off = [n for n, c in zip(ns, cells) if _scores(c, name) is not None and _scores(c, name).nll is not None
                   and _scores(c, name).nll > hi + 2 * pad]
            if off:
                ax.text(0.02, 0.03, f"{report.labels.get(name, name)} off scale at n = {', '.join(map(str, off))}",
                        transform=ax.transAxes, ha="left", va="bottom", fontsize=7, color=_color(name))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context points n")
        ax.set_title(f"d = {d}")
    # The slow methods score a subset of each cell's datasets, so their NLLs above are means over fewer datasets;
    # the paired gaps below compare the PFN with each method on the same datasets.
    for ax, d in zip(axes[1], ds):
        cells = [c for c in report.cells if c.n_features == d]
        shown = [0.0]
        refs = [name for name in names if name != PFN]
        for j, name in enumerate(refs):
            shift = 1.0 + 0.03 * (j - (len(refs) - 1) / 2)  # side by side, so that the error bars stay apart
            pts = [(c.n_context * shift, c.references[name].gap, c.references[name].gap_se) for c in cells
                   if name in c.references and c.references[name].gap is not None]
            if pts:
                n, gap, se = zip(*pts)
                se = [math.nan if e is None else e for e in se]
                ax.errorbar(n, gap, yerr=se, fmt="o-", ms=3, capsize=2, color=_color(name),
                            label=f"PFN - {report.labels.get(name, name)}")
                if name not in fitted:
                    shown += [g + e for g, e in zip(gap, se) if math.isfinite(e)] + list(gap)
        floor = [(c.n_context, c.bar_floor) for c in cells if c.bar_floor is not None]
        if floor:  # the part of the gap to the oracle that the model's bars alone set
            ax.plot(*zip(*floor), "--", color=_color("oracle"), lw=1, label="bars' floor (oracle on the bars)")
        hi = max(shown)
        ax.set_ylim(min(-0.05, -0.25 * hi), 1.15 * hi + 0.02)
        ax.axhline(0, color="k", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context points n")
    axes[0][0].set_ylabel("NLL per held-out point (nats)")
    axes[0][0].legend(fontsize=8)
    axes[1][0].set_ylabel("PFN's NLL gap, paired (± s.e.)")
    axes[1][0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(atomic_save_figure(fig, out_dir / "nll_vs_context.png"))

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name, observed in report.calibration.items():
        ax.plot(CALIBRATION_LEVELS, observed, "o-", ms=3, color=_color(name), label=report.labels.get(name, name))
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(atomic_save_figure(fig, out_dir / "calibration.png"))

    if report.examples:
        fig, axes = plt.subplots(1, len(report.examples), figsize=(4.5 * len(report.examples), 3.4),
                                 squeeze=False)
        for ax, ex in zip(axes[0], report.examples):
            grid = np.asarray(ex["grid"])
            for name in [n for n in names if n != PFN] + [PFN]:  # the PFN on top
                if name in ex:
                    band = ex[name]
                    lines = ax.plot(grid, band["mean"], color=_color(name), lw=1.2, label=report.labels.get(name, name))
                    ax.fill_between(grid, band["lo"], band["hi"], color=lines[0].get_color(), alpha=0.12)
            ax.plot(ex["x"], ex["y"], "k.", ms=5)
            ax.set_title(f"n = {ex['n_context']} (90% bands)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        paths.append(atomic_save_figure(fig, out_dir / "examples.png"))
    return paths
