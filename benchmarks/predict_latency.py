"""What a user waits for: ``PFNRegressor(model).fit(X, y).predict(X_new)`` with 100 points and 1000 queries (d = 1),
now against an earlier commit, in alternating rounds of one run; where the time goes; and the floor the network's
arithmetic sets on this machine.

    python benchmarks/predict_latency.py --ref a225b4c --threads 2

- **Now vs then.** Two worker processes, one importing this tree's ``src`` and one a ``git worktree`` of
  ``--ref``, time the same call on the same data in turn, round after round (so drifts of the machine hit both);
  each round is the median of ``--repeats`` calls. float32, and bfloat16 where the CPU has it natively.
- **Where the time goes** (this tree): ``fit`` (validation, scaling, encoding the context), the network's query
  pass (logits), and the rest of ``predict`` (the median from the bars).
- **The floor.** The network's multiply-adds for the 1000 queries, counted from the model's configuration, over
  the rate torch's matrix multiply reaches on this machine for the network's own largest product
  (1000 x d_model by d_model x d_ff) at these threads, in float32 and in bfloat16: the time the arithmetic alone
  needs at that rate.
- **A new process**: ``import priorfit``, then the first fit and prediction, each timed in a fresh interpreter
  (median of 3); and what ``python -X importtime`` says torch, scikit-learn, scipy.stats and priorfit take.

Writes benchmarks/results/predict_latency.json and .txt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_common import ROOT, cpu_name, write_results  # noqa: E402

WORKER = r"""
import json, statistics, sys, time, warnings
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from priorfit.estimators import PFNRegressor
rng = np.random.default_rng(0)
X = rng.uniform(0, 10, (100, 1)); y = np.sin(X[:, 0]) + 0.2 * rng.standard_normal(100)
Xq = np.linspace(0, 10, 1000)[:, None]
def call(precision):
    reg = PFNRegressor(model=sys.argv[2], precision=precision).fit(X, y)
    return reg.predict(Xq)
for precision in sys.argv[4].split(","):
    call(precision)
print("ready", flush=True)
for line in sys.stdin:
    precision = line.strip()
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(int(sys.argv[3])):
            t = time.perf_counter(); call(precision); times.append(time.perf_counter() - t)
    print(json.dumps(statistics.median(times)), flush=True)
"""

FRESH = r"""
import time
t0 = time.perf_counter()
import numpy as np
from priorfit import PFNRegressor
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.uniform(0, 10, (100, 1)); y = np.sin(X[:, 0])
PFNRegressor().fit(X, y).predict(np.linspace(0, 10, 1000)[:, None])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def start_worker(src: Path, threads: int, model: str, repeats: int, precisions: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(threads), model, str(repeats), ",".join(precisions)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": str(threads)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def ask(proc: subprocess.Popen, precision: str) -> float:
    proc.stdin.write(precision + "\n")
    proc.stdin.flush()
    return float(proc.stdout.readline())


def breakdown(model: str, threads: int, repeats: int, precision: str) -> dict:
    """fit, the network's query pass and the rest of predict, in this process (this tree)."""
    import warnings

    import numpy as np
    import torch

    from priorfit.estimators import PFNRegressor

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (100, 1))
    y = np.sin(X[:, 0]) + 0.2 * rng.standard_normal(100)
    Xq = np.linspace(0, 10, 1000)[:, None]
    parts = {"fit": [], "network (queries)": [], "median from the bars": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            reg = PFNRegressor(model=model, precision=precision).fit(X, y)
            t1 = time.perf_counter()
            logits = reg._logits(Xq)
            t2 = time.perf_counter()
            reg.predict(Xq)
            t3 = time.perf_counter()
            if i:
                parts["fit"].append(t1 - t0)
                parts["network (queries)"].append(t2 - t1)
                parts["median from the bars"].append((t3 - t2) - (t2 - t1))  # predict = logits + the rest
    del logits
    return {k: 1000 * statistics.median(v) for k, v in parts.items()}


def floor(model: str, threads: int) -> dict:
    """The network's multiply-adds per 1000 queries (100 context points) and the time they need at the rate
    torch's matrix multiply reaches here for the network's largest product."""
    import torch

    from priorfit.models import load_model

    torch.set_num_threads(threads)
    cfg = load_model(model).model_config
    d, ff, n, m = cfg.d_model, cfg.d_ff, 100, 1000
    per_query_layer = d * d + d * d + 2 * d * ff + 2 * n * d  # q and out projections, feed-forward, attention
    fourier = 2 * cfg.n_frequencies * cfg.max_features * d + cfg.max_features * d
    macs = m * (cfg.n_layers * per_query_layer + d * cfg.n_bars + fourier)
    out = dict(macs=macs, gflop=2 * macs / 1e9)
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(m, d, dtype=dtype), torch.randn(d, ff, dtype=dtype)
        for _ in range(20):
            a @ b
        times = []
        for _ in range(200):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        gflops = 2 * m * d * ff / min(times) / 1e9
        name = str(dtype).removeprefix("torch.")
        out[f"matmul_gflops_{name}"] = gflops
        out[f"floor_ms_{name}"] = 1000 * 2 * macs / (gflops * 1e9)
    return out


IMPORTS = ("torch", "sklearn", "scipy.stats", "priorfit")


def import_breakdown() -> dict:
    """Seconds each of IMPORTS takes, cumulative, as ``python -X importtime`` reports it in a new process that
    imports ``PFNRegressor`` (torch's and scikit-learn's imports are their own; priorfit's includes them)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "from priorfit import PFNRegressor; PFNRegressor"],
                         capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT / "src"),
                                                                          "PATH": "/usr/bin:/bin"})
    seconds = {}
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] in IMPORTS and parts[2] not in seconds:
            seconds[parts[2]] = int(parts[1]) / 1e6
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="a225b4c", help="the earlier commit to time against")
    parser.add_argument("--model", default="invariant_default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from priorfit.model.precision import native_bfloat16

    precisions = ["float32", "bfloat16"] if native_bfloat16() else ["float32"]
    with tempfile.TemporaryDirectory(prefix="predict_latency_") as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.ref], check=True,
                       capture_output=True)
        try:
            workers = {"now": start_worker(ROOT / "src", args.threads, args.model, args.repeats, precisions),
                       args.ref: start_worker(tree / "src", args.threads, args.model, args.repeats, precisions)}
            rounds = {(name, p): [] for name in workers for p in precisions}
            for _ in range(args.rounds):
                for p in precisions:
                    for name, proc in workers.items():
                        rounds[(name, p)].append(ask(proc, p))
            for proc in workers.values():
                proc.stdin.close()
                proc.wait()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False,
                           capture_output=True)
    ms = {f"{name} {p}": 1000 * statistics.median(v) for (name, p), v in rounds.items()}
    parts = {p: breakdown(args.model, args.threads, args.repeats, p) for p in precisions}
    arithmetic = floor(args.model, args.threads)
    fresh = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, check=True,
                             env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
        fresh.append([float(v) for v in out.stdout.split()])
    imports = import_breakdown()
    fresh_import = statistics.median(f[0] for f in fresh)
    fresh_first = statistics.median(f[1] for f in fresh)

    lines = [f"{args.model}: fit 100 points, predict() 1000 queries, d = 1; {args.threads} thread(s); {cpu_name()}; "
             f"median over {args.rounds} alternating rounds of the median of {args.repeats} calls"]
    for p in precisions:
        lines.append(f"{p:>9}: now {ms['now ' + p]:6.1f} ms, {args.ref} {ms[args.ref + ' ' + p]:6.1f} ms, "
                     f"ratio now/then {ms['now ' + p] / ms[args.ref + ' ' + p]:.2f}")
    for p in precisions:
        lines.append(f"{p:>9} (now): " + ", ".join(f"{k} {v:.1f} ms" for k, v in parts[p].items()))
    lines.append(f"the network's arithmetic for 1000 queries: {arithmetic['gflop']:.2f} GFLOP; torch's matmul here "
                 f"(1000 x 256 by 256 x 512): float32 {arithmetic['matmul_gflops_float32']:.0f} GFLOP/s, so at least "
                 f"{arithmetic['floor_ms_float32']:.1f} ms; bfloat16 {arithmetic['matmul_gflops_bfloat16']:.0f} "
                 f"GFLOP/s, so at least {arithmetic['floor_ms_bfloat16']:.1f} ms")
    lines.append(f"a new process: import priorfit {fresh_import:.2f} s, first fit + predict {fresh_first:.2f} s, "
                 f"total {fresh_import + fresh_first:.2f} s")
    lines.append("python -X importtime, cumulative: " + ", ".join(f"{k} {v:.2f} s" for k, v in imports.items()))
    write_results("predict_latency", "\n".join(lines), dict(
        model=args.model, ref=args.ref, threads=args.threads, rounds=args.rounds, repeats=args.repeats, cpu=cpu_name(),
        ms=ms, rounds_ms={f"{k[0]} {k[1]}": [1000 * v for v in vals] for k, vals in rounds.items()},
        breakdown_ms=parts, arithmetic=arithmetic, new_process_s=dict(import_=fresh_import, first=fresh_first,
                                                                       runs=fresh, importtime=imports)))


if __name__ == "__main__":
    main()
