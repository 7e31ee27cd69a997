"""Training in bfloat16 autocast against float32 on this CPU: datasets per second, and the held-out gap to the
exact GP after equal wall time, in one run (issue 11's training-compute measurement).

  python benchmarks/bench_train_precision.py --minutes 4 --rounds 2

Both arms train the shipped gp_default job (configs/gp_default.json: its prior, its model, batch 32, lr 3e-4),
warm-started from the shipped model, with the same seed, on the same threads. Throughput: each round runs
float32 then bfloat16 (order alternating between rounds) for --throughput-steps steps and takes datasets/s from
priorfit.train's own timer. Quality: each arm then trains for --minutes of wall time from the same start, and
the held-out NLL gap to the exact GP (training's own fixed held-out sets, n = 4, 32, 128) is compared. Prints the
figures and writes benchmarks/results/train_precision.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from priorfit.atomic import atomic_write_json
from priorfit.config import load_json
from priorfit.model.precision import native_bfloat16
from priorfit.training import TrainJob, train

ROOT = Path(__file__).resolve().parents[1]


def _run(job: TrainJob, precision: str, steps: int, out: Path) -> dict:
    config = dataclasses.replace(job.training, precision=precision, steps=steps, eval_every=steps,
                                 checkpoint_every=steps, num_threads=torch.get_num_threads(), lr=3e-4,
                                 warmup_fraction=0.0, context_curriculum=0.0)
    start = time.perf_counter()
    result = train(job.prior, job.model, config, out, resume=False, progress=False, init_from="gp_default")
    return dict(precision=precision, steps=steps, datasets_per_second=result.datasets_per_second,
                wall_seconds=time.perf_counter() - start, held_out=result.history[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--throughput-steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=4.0, help="wall time of each arm's quality run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_precision.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    job = load_json(ROOT / "configs" / "gp_default.json", TrainJob)
    rates: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for precision in (("float32", "bfloat16") if r % 2 == 0 else ("bfloat16", "float32")):
                run = _run(job, precision, args.throughput_steps, Path(tmp) / f"t{r}{precision}")
                rates[precision].append(run["datasets_per_second"])
                print(f"round {r}: {precision} {run['datasets_per_second']:.1f} datasets/s", flush=True)
        quality = {}
        if args.minutes > 0:
            for precision in ("float32", "bfloat16"):
                rate = statistics.median(rates[precision])
                steps = max(1, int(args.minutes * 60 * rate / job.training.batch_size))
                quality[precision] = _run(job, precision, steps, Path(tmp) / f"q{precision}")
                gaps = {k: round(v, 4) for k, v in quality[precision]["held_out"].items() if k.startswith("gap@")}
                print(f"{precision}: {steps} steps in {quality[precision]['wall_seconds'] / 60:.1f} min, "
                      f"held-out gaps {gaps}", flush=True)
    ratio = statistics.median(rates["bfloat16"]) / statistics.median(rates["float32"])
    print(f"bfloat16 / float32 datasets per second: {ratio:.2f} (medians of {args.rounds} rounds)")
    atomic_write_json(args.out, dict(
        command="python " + " ".join(shlex.quote(a) for a in sys.argv), cpu=platform.processor() or platform.machine(),
        native_bfloat16=native_bfloat16(), threads=args.threads, datasets_per_second=rates, ratio=ratio,
        quality=quality))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
