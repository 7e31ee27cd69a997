"""``priorfit demo``: the shipped GP model against an exact GP on a small noisy 1-D dataset."""

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


def exact_gp_predictive(reg: PFNRegressor, X: np.ndarray, y: np.ndarray, Xq: np.ndarray):
    """The exact GP of the model's prior kernel, with hyperparameters fitted by ML-II on the same
    normalised data the PFN sees, mapped back to user units: (mean, std)."""
    from priorfit.exact.gp import ml2_fit

    prior = reg.checkpoint_.prior
    to_x = lambda a: torch.as_tensor((a - reg.x_min_) / reg.x_scale_, dtype=torch.float64)  # noqa: E731
    yn = torch.as_tensor((y - reg.y_mean_) / reg.y_scale_, dtype=torch.float64)
    mean, var = ml2_fit(prior, to_x(X), yn, generator=torch.Generator().manual_seed(0)).predict(to_x(Xq))
    return reg.y_mean_ + reg.y_scale_ * mean.numpy(), reg.y_scale_ * np.sqrt(var.numpy())


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
    gp_mean, gp_std = exact_gp_predictive(reg, X, y, grid)
    z = 1.6448536269514722

    show = np.linspace(0, len(grid) - 1, 6).astype(int)
    print(f"{len(X)} noisy observations; predictive mean and central 90% interval")
    print(f"{'x':>7} | {'PFN mean':>9} {'PFN 90% interval':>21} | {'GP mean':>9} {'GP 90% interval':>21}")
    for i in show:
        print(f"{grid[i, 0]:7.2f} | {dist.mean[i]:9.3f} [{q[i, 0]:8.3f}, {q[i, 1]:8.3f}]  | "
              f"{gp_mean[i]:9.3f} [{gp_mean[i] - z * gp_std[i]:8.3f}, {gp_mean[i] + z * gp_std[i]:8.3f}]")
    print("(GP: the exact GP posterior of the model's prior kernel with ML-II hyperparameters)")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.fill_between(grid[:, 0], q[:, 0], q[:, 1], color="C0", alpha=0.25, label="PFN 90% interval")
    ax.plot(grid[:, 0], dist.mean, color="C0", label="PFN mean")
    ax.plot(grid[:, 0], gp_mean - z * gp_std, "--", color="C1", lw=1)
    ax.plot(grid[:, 0], gp_mean + z * gp_std, "--", color="C1", lw=1, label="exact GP (ML-II) 90% interval")
    ax.plot(grid[:, 0], gp_mean, color="C1", lw=1.5, label="exact GP (ML-II) mean")
    ax.scatter(X[:, 0], y, color="k", zorder=3, s=18, label="data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("priorfit demo: shipped PFN vs exact GP")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    print(f"wrote {out}")
    return dict(x=grid[show, 0], pfn_mean=dist.mean[show], pfn_q=q[show], gp_mean=gp_mean[show], gp_std=gp_std[show])
