"""What ``priorfit bo`` writes: the history as CSV and the best value so far as a PNG plot."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from priorfit.atomic import atomic_save_figure, atomic_write_text
from priorfit.bo.optimizer import OptimizeResult

__all__ = ["history_csv", "write_report"]


def history_csv(result: OptimizeResult) -> str:
    """One row per trial: its number, the parameters, the value (empty if it failed), the best value so far, the
    error, and the seconds spent suggesting and evaluating it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", *result.space.names, "value", "best_so_far", "error", "suggest_seconds",
                     "evaluate_seconds"])
    best = result.best_so_far()
    for i, (trial, b) in enumerate(zip(result.history, best), start=1):
        def number(v: float) -> str:
            return "" if not math.isfinite(v) else repr(float(v))
        writer.writerow([i, *(repr(float(v)) for v in trial.x), number(trial.y), number(b), trial.error or "",
                         number(trial.suggest_seconds), number(trial.evaluate_seconds)])
    return out.getvalue()


def write_report(result: OptimizeResult, out: str | Path, title: str) -> list[Path]:
    """Write ``out/history.csv`` and ``out/best_so_far.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "history.csv", out / "best_so_far.png"
    atomic_write_text(csv_path, history_csv(result))
    fig, ax = plt.subplots(figsize=(6, 4))
    trials = np.arange(1, result.n_evaluations + 1)
    values = np.array([t.y for t in result.history])
    ok = np.isfinite(values)
    ax.plot(trials[ok], values[ok], ".", color="0.6", label="evaluations")
    ax.step(trials, result.best_so_far(), where="post", color="C0", label="best so far")
    failed = trials[~ok]
    if len(failed):
        worst = (np.nanmin(values) if result.maximize else np.nanmax(values)) if ok.any() else 0.0
        ax.plot(failed, np.full(len(failed), worst), "x", color="C3", label="failed (at the worst value)")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, png_path)
    return [csv_path, png_path]
