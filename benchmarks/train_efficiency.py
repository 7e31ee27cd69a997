"""Training efficiency: datasets and seconds to a held-out gap, today's trainer against the Rao-Blackwellised one.

Both trainers run in this one process, on the same prior, model, schedule, seed and threads; they differ only in
``TrainConfig.rao_blackwell`` (False: the NLL of each sampled query target; True: the bars' cross-entropy against
the target's exact normal given the dataset's hyperparameters and context). Each trainer is run afresh at several
budgets (``--budgets``, in steps), each with its full warm-up and cosine schedule, since a run cut short of its
schedule is not what anyone would train; after each, it is scored on fixed held-out datasets per cell (d x n): mean
NLL per query minus the oracle's (the exact posterior with the true hyperparameters), in the units the model
predicts (the invariant prior's, standardised by the context).

The rule for the gap G of a cell: the gap today's (sampled) trainer reaches with the largest budget. Datasets to
G for the new trainer: where its gap-against-log-budget curve crosses G, interpolated linearly between the two
budgets around the crossing; if its smallest budget already reaches G, the ratio is given as a lower bound, and if
even its largest does not, as "never". Seconds to G: datasets times each trainer's measured seconds per dataset
(training-loop time, held-out scoring excluded).

Variants of a trainer (queries per dataset, learning rate, batch size, context sampling, curriculum, width and
depth) are named as VARIANTS says. To screen variants without rerunning the baseline, --sampled-from reads the
sampled trainer's runs from an earlier results file of the same experiment.

    python benchmarks/train_efficiency.py --budgets 750,1500,3000 --threads 1
    python benchmarks/train_efficiency.py --trainers sampled,rao_blackwell,rao_blackwell_q128 --stem ...
    python benchmarks/train_efficiency.py --trainers sampled,rao_blackwell_lr2e-3,rao_blackwell_b16 \
        --budgets 750,1500 --sampled-from benchmarks/results/train_efficiency.json --stem train_levers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_common import ROOT, cpu_name, write_results  # noqa: E402

from priorfit.checkpoint import load_checkpoint  # noqa: E402
from priorfit.config import load_json  # noqa: E402
from priorfit.model.loss import pfn_nll, pfn_predict  # noqa: E402
from priorfit.seeding import derive_seed  # noqa: E402
from priorfit.training import STATE_FILE, TrainJob, exact_nll, train  # noqa: E402

CELLS_D = (1, 2, 4)
CELLS_N = (8, 32, 128)
TRAINERS = ("sampled", "rao_blackwell")


@dataclasses.dataclass(frozen=True)
class HeldOut:
    d: int
    n: int
    x: torch.Tensor
    y: torch.Tensor
    oracle_nll: float


def held_out_sets(prior, datasets: int, queries: int, seed: int) -> list[HeldOut]:
    sets = []
    for d in CELLS_D:
        for n in CELLS_N:
            gen = torch.Generator().manual_seed(derive_seed(seed, 77, d, n))
            batch = prior.sample(datasets, n + queries, gen, n_features=d, n_context=n)
            oracle = exact_nll(prior, batch.x[:, :n], batch.y[:, :n], batch.x[:, n:], batch.y[:, n:], batch.params)
            sets.append(HeldOut(d, n, batch.x, batch.y, float(oracle)))
    return sets


def gaps(checkpoint: Path, sets: list[HeldOut]) -> dict[str, float]:
    ckpt = load_checkpoint(checkpoint)
    model, bar = ckpt.model.eval(), ckpt.bar_distribution
    out = {}
    for s in sets:
        logits, loc, scale = pfn_predict(model, s.x, s.y, s.n)
        nll = float(pfn_nll(bar, logits, loc, scale, s.y[:, s.n:].float()).mean())
        out[f"d{s.d} n{s.n}"] = nll - s.oracle_nll
    return out


VARIANTS = """a trainer is "sampled" or "rao_blackwell", then any of these, each after an underscore:
q<N> (N query points per training dataset), lr<X> (peak learning rate X), b<N> (N datasets per step, with the
steps scaled so that each budget trains on the same number of datasets), log (context sizes log-uniform instead of
uniform), cur<F> (the largest context grows over the first fraction F of the steps), w<D>x<L> (width D, L layers);
e.g. rao_blackwell_lr2e-3_b16"""


def trainer_job(job: TrainJob, name: str) -> TrainJob:
    """The job a trainer runs; see VARIANTS for its name."""
    base, *mods = _split(name)
    training = dataclasses.replace(job.training, rao_blackwell=base == "rao_blackwell")
    try:
        return _with_modifiers(job, training, mods)
    except ValueError as err:  # a modifier's number that does not parse, or a config it makes invalid
        raise SystemExit(f"trainer {name!r}: {err}") from None


def _with_modifiers(job: TrainJob, training, mods: list[str]) -> TrainJob:
    model = job.model
    for mod in mods:
        if mod == "log":
            training = dataclasses.replace(training, context_sampling="log_uniform")
        elif mod.startswith("lr"):
            training = dataclasses.replace(training, lr=float(mod[2:]))
        elif mod.startswith("cur"):
            training = dataclasses.replace(training, context_curriculum=float(mod[3:]))
        elif mod.startswith("q"):
            queries = int(mod[1:])
            training = dataclasses.replace(training, n_queries=queries, n_points=training.context_range[1] + queries)
        elif mod.startswith("b"):
            training = dataclasses.replace(training, batch_size=int(mod[1:]))
        elif mod.startswith("w"):
            width, _, layers = mod[1:].partition("x")
            model = dataclasses.replace(model, d_model=int(width), n_layers=int(layers), d_ff=2 * int(width))
        else:
            raise SystemExit(f"unknown modifier {mod!r}: {VARIANTS}")
    return dataclasses.replace(job, training=training, model=model)


def _split(name: str) -> tuple[str, ...]:
    for base in TRAINERS:
        if name == base or name.startswith(base + "_"):
            rest = name[len(base) + 1:]
            return (base, *(rest.split("_") if rest else ()))
    raise SystemExit(f"unknown trainer {name!r}: {VARIANTS}")


def run_budget(job: TrainJob, name: str, datasets: int, sets, workdir: Path) -> dict:
    """Train `job` afresh on `datasets` datasets (its full schedule) and score it on the held-out sets."""
    steps = max(1, round(datasets / job.training.batch_size))
    config = dataclasses.replace(job.training, steps=steps, eval_every=steps, eval_datasets=1, eval_context=(2,),
                                 checkpoint_every=steps)
    out = workdir / f"{name}_{steps}"
    result = train(job.prior, job.model, config, out, progress=False, resume=False)
    seconds = float(torch.load(out / STATE_FILE, weights_only=True)["seconds"])
    record = dict(steps=steps, datasets=steps * config.batch_size, train_seconds=seconds,
                  gaps=gaps(result.checkpoint, sets))
    mean_gap = sum(record["gaps"].values()) / len(record["gaps"])
    print(f"  {name:>20} {steps:5d} steps  {seconds:7.0f} s  mean gap {mean_gap:+.3f}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return record


def datasets_to(records: list[dict], cell: str, goal: float) -> tuple[float | None, str]:
    """Datasets at which the gap-against-log(datasets) curve first reaches `goal`: (value, how), how being ""
    (interpolated), "<=" (already at the smallest budget, so at most that many) or "never" (value None)."""
    points = [(r["datasets"], r["gaps"][cell]) for r in records]
    if points[0][1] <= goal:
        return points[0][0], "<="
    for (n0, g0), (n1, g1) in zip(points[:-1], points[1:]):
        if g1 <= goal:
            frac = (g0 - goal) / (g0 - g1)
            return math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0))), ""
    return None, "never"


def reused_sampled(path: Path, args: argparse.Namespace) -> list[dict]:
    """The sampled trainer's runs from an earlier results file, after checking it ran the same experiment (its
    budgets may differ from this run's: G and the sampled datasets to G come from its own curve)."""
    old = json.loads(path.read_text())
    same = dict(config=args.config, d_model=args.d_model, layers=args.layers, lr=args.lr, seed=args.seed,
                held_out_datasets=args.datasets)
    differs = [k for k, v in same.items() if old.get(k) != v]
    if differs or "sampled" not in old.get("runs", {}):
        raise SystemExit(f"--sampled-from {path}: another experiment (differs in {differs or ['runs']})")
    return old["runs"]["sampled"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "invariant_default.json"),
                        help="the job whose prior and training settings both trainers use")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--budgets", default="750,1500,3000",
                        help="steps of each run at the baseline's batch size, ascending")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--datasets", type=int, default=128, help="held-out datasets per cell")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainers", default=",".join(TRAINERS),
                        help="sampled (the baseline, first), then others; " + VARIANTS)
    parser.add_argument("--stem", default="train_efficiency")
    parser.add_argument("--sampled-from", default=None,
                        help="a results .json of this script whose sampled runs (same config, budgets, seed, model, "
                             "held-out sets) are read instead of rerun: for screening variants; its seconds come "
                             "from that run, so the time ratios are across runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    names = args.trainers.split(",")
    if names[0] != "sampled" or len(names) < 2:
        raise SystemExit("--trainers must start with sampled (the baseline) and name at least one other")

    job = load_json(args.config, TrainJob)
    model = dataclasses.replace(job.model, d_model=args.d_model, n_layers=args.layers, d_ff=2 * args.d_model)
    training = dataclasses.replace(job.training, lr=args.lr, seed=args.seed, num_threads=args.threads,
                                   warmup_fraction=0.02, border_datasets=2000, precision="float32")
    job = dataclasses.replace(job, model=model, training=training)
    jobs = {name: trainer_job(job, name) for name in names}
    print(f"held-out sets: {len(CELLS_D) * len(CELLS_N)} cells x {args.datasets} datasets", flush=True)
    sets = held_out_sets(job.prior, args.datasets, job.training.eval_queries, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="train_efficiency_"))
    runs: dict[str, list[dict]] = {name: [] for name in names}
    if args.sampled_from:
        runs["sampled"] = reused_sampled(Path(args.sampled_from), args)
    try:
        for steps in budgets:  # alternate the trainers, so that drifting machine speed hits all alike
            for name in names:
                if name == "sampled" and args.sampled_from:
                    continue
                runs[name].append(run_budget(jobs[name], name, steps * job.training.batch_size, sets, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    batch = job.training.batch_size
    per_dataset = {name: sum(r["train_seconds"] for r in recs) / sum(r["datasets"] for r in recs)
                   for name, recs in runs.items()}
    lines = [f"prior: {Path(args.config).name} ({type(job.prior).__name__}); model {args.d_model} x {args.layers}; "
             f"batch {batch}; budgets {budgets} steps, each a full run (lr {args.lr}, warm-up 2%, cosine); "
             f"{args.threads} thread(s); held-out {args.datasets} datasets x {job.training.eval_queries} queries per "
             f"cell; queries per training dataset: " + ", ".join(f"{n} {jobs[n].training.n_queries}" for n in names),
             "ms per dataset: " + ", ".join(f"{n} {1000 * per_dataset[n]:.2f}" for n in names),
             "gap: held-out NLL per query minus the oracle's, after each budget's full run",
             "G = the sampled trainer's gap at its largest budget; datasets to G read off each trainer's curve; "
             "ratio = sampled's datasets (or seconds) to G over the trainer's",
             "trainers: " + ", ".join(f"{chr(ord('A') + i)} = {n}" for i, n in enumerate(names[1:]))
             + (f"; sampled read from {args.sampled_from}, not rerun" if args.sampled_from else ""), ""]
    letters = ["SA"] + [chr(ord("A") + i) for i in range(len(names) - 1)]
    head = " ".join(f"{letter:>4}@{r['datasets'] // batch:<5}" for letter, n in zip(letters, names) for r in runs[n])
    lines.append(f"{'cell':<9} {head} {'G':>7} " + " ".join(f"{letter + ' ratio (time)':>16}" for letter in letters[1:]))
    cells = {}
    for cell in runs["sampled"][-1]["gaps"]:
        goal = runs["sampled"][-1]["gaps"][cell]
        s_data, _ = datasets_to(runs["sampled"], cell, goal)
        entry = dict(goal=goal, sampled_datasets=s_data, gaps={n: [r["gaps"][cell] for r in runs[n]] for n in names})
        texts = []
        for name in names[1:]:
            data, how = datasets_to(runs[name], cell, goal)
            ratio = None if data is None else s_data / data
            time_ratio = None if ratio is None else ratio * per_dataset["sampled"] / per_dataset[name]
            bound = ">=" if how == "<=" else ""
            entry[name] = dict(datasets=data, how=how, datasets_ratio=ratio, seconds_ratio=time_ratio,
                               ratio_is_lower_bound=bool(bound))
            texts.append("never" if ratio is None else f"{bound}{ratio:.2f} ({bound}{time_ratio:.2f})")
        cells[cell] = entry
        gaps_text = " ".join(f"{g:+10.3f}" for n in names for g in entry["gaps"][n])
        lines.append(f"{cell:<9} {gaps_text} {goal:+7.3f} " + " ".join(f"{t:>16}" for t in texts))
    write_results(args.stem, "\n".join(lines), dict(
        config=args.config, d_model=args.d_model, layers=args.layers, budgets=budgets, lr=args.lr, batch_size=batch,
        threads=args.threads, seed=args.seed, held_out_datasets=args.datasets, sampled_from=args.sampled_from,
        queries={n: jobs[n].training.n_queries for n in names},
        machine=dict(processor=cpu_name(), torch=torch.__version__), cells=cells,
        seconds_per_dataset=per_dataset, runs=runs))


if __name__ == "__main__":
    main()
