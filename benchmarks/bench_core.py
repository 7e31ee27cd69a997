"""Core benchmark (issue 2): priorfit beside the naive reference PFN, same prior, same model size, one session.

Prior: 1-D GP, RBF lengthscale 0.2, outputscale 1, noise std 0.1, x ~ U[0, 1]; 64 points per dataset;
model d_model 256, 4 layers, 4 heads, feed-forward 512.

  throughput  datasets/s of training, the reference script and priorfit alternated (A B A B)
  fidelity    priorfit trained for --minutes on 2 cores; NLL per query at 32 context points on the
              reference's own evaluation set (500 datasets, seed 2024) against the exact GP
  latency     1000 queries from 100 context points: priorfit (encode + predict), the reference, exact GP;
              and the time per query with a cached context for m = 1 ... 1000 queries asked at once

Usage:
  python benchmarks/bench_core.py all --reference ../shared/reference/naive_pfn.py
  python benchmarks/bench_core.py throughput|fidelity|latency ...
Writes benchmarks/results/core.json (merging with what is there) and prints the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from priorfit.atomic import atomic_write_text
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.priors.gp import GPPrior
from priorfit.training import TrainConfig, train

RESULTS = Path(__file__).parent / "results" / "core.json"
MODEL = ModelConfig(d_model=256, n_layers=4, n_heads=4, d_ff=512, max_features=1, n_bars=1000)
PRIOR = GPPrior.fixed_rbf(lengthscale=0.2, outputscale=1.0, noise_std=0.1)


def load_reference(path: str):
    spec = importlib.util.spec_from_file_location("naive_pfn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save(section: str, figures: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = figures
    atomic_write_text(RESULTS, json.dumps(data, indent=2, sort_keys=True))
    print(json.dumps({section: figures}, indent=2))


def reference_throughput(path: str, minutes: float) -> float:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, path, "train", "--minutes", str(minutes), "--eval_every_min", "1000", "--out", out],
            capture_output=True, text=True, check=True,
        )
    match = re.search(r"FINAL .* datasets/s=([0-9.]+)", proc.stdout)
    return float(match.group(1))


def priorfit_throughput(seconds: float, lr: float, seed: int = 0) -> float:
    """Datasets/s of priorfit's training loop (same batch 64, 64 points, context size uniform on 1..63)."""
    torch.set_num_threads(2)
    config = TrainConfig(steps=100_000, batch_size=64, n_points=64, min_context=1, max_context=63, lr=lr,
                         eval_every=10**9, checkpoint_every=10**9, border_datasets=1000, seed=seed)
    # One call per time slice: run `stop_after` steps sized from a short calibration.
    with tempfile.TemporaryDirectory() as out:
        probe = train(PRIOR, MODEL, config, out, resume=False, progress=False, stop_after=5)
        steps = max(10, int(seconds * probe.datasets_per_second / 64))
        t = time.perf_counter()
        result = train(PRIOR, MODEL, config, out + "/b", resume=False, progress=False, stop_after=steps)
        return result.step * 64 / (time.perf_counter() - t)


def cmd_throughput(args) -> None:
    ref, ours = [], []
    for _ in range(args.rounds):
        ref.append(reference_throughput(args.reference, args.throughput_minutes))
        ours.append(priorfit_throughput(args.throughput_minutes * 60, lr=args.lr))
        print(f"reference {ref[-1]:.1f} datasets/s, priorfit {ours[-1]:.1f} datasets/s", flush=True)
    save("throughput", dict(
        reference_datasets_per_s=ref, priorfit_datasets_per_s=ours,
        ratio_median=float(np.median(np.array(ours) / np.array(ref))),
        note="priorfit figure includes prior sampling, border setup and the wall time of train() calls",
        minutes_per_run=args.throughput_minutes,
    ))


def cmd_fidelity(args) -> None:
    torch.set_num_threads(2)
    ref = load_reference(args.reference)
    rate = priorfit_throughput(20, lr=args.lr)
    steps = int(rate * args.minutes * 60 / args.batch * 0.97)
    config = TrainConfig(steps=steps, batch_size=args.batch, n_points=64, min_context=1, max_context=63,
                         lr=args.lr, eval_every=max(1, steps // 5), eval_datasets=128, eval_context=(32,),
                         checkpoint_every=max(1, steps // 5), border_datasets=4000, seed=args.seed)
    out = Path(args.out)
    t = time.perf_counter()
    result = train(PRIOR, MODEL, config, out, resume=False, progress=not args.quiet)
    minutes = (time.perf_counter() - t) / 60
    from priorfit.checkpoint import load_checkpoint

    ckpt = load_checkpoint(result.checkpoint)
    cells = {}
    for n_ctx in (8, 32, 63):
        x, y, _ = ref.make_eval_set(500, n_ctx, 64 - n_ctx if n_ctx < 64 else 32, seed=2024 if n_ctx == 32 else 7 + n_ctx)
        exact = ref.reference_nlls(ref.Bar(ref.make_borders()), (x, y, n_ctx))["gp"]
        with torch.no_grad():
            logits = ckpt.model(x[:, :n_ctx], y[:, :n_ctx, 0], x[:, n_ctx:])
            pfn = float(ckpt.bar_distribution.nll(logits, y[:, n_ctx:, 0]).mean())
        cells[str(n_ctx)] = dict(pfn_nll=pfn, exact_gp_nll=exact, gap=pfn - exact)
        print(f"n_context={n_ctx}: priorfit NLL {pfn:.4f}, exact GP {exact:.4f}, gap {pfn - exact:+.4f}")
    save("fidelity", dict(model=dataclasses.asdict(MODEL), train_minutes=minutes, steps=steps, batch_size=args.batch, lr=args.lr,
                          n_bars=MODEL.n_bars, datasets_per_s=result.datasets_per_second, cells=cells,
                          history=result.history))


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


@torch.inference_mode()
def cmd_latency(args) -> None:
    torch.set_num_threads(2)
    ref = load_reference(args.reference)
    from priorfit.exact.gp import gp_predictive
    from priorfit.model.bar_distribution import BarDistribution

    g = torch.Generator().manual_seed(5)
    batch = PRIOR.sample(1, 1100, g)
    x, y = batch.x.float(), batch.y.float()
    xc, yc, xq = x[:, :100], y[:, :100], x[:, 100:]
    model = PFNTransformer(MODEL).eval()  # timing does not depend on the weights
    bar = BarDistribution(torch.linspace(-4, 4, MODEL.n_bars + 1))

    def ours():
        cache = model.encode_context(xc, yc)
        return bar.mean(model.predict_logits(cache, xq))

    cache = model.encode_context(xc, yc)
    per_query = {}
    for m in (1, 10, 100, 1000):
        ms = _median_ms(lambda: bar.mean(model.predict_logits(cache, xq[:, :m])), 30 if m < 1000 else 15)
        per_query[str(m)] = ms / m
    encode_ms = _median_ms(lambda: model.encode_context(xc, yc), 30)
    ref_model = ref.PFN(256, 4, 4, 512).eval()
    ref_bar = ref.Bar(torch.linspace(-4, 4, 101))
    ref_ms = _median_ms(lambda: ref_bar.mean(ref_model(xc, yc[..., None], xq)), 10)
    xd, yd, qd = batch.x[:, :100], batch.y[:, :100], batch.x[:, 100:]
    exact_ms = _median_ms(lambda: gp_predictive(PRIOR, batch.params, xd, yd, qd), 30)
    save("latency", dict(
        priorfit_encode_plus_predict_1000_ms=_median_ms(ours, 15),
        priorfit_encode_100_ms=encode_ms,
        priorfit_ms_per_query_cached=per_query,
        reference_predict_1000_ms=ref_ms,
        exact_gp_1000_ms=exact_ms,
    ))


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["throughput", "fidelity", "latency", "all"])
    parser.add_argument("--reference", required=True, metavar="NAIVE_PFN_PY",
                        help="the naive reference PFN script (in this project: ../shared/reference/naive_pfn.py)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training minutes for the fidelity run")
    parser.add_argument("--throughput-minutes", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "runs" / "bench_rbf"))
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--n-frequencies", type=int, default=MODEL.n_frequencies,
                        help="Fourier input features per feature (ModelConfig.n_frequencies)")
    args = parser.parse_args()
    if not Path(args.reference).is_file():
        parser.error(f"--reference {args.reference}: no such file; pass the naive reference PFN's script")
    MODEL = dataclasses.replace(MODEL, n_frequencies=args.n_frequencies)
    for what in (["latency", "throughput", "fidelity"] if args.what == "all" else [args.what]):
        globals()[f"cmd_{what}"](args)


if __name__ == "__main__":
    main()
