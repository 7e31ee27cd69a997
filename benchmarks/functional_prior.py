"""GP-matched functional priors: how far a BNN's prior over functions is from a target GP's, before and after
fitting its per-layer scales (:mod:`priorfit.priors.functional`).

Target: a GP with a Matérn-5/2 kernel, lengthscale 0.3, outputscale 1, on [0, 1] (d = 1). Networks: width 32,
ReLU and tanh, depth 2 and 4, read 2x - 1. Compared: N(0, 1) weights and biases (no fan-in scaling), fan-in
scaled weights N(0, 1/fan-in) with N(0, 1) biases (the fit's starting point), and the fitted scales. Distances
at 32 uniform measurement points, averaged over 10 measurement sets shared by all priors: the assignment W2 of
512 draws per prior (what the fit minimises) and the sliced W2 of 8192 draws over 256 directions, each beside its
floor (two independent draws of the GP). Writes ``benchmarks/results/functional_prior.json`` and ``.txt`` and
``docs/functional_prior/samples.png`` (function draws of the GP, the fan-in prior and the fitted one).

    python benchmarks/functional_prior.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.config import to_dict
from priorfit.priors import Fixed, GPPrior, Matern, Scale
from priorfit.priors.bnn import BNNPrior
from priorfit.priors.functional import bnn_functions, fit_functional_prior, gp_functions, wasserstein, _log_scales

ROOT = Path(__file__).parent.parent
TARGET = GPPrior(kernel=Scale(Matern(lengthscale=Fixed(0.3)), outputscale=Fixed(1.0)), noise_std=Fixed(0.1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1000, help="fit steps")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "functional_prior"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, fitted = [], {}
    for activation in ("relu", "tanh"):
        for depth in (2, 4):
            common = dict(width=32, depth=depth, activation=activation)
            start = BNNPrior.with_scales(1.0, 1.0, fan_in=True, **common)
            priors = {"normal": BNNPrior.with_scales(1.0, 1.0, fan_in=False, **common), "fan_in": start}
            t = time.perf_counter()
            fit = fit_functional_prior(start, TARGET, steps=args.steps)
            seconds = time.perf_counter() - t
            priors["fitted"] = fit.prior
            fitted[(activation, depth)] = fit.prior
            scores = {name: wasserstein(prior, TARGET) for name, prior in priors.items()}
            row = dict(activation=activation, depth=depth, fit_seconds=seconds,
                       weight_std=[hp.value for hp in fit.prior.weight_std],
                       bias_std=[hp.value for hp in fit.prior.bias_std],
                       distances={name: vars(s) for name, s in scores.items()},
                       sliced_ratio_vs_normal=scores["fitted"].sliced / scores["normal"].sliced,
                       sliced_ratio_vs_fan_in=scores["fitted"].sliced / scores["fan_in"].sliced,
                       w2_ratio_vs_normal=scores["fitted"].w2 / scores["normal"].w2,
                       w2_ratio_vs_fan_in=scores["fitted"].w2 / scores["fan_in"].w2,
                       prior=to_dict(fit.prior))
            rows.append(row)
            print(f"{activation} depth {depth}: " + "  ".join(
                f"{n} W2 {s.w2:.2f} sliced {s.sliced:.3f}" for n, s in scores.items())
                + f"  (floor {scores['fitted'].w2_floor:.2f} / {scores['fitted'].sliced_floor:.3f})", flush=True)
    data = dict(command="python benchmarks/functional_prior.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                target=to_dict(TARGET), width=32, points=32, threads=args.threads, steps=args.steps, rows=rows)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), data)
    atomic_write_text(out.with_suffix(".txt"), table(data))
    plot(fitted[("relu", 2)], fitted[("tanh", 2)], ROOT / "docs" / "functional_prior" / "samples.png")
    print(table(data))
    return 0


def table(data: dict) -> str:
    lines = ["Distance to the target GP (Matérn-5/2, lengthscale 0.3) at 32 measurement points, mean of 10 sets",
             "(W2: assignment, 512 draws; sliced: 8192 draws, 256 directions; floor: GP vs GP)", "",
             f"{'net':>10} {'N(0,1) W2':>10} {'sliced':>8} {'fan-in W2':>10} {'sliced':>8} {'fitted W2':>10} "
             f"{'sliced':>8} {'floor':>12} {'sliced fitted/N(0,1)':>21} {'/fan-in':>8}"]
    for r in data["rows"]:
        d = r["distances"]
        lines.append(f"{r['activation']:>6} L={r['depth']} {d['normal']['w2']:>10.2f} {d['normal']['sliced']:>8.3f} "
                     f"{d['fan_in']['w2']:>10.2f} {d['fan_in']['sliced']:>8.3f} {d['fitted']['w2']:>10.2f} "
                     f"{d['fitted']['sliced']:>8.3f} {d['fitted']['w2_floor']:>6.2f}/{d['fitted']['sliced_floor']:.3f} "
                     f"{r['sliced_ratio_vs_normal']:>21.3f} {r['sliced_ratio_vs_fan_in']:>8.3f}")
    return "\n".join(lines) + "\n"


def plot(relu: BNNPrior, tanh: BNNPrior, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]
    g = torch.Generator().manual_seed(3)
    panels = [("GP (Matérn-5/2, lengthscale 0.3)", gp_functions(TARGET, x, 8, g))]
    for title, prior in (("ReLU depth 2, fan-in N(0, 1/fan-in)", BNNPrior.with_scales(1.0, 1.0, width=32)),
                         ("ReLU depth 2, fitted to the GP", relu),
                         ("tanh depth 2, fitted to the GP", tanh)):
        log_w, log_b = _log_scales(prior)
        with torch.no_grad():
            panels.append((title, bnn_functions(prior, log_w, log_b, x, 8, g)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), sharey=True)
    for ax, (title, f) in zip(axes, panels):
        ax.plot(x[:, 0], f.T, lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x")
    axes[0].set_ylim(-3.5, 3.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
