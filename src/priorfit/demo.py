"""``priorfit demo``: the shipped default model against exact Bayes under its own prior (NUTS) on a small noisy
1-D dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from priorfit.estimators import PFNRegressor


def demo_data(seed: int = 0, n: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """A small noisy 1-D regression problem in 'user units' (x in [0, 10])."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 10, n))
    y = 2.0 * np.sin(0.8 * x) + 0.3 * x + rng.normal(0, 0.4, n)
    return x[:, None], y


def exact_predictive(reg: PFNRegressor, X: np.ndarray, y: np.ndarray, Xq: np.ndarray):
    """The exact Bayes posterior predictive of the model's prior (its marginal reference: hyperparameters
    integrated out by NUTS) on the same normalised data the PFN sees, mapped back to user units: (label, mean,
    5% and 95% quantiles)."""
    import warnings

    from priorfit.exact.reference import ReferenceKind, Task

    prior = reg.checkpoint_.prior
    reference = next(r for r in prior.references() if r.kind is ReferenceKind.MARGINAL)
    to_x = lambda a: torch.as_tensor((a - reg.x_min_) / reg.x_scale_, dtype=torch.float64)  # noqa: E731
    yn = torch.as_tensor((y - reg.y_mean_) / reg.y_scale_, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX's and NumPyro's notices
        result = reference.predict(Task(to_x(X), yn, to_x(Xq)), 0)
    if result.failed:
        raise RuntimeError(f"the exact reference ({reference.label}) failed on the demo data")
    pred = result.predictive
    q = pred.quantile([0.05, 0.95])
    back = lambda v: reg.y_mean_ + reg.y_scale_ * np.asarray(v)  # noqa: E731
    return reference.label, back(pred.mean), back(q[:, 0]), back(q[:, 1])


def run_demo(model: str | None = None, out: str | Path = "priorfit_demo.png", seed: int = 0) -> dict:
    """Fit, print a comparison table, write a PNG. Returns the numbers it printed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = demo_data(seed)
    reg = PFNRegressor(model=model).fit(X, y)
    grid = np.linspace(X.min(), X.max(), 200)[:, None]
    dist = reg.predict_distribution(grid)
    q = dist.quantile([0.05, 0.95])
    label, gp_mean, gp_lo, gp_hi = exact_predictive(reg, X, y, grid)

    show = np.linspace(0, len(grid) - 1, 6).astype(int)
    print(f"{len(X)} noisy observations; predictive mean and central 90% interval")
    print(f"{'x':>7} | {'PFN mean':>9} {'PFN 90% interval':>21} | {'exact mean':>10} {'exact 90% interval':>21}")
    for i in show:
        print(f"{grid[i, 0]:7.2f} | {dist.mean[i]:9.3f} [{q[i, 0]:8.3f}, {q[i, 1]:8.3f}]  | "
              f"{gp_mean[i]:9.3f} [{gp_lo[i]:8.3f}, {gp_hi[i]:8.3f}]")
    print(f"(exact: Bayes under the model's own prior, {label})")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.fill_between(grid[:, 0], q[:, 0], q[:, 1], color="C0", alpha=0.25, label="PFN 90% interval")
    ax.plot(grid[:, 0], dist.mean, color="C0", label="PFN mean")
    ax.plot(grid[:, 0], gp_lo, "--", color="C1", lw=1)
    ax.plot(grid[:, 0], gp_hi, "--", color="C1", lw=1, label=f"exact Bayes ({label}) 90% interval")
    ax.plot(grid[:, 0], gp_mean, color="C1", lw=1.5, label=f"exact Bayes ({label}) mean")
    ax.scatter(X[:, 0], y, color="k", zorder=3, s=18, label="data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("priorfit demo: shipped PFN vs exact Bayes")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    print(f"wrote {out}")
    return dict(x=grid[show, 0], pfn_mean=dist.mean[show], pfn_q=q[show], exact_mean=gp_mean[show],
                exact_q=np.stack([gp_lo[show], gp_hi[show]], axis=-1))
