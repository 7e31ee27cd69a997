"""Seconds per dataset of the BNN PFN against exact inference on its own prior, timed like for like.

For each (d, n) cell, on the first ``--datasets`` datasets that ``priorfit evaluate`` scores there (same prior, seed
and query count, so the same datasets), one process times, one after the other:

- the PFN through ``PFNRegressor`` (fit + ``predict_distribution`` on the raw data, as a user calls it);
- the tempered-SMC reference the fidelity report uses (``bnn_smc_predictive``: 4 runs x 512 particles);
- NUTS over the weights (``bnn_marginal_predictive``: 2 chains x (200 warm-up + 200 draws), the settings of the
  earlier NUTS report), with its R-hat, since a NUTS time means little if its chains did not mix.

Each method first runs once on an extra dataset of the cell (JAX compiles its sampler per data size; the PFN
warms up), so the times are steady-state seconds per dataset, compilation excluded for every method alike. Run it
pinned to one core (``taskset -c 0``) with nothing else running, so that JAX's and PyTorch's thread pools have
one core each alike. Writes ``--out``.json and .txt: per cell, the median seconds of each method, and the ratios;
the JSON also holds each timed dataset's NLL per method and R-hat, a cross-check of SMC against NUTS where NUTS
mixed.

    taskset -c 0 python benchmarks/bnn_speed.py bnn --out benchmarks/results/bnn_speed
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from priorfit.atomic import atomic_write_json, atomic_write_text
from priorfit.estimators import PFNRegressor
from priorfit.evaluate.config import EvaluateConfig
from priorfit.exact.bnn import bnn_marginal_predictive, bnn_smc_predictive
from priorfit.models import load_model
from priorfit.seeding import dataset_seed


def _seconds(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint path or shipped model name (a BNN-prior model)")
    parser.add_argument("--features", default="1,2")
    parser.add_argument("--context", default="2,4,8,16,32,64")
    parser.add_argument("--datasets", type=int, default=2, help="timed datasets per cell (default 2)")
    parser.add_argument("--seed", type=int, default=EvaluateConfig().seed)
    parser.add_argument("--cell-datasets", type=int, default=64,
                        help="the fidelity run's --datasets (its datasets per cell: the batch they are drawn in)")
    parser.add_argument("--out", required=True, help="results path without extension")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = load_model(args.model)
    prior = ckpt.prior
    if type(prior).__name__ != "BNNPrior":
        raise SystemExit(f"model: expected a model trained on a BNNPrior, got {type(prior).__name__}")
    config = EvaluateConfig()
    cells = []
    for d in (int(v) for v in args.features.split(",")):
        for n in (int(v) for v in args.context.split(",")):
            generator = torch.Generator().manual_seed(dataset_seed(args.seed, d, n))
            batch = prior.sample(args.cell_datasets, n + config.n_queries, generator, n_features=d, n_context=n)
            x, y = batch.x.double(), batch.y.double()
            k = args.datasets
            timings: dict[str, list[float]] = {"pfn": [], "smc": [], "nuts": []}
            r_hats, nlls = [], []
            for i in [k] + list(range(k)):  # dataset k: the warm-up run, not timed
                xc, yc, xq = x[i, :n], y[i, :n], x[i, n:]

                def pfn() -> object:
                    return PFNRegressor(ckpt).fit(xc.numpy(), yc.numpy()).predict_distribution(xq.numpy())

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s_pfn, pfn_pred = _seconds(pfn)
                    s_smc, smc = _seconds(lambda: bnn_smc_predictive(prior, xc, yc, xq, seed=args.seed + i))
                    s_nuts, nuts = _seconds(lambda: bnn_marginal_predictive(
                        prior, xc, yc, xq, num_warmup=200, num_samples=200, num_chains=2, seed=args.seed + i))
                if i == k:
                    continue
                for name, s in (("pfn", s_pfn), ("smc", s_smc), ("nuts", s_nuts)):
                    timings[name].append(s)
                r_hats.append(float(nuts.diagnostics["max_r_hat"]))
                yq = y[i, n:].numpy()
                nlls.append({"pfn": float(-pfn_pred.log_prob(yq).mean()), "smc": float(-smc.log_prob(yq).mean()),
                             "nuts": float(-nuts.log_prob(yq).mean()),
                             "smc_max_r_hat": float(smc.diagnostics["max_r_hat"]),
                             "nuts_max_r_hat": r_hats[-1]})
            med = {name: statistics.median(v) for name, v in timings.items()}
            cell = dict(d=d, n=n, datasets=k, seconds=med, all_seconds=timings, nuts_max_r_hat=max(r_hats), nll=nlls,
                        smc_over_pfn=med["smc"] / med["pfn"], nuts_over_pfn=med["nuts"] / med["pfn"])
            cells.append(cell)
            print(f"d={d} n={n}: pfn {1000 * med['pfn']:.1f} ms, smc {med['smc']:.2f} s "
                  f"({cell['smc_over_pfn']:.0f}x), nuts {med['nuts']:.2f} s ({cell['nuts_over_pfn']:.0f}x, "
                  f"R-hat {cell['nuts_max_r_hat']:.2f})", flush=True)
    lines = [f"{'d':>2} {'n':>4} | {'PFN ms':>7} {'SMC s':>7} {'NUTS s':>7} | {'SMC/PFN':>8} {'NUTS/PFN':>8} | "
             f"{'NUTS R-hat':>10}"]
    for c in cells:
        s = c["seconds"]
        lines.append(f"{c['d']:>2} {c['n']:>4} | {1000 * s['pfn']:7.1f} {s['smc']:7.2f} {s['nuts']:7.2f} | "
                     f"{c['smc_over_pfn']:8.0f} {c['nuts_over_pfn']:8.0f} | {c['nuts_max_r_hat']:10.2f}")
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    command = "python " + " ".join(sys.argv)
    atomic_write_json(out.with_suffix(".json"), dict(command=command, model=str(args.model), cells=cells))
    atomic_write_text(out.with_suffix(".txt"), f"# {command}\n" + text + "\n")


if __name__ == "__main__":
    main()
