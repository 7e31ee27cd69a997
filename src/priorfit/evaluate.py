"""Fidelity of a PFN against exact inference, on datasets drawn from the PFN's own prior.

For each number of input features d and context size n, draws `n_datasets` datasets of n + `n_queries` points
with a fixed seed and reports the mean NLL per query point (nats) of the PFN, of the oracle GP (the exact
posterior with the true hyperparameters each dataset was drawn with) and of ML-II (the exact GP with
hyperparameters fitted by marginal likelihood, as GPyTorch/BoTorch users do); the PFN's gaps to both; the
coverage of its central 50% and 90% intervals; and the milliseconds per dataset of each method.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from priorfit.checkpoint import Checkpoint
from priorfit.exact.gp import fit_ml2, gp_predictive
from priorfit.priors.gp import GPPrior


@dataclass(frozen=True)
class FidelityCell:
    n_features: int
    n_context: int
    n_datasets: int
    pfn_nll: float
    pfn_nll_se: float
    oracle_nll: float
    ml2_nll: float | None
    gap_to_oracle: float
    gap_to_ml2: float | None
    coverage_50: float
    coverage_90: float
    pfn_ms_per_dataset: float
    oracle_ms_per_dataset: float
    ml2_ms_per_dataset: float | None


def _normal_nll(mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log(2 * math.pi * var) + 0.5 * (y - mean) ** 2 / var


@torch.inference_mode()
def _pfn_nll_and_coverage(ckpt: Checkpoint, x, y, n_ctx: int):
    bar, model = ckpt.bar_distribution, ckpt.model
    xf, yf = x.float(), y.float()
    nlls, inside50, inside90 = [], [], []
    t = time.perf_counter()
    for i in range(0, x.shape[0], 64):
        logits = model(xf[i:i + 64, :n_ctx], yf[i:i + 64, :n_ctx], xf[i:i + 64, n_ctx:]).double()
        yq = y[i:i + 64, n_ctx:]
        nlls.append(bar.nll(logits, yq))
        qs = bar.quantile(logits, torch.tensor([0.05, 0.25, 0.75, 0.95], dtype=torch.float64))
        inside50.append(((yq >= qs[..., 1]) & (yq <= qs[..., 2])).double())
        inside90.append(((yq >= qs[..., 0]) & (yq <= qs[..., 3])).double())
    ms = 1000 * (time.perf_counter() - t) / x.shape[0]
    per_dataset = torch.cat(nlls).mean(-1)
    return per_dataset, float(torch.cat(inside50).mean()), float(torch.cat(inside90).mean()), ms


def fidelity_report(
    ckpt: Checkpoint,
    n_context: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128),
    n_features: tuple[int, ...] | None = None,
    n_datasets: int = 128,
    n_queries: int = 64,
    ml2_datasets: int | None = None,
    ml2_restarts: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> list[FidelityCell]:
    """The fidelity table of a checkpoint trained on a GP prior (see the module docstring).

    `ml2_datasets` (default: all) limits ML-II, the slow part, to the first datasets of each cell; its NLL and the
    PFN's gap to it are then computed on those datasets only.
    """
    prior = ckpt.prior
    if not isinstance(prior, GPPrior):
        raise TypeError(f"fidelity_report needs a checkpoint trained on a GPPrior, got {type(prior).__name__}")
    n_features = n_features or tuple(range(1, prior.max_features + 1))
    ml2_datasets = n_datasets if ml2_datasets is None else min(ml2_datasets, n_datasets)
    cells = []
    todo = [(d, n) for d in n_features for n in n_context]
    for d, n in tqdm(todo, desc="fidelity", disable=not progress):
        generator = torch.Generator().manual_seed(seed * 100_003 + 1_000 * d + n)
        batch = prior.sample(n_datasets, n + n_queries, generator, n_features=d)
        x, y = batch.x, batch.y
        pfn, cov50, cov90, pfn_ms = _pfn_nll_and_coverage(ckpt, x, y, n)
        t = time.perf_counter()
        mean, var = gp_predictive(prior, batch.params, x[:, :n], y[:, :n], x[:, n:])
        oracle_ms = 1000 * (time.perf_counter() - t) / n_datasets
        oracle = _normal_nll(mean, var, y[:, n:]).mean(-1)
        ml2 = ml2_ms = gap_ml2 = None
        if ml2_datasets:
            ml2_nlls, t = [], time.perf_counter()
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # small GPyTorch fits run several times faster on one thread
            try:
                for i in range(ml2_datasets):
                    m, v = fit_ml2(prior, x[i, :n], y[i, :n], x[i, n:], restarts=ml2_restarts,
                                   generator=torch.Generator().manual_seed(i))
                    ml2_nlls.append(_normal_nll(m, v, y[i, n:]).mean())
            finally:
                torch.set_num_threads(threads)
            ml2_ms = 1000 * (time.perf_counter() - t) / ml2_datasets
            ml2_t = torch.stack(ml2_nlls)
            ml2 = float(ml2_t.mean())
            gap_ml2 = float((pfn[:ml2_datasets] - ml2_t).mean())
        cells.append(FidelityCell(
            n_features=d, n_context=n, n_datasets=n_datasets, pfn_nll=float(pfn.mean()),
            pfn_nll_se=float(pfn.std() / math.sqrt(n_datasets)), oracle_nll=float(oracle.mean()), ml2_nll=ml2,
            gap_to_oracle=float((pfn - oracle).mean()), gap_to_ml2=gap_ml2, coverage_50=cov50, coverage_90=cov90,
            pfn_ms_per_dataset=pfn_ms, oracle_ms_per_dataset=oracle_ms, ml2_ms_per_dataset=ml2_ms,
        ))
    return cells


def format_table(cells: list[FidelityCell]) -> str:
    """A fixed-width text table of fidelity cells (NLL in nats per query point)."""
    head = (f"{'d':>2} {'n':>4} | {'PFN':>7} {'oracle':>7} {'ML-II':>7} | {'PFN-oracle':>10} {'PFN-ML-II':>10} | "
            f"{'cov50':>5} {'cov90':>5} | {'ms PFN':>7} {'ms ML-II':>8}")
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for c in cells:
        lines.append(
            f"{c.n_features:>2} {c.n_context:>4} | {c.pfn_nll:7.3f} {c.oracle_nll:7.3f} {fmt(c.ml2_nll, '7.3f')} | "
            f"{c.gap_to_oracle:+10.3f} {fmt(c.gap_to_ml2, '+10.3f')} | {c.coverage_50:5.2f} {c.coverage_90:5.2f} | "
            f"{c.pfn_ms_per_dataset:7.2f} {fmt(c.ml2_ms_per_dataset, '8.1f')}"
        )
    return "\n".join(lines)


def cells_to_json(cells: list[FidelityCell]) -> list[dict]:
    return [asdict(c) for c in cells]
