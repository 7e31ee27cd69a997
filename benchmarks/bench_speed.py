"""Speed protocol of DESIGN.md: the shipped PFN against exact inference, per dataset, in one process run.

  python benchmarks/bench_speed.py

For n in {10, 100, 1000} context points and m = 1000 queries (d = 1, datasets from the gp_default prior), the
median wall time per dataset (PFN and exact GP: over --rounds passes through --repeats datasets) of
- PFN: one forward pass (context encoding + 1000 queries) and the predictive mean and 5%/95% quantiles;
- exact GP with the true hyperparameters (closed form, one Cholesky);
- ML-II: GPyTorch fit (L-BFGS, 3 restarts) + predict, as priorfit.evaluate runs it;
- NUTS: hyperparameters marginalised by NumPyro NUTS (priorfit.exact.marginal_predictive, its defaults: 2 chains
  x (500 warm-up + 500 draws)) + the mixture's predictive at the queries: the median over --nuts-repeats datasets
  after a first call has compiled it (that call's time, compilation included, is in the note). At n = 1000 a run
  would take hours here, so it is NOT run: the row gives the measured seconds of one gradient of the NUTS
  potential at n = 1000 times the leapfrog steps of the median n = 100 run, labelled as an estimate.
The gp_default model was trained on n <= 128: at n = 1000 only its cost is meaningful, not its predictions.
With --ensemble 2,4 the PFN is also timed averaged over that many symmetry transforms of the data
(priorfit.model.ensemble; d = 1 has 4), and with --bfloat16 in bfloat16 (priorfit.model.precision), each with its
ratios to ML-II and NUTS.
Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from report_common import cpu_name

from priorfit.estimators import load_model
from priorfit.exact.gp import gp_predictive, ml2_fit
from priorfit.exact.marginal import marginal_predictive
from priorfit.model.ensemble import SymmetryEnsemble, encode, predict
from priorfit.model.precision import native_bfloat16

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _variant(key) -> str:
    return "PFN in bfloat16" if key == "bfloat16" else f"ensemble of {key}"


def _median_time(fn, datasets: int, rounds: int) -> float:
    """The median seconds of ``fn(i)`` over `rounds` passes through datasets 0 .. `datasets` - 1 (a short call's
    time moves with the machine's other load, so it is taken many times)."""
    return statistics.median(_timed(lambda: fn(i)) for _ in range(rounds) for i in range(datasets))


def _seconds_per_gradient(prior, x, y, repeats: int = 3) -> float:
    """Seconds of one value-and-gradient of the NUTS potential (what each leapfrog step costs) on one dataset."""
    import jax
    import jax.numpy as jnp

    from priorfit.exact.marginal import _param_table, _potential_fn_gen, _x64
    from priorfit.priors.hyperpriors import Fixed

    table = _param_table(prior, x.shape[1])
    with _x64():
        potential = _potential_fn_gen(prior.kernel, table, float(prior.jitter))(
            jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
        z = {name: jnp.zeros(shape) for name, shape, hp in table if not isinstance(hp, Fixed)}
        grad = jax.jit(jax.value_and_grad(potential))
        jax.block_until_ready(grad(z))
        t = time.perf_counter()
        for _ in range(repeats):
            out = grad(z)
        jax.block_until_ready(out)
    return (time.perf_counter() - t) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", default="10,100,1000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="datasets timed per n (PFN, exact GP, ML-II)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the PFN and the exact GP")
    parser.add_argument("--rounds", type=int, default=7, help="passes through the datasets when timing the fast "
                        "methods (PFN, exact GP), whose median is reported")
    parser.add_argument("--nuts-repeats", type=int, default=3, help="datasets NUTS is timed on per n <= 100 "
                        "(its time varies with each dataset's leapfrog steps)")
    parser.add_argument("--ensemble", default="", help="symmetry-ensemble sizes to time too, e.g. 2,4")
    parser.add_argument("--bfloat16", action="store_true", help="time the plain PFN in bfloat16 too "
                        "(priorfit.model.precision; its entry is 'bfloat16' in pfn_variants)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_model("gp_default")
    prior, model, bar = ckpt.prior, ckpt.model, ckpt.bar_distribution
    levels = torch.tensor([0.05, 0.95], dtype=torch.float64)
    rows, steps = [], {}
    for n in (int(v) for v in args.context.split(",")):
        batch = prior.sample(max(args.repeats, args.nuts_repeats) + 1, n + args.queries,
                             torch.Generator().manual_seed(n), n_features=1)
        x, y = batch.x, batch.y

        def pfn(i: int, ensemble: SymmetryEnsemble | None = None, precision: str = "float32") -> None:
            with torch.inference_mode():
                context = encode(model, x[i:i + 1, :n].float(), y[i:i + 1, :n].float(), ensemble, precision)
                logits = predict(model, context, x[i:i + 1, n:].float(), ensemble, precision)[0].double()
                bar.mean(logits), bar.quantile(logits, levels)

        def exact(i: int) -> None:
            params = batch.params.map(lambda t: t[i:i + 1])
            gp_predictive(prior, params, x[i:i + 1, :n], y[i:i + 1, :n], x[i:i + 1, n:])

        def ml2(i: int) -> None:
            ml2_fit(prior, x[i, :n], y[i, :n], restarts=3, generator=torch.Generator().manual_seed(i)).predict(x[i, n:])

        pfn(args.repeats)  # warm-up
        variants: dict = {}
        for size in (int(v) for v in args.ensemble.split(",") if v):
            ensemble = SymmetryEnsemble.create(prior.symmetries, bar, 1, size)
            pfn(args.repeats, ensemble)
            variants[len(ensemble)] = _median_time(lambda i: pfn(i, ensemble), args.repeats, args.rounds)
        if args.bfloat16:
            pfn(args.repeats, precision="bfloat16")
            variants["bfloat16"] = _median_time(lambda i: pfn(i, precision="bfloat16"), args.repeats, args.rounds)
        times = {"PFN": _median_time(pfn, args.repeats, args.rounds),
                 "exact GP (true hyperparameters)": _median_time(exact, args.repeats, args.rounds)}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # GPyTorch's small fits and the mixture's predictive run faster on one thread
        times["ML-II fit + predict"] = statistics.median(_timed(lambda: ml2(i)) for i in range(args.repeats))
        diag: dict = {}

        def nuts(i: int) -> None:
            diag.update(marginal_predictive(prior, x[i, :n], y[i, :n], x[i, n:]).diagnostics)

        nuts_note = "measured, XLA compilation included"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if n <= 100:
                first = _timed(lambda: nuts(0))
                runs = []
                for i in range(1, args.nuts_repeats + 1):
                    runs.append((_timed(lambda: nuts(i)), diag.get("total_leapfrog_steps")))
                seconds, steps[n] = sorted(runs)[len(runs) // 2]  # the median run, and its leapfrog steps
                times["NUTS marginal"] = seconds
                nuts_note = (f"measured, compiled before: the median of {len(runs)} datasets "
                             f"({', '.join(f'{t:.1f}' for t, _ in runs)} s; the first, compilation included, "
                             f"{first:.1f} s)")
            else:
                per_grad = _seconds_per_gradient(prior, x[0, :n], y[0, :n])
                known = max((k for k in steps if steps[k]), default=None)
                times["NUTS marginal"] = per_grad * steps[known]
                nuts_note = (f"ESTIMATE: {per_grad:.3f} s per gradient at n={n} (measured) x {steps[known]} leapfrog "
                             f"steps (the n={known} run's)")
        torch.set_num_threads(threads)
        row = dict(n_context=n, n_queries=args.queries, seconds=times,
                   speedup_of_pfn={k: v / times["PFN"] for k, v in times.items() if k != "PFN"},
                   nuts=nuts_note, nuts_max_r_hat=diag.get("max_r_hat") if n <= 100 else None,
                   pfn_variants={k: dict(seconds=v, speedup_vs_ml2=times["ML-II fit + predict"] / v,
                                         speedup_vs_nuts=times["NUTS marginal"] / v) for k, v in variants.items()})
        rows.append(row)
        print(f"n={n}: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in times.items()) + f" (NUTS: {nuts_note})"
              + " | PFN speed-up: " + ", ".join(f"{k} {v:.0f}x" for k, v in row["speedup_of_pfn"].items())
              + "".join(f" | {_variant(k)}: {e['seconds'] * 1000:.1f} ms, {e['speedup_vs_ml2']:.1f}x ML-II, "
                        f"{e['speedup_vs_nuts']:.0f}x NUTS" for k, e in row["pfn_variants"].items()),
              flush=True)
    out = ROOT / "benchmarks" / "results" / "speed.json"
    out.write_text(json.dumps(dict(
        command="python " + " ".join(shlex.quote(a) for a in sys.argv),
        machine=platform.processor() or platform.machine(), cpu=cpu_name(), native_bfloat16=native_bfloat16(),
        torch_threads=args.threads, rows=rows), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
