"""How far a PFN is from exact Bayesian inference, on datasets drawn from the PFN's own prior.

The fidelity protocol of DESIGN.md. For each number of input features d and context size n, `n_datasets` datasets
of n + `n_queries` points are drawn with a fixed seed, and four predictive distributions of the held-out points are
scored:

- the PFN (one forward pass);
- the oracle GP: the exact posterior with the hyperparameters each dataset was drawn with (a bound no method
  reaches, since no method sees the true hyperparameters);
- the marginal: the Bayes posterior predictive, the hyperparameters integrated out by NUTS
  (:func:`priorfit.exact.marginal_predictive`). This is what the PFN approximates; its gap to it is the headline;
- ML-II: the exact GP with hyperparameters fitted by marginal likelihood, as GPyTorch/BoTorch users do.

Scores per cell: mean NLL per query point (nats), CRPS (in y's units), coverage of the central 50% and 90%
intervals (from the PIT, F(y)), and milliseconds per dataset. NUTS and ML-II are slow, so they run on the first
`marginal_datasets` / `ml2_datasets` datasets of each cell, and the PFN's gaps to them are paired differences on
exactly those datasets (with their standard errors). Those results depend on the datasets alone, not on the PFN,
so a :class:`~priorfit.exact.store.ReferenceStore` keeps them per dataset and any later model on the same protocol
reuses them (``priorfit evaluate --references``).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from priorfit.checkpoint import Checkpoint
from priorfit.config import to_dict
from priorfit.exact.gp import fit_ml2, gp_predictive, ml2_fit
from priorfit.exact.normal import normal_crps, normal_nll, normal_pit
from priorfit.exact.store import ReferenceStore, dataset_fingerprint, pit_list
from priorfit.exceptions import InputDataError
from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.ensemble import SymmetryEnsemble, encode, predict, symmetry_ensemble
from priorfit.model.precision import check_precision
from priorfit.model.predictive import PredictiveDistribution
from priorfit.model.transformer import PFNTransformer
from priorfit.priors.gp import GPPrior

__all__ = [
    "EvaluateConfig",
    "FidelityCell",
    "FidelityReport",
    "evaluate",
    "fidelity_report",
    "format_table",
    "cells_to_json",
    "pfn_nll",
    "pfn_predict",
    "reference_protocol",
]

#: Central-interval levels of the calibration curve.
CALIBRATION_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass(frozen=True)
class EvaluateConfig:
    """What `evaluate` measures (defaults: DESIGN.md's protocol, NUTS and ML-II on a subset of each cell).

    Attributes:
        n_context: context sizes n.
        n_features: numbers of input features d (None: 1 .. the prior's max_features).
        n_datasets: datasets per cell (PFN and oracle).
        n_queries: held-out points per dataset.
        marginal_datasets: of which the first are marginalised by NUTS (0: no marginal column).
        nuts_warmup, nuts_samples, nuts_chains: NUTS settings per dataset.
        ml2_datasets: of which the first get an ML-II fit (0: no ML-II column).
        ml2_restarts: ML-II's L-BFGS restarts.
        timing_datasets: datasets per cell on which the PFN's time per dataset is measured one at a time.
        example_context: context sizes of the example plot's 1-D datasets.
        seed: seeds the datasets, NUTS and the ML-II restarts.
        ensemble_size: the PFN's predictions are averaged over this many transforms of each dataset under which
            the prior is invariant (:mod:`priorfit.model.ensemble`); 1 is the plain PFN.
        precision: the arithmetic of the PFN's forward passes, "float32" or "bfloat16"
            (:mod:`priorfit.model.precision`).
    """

    n_context: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128)
    n_features: tuple[int, ...] | None = None
    n_datasets: int = 256
    n_queries: int = 64
    marginal_datasets: int = 16
    nuts_warmup: int = 200
    nuts_samples: int = 200
    nuts_chains: int = 2
    ml2_datasets: int = 32
    ml2_restarts: int = 3
    timing_datasets: int = 8
    example_context: tuple[int, ...] = (4, 16, 64)
    seed: int = 0
    ensemble_size: int = 1
    precision: str = "float32"

    def __post_init__(self) -> None:
        check_precision("precision", self.precision)
        for name in ("n_datasets", "n_queries", "nuts_samples", "nuts_chains", "ml2_restarts", "timing_datasets",
                     "ensemble_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("marginal_datasets", "ml2_datasets", "nuts_warmup", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("n_context", "example_context"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {values!r}")
        if self.n_features is not None and (
            not self.n_features or any(not isinstance(v, int) or v < 1 for v in self.n_features)
        ):
            raise ValueError(f"n_features must be None or a non-empty tuple of positive integers, got "
                             f"{self.n_features!r}")

    @classmethod
    def quick(cls) -> "EvaluateConfig":
        """A run of seconds, for tests and a first look: d = 1, n in {4, 16}, a few datasets, short NUTS chains."""
        return cls(n_context=(4, 16), n_features=(1,), n_datasets=16, n_queries=16, marginal_datasets=2,
                   nuts_warmup=60, nuts_samples=60, ml2_datasets=2, ml2_restarts=1, timing_datasets=2,
                   example_context=(4, 16))


@dataclass(frozen=True)
class FidelityCell:
    """One (d, n) cell of the fidelity table. NLL in nats per query point, CRPS in y's units; ``*_se`` are
    standard errors over datasets; gaps are PFN minus method, paired on the datasets both were scored on.
    ``ml2_failures`` counts datasets on which every ML-II restart failed (left out of ML-II's columns).
    ``bar_floor`` is the oracle's NLL after its normal predictive is moved onto the model's bars
    (:meth:`~priorfit.model.bar_distribution.BarDistribution.project_normal`) minus its NLL: the part of the gap to
    the oracle that the bars' resolution alone sets, which no training removes."""

    n_features: int
    n_context: int
    n_datasets: int
    pfn_nll: float
    pfn_nll_se: float
    oracle_nll: float
    gap_to_oracle: float
    gap_to_oracle_se: float
    pfn_crps: float
    oracle_crps: float
    coverage_50: float
    coverage_90: float
    pfn_ms_per_dataset: float
    oracle_ms_per_dataset: float
    pfn_ensemble_members: int = 1
    bar_floor: float | None = None
    marginal_datasets: int = 0
    marginal_nll: float | None = None
    gap_to_marginal: float | None = None
    gap_to_marginal_se: float | None = None
    marginal_crps: float | None = None
    marginal_coverage_50: float | None = None
    marginal_coverage_90: float | None = None
    marginal_max_r_hat: float | None = None
    marginal_min_ess: float | None = None
    marginal_divergences: int | None = None
    marginal_ms_per_dataset: float | None = None
    ml2_datasets: int = 0
    ml2_failures: int = 0
    ml2_nll: float | None = None
    gap_to_ml2: float | None = None
    gap_to_ml2_se: float | None = None
    ml2_crps: float | None = None
    ml2_ms_per_dataset: float | None = None


@dataclass
class FidelityReport:
    """The cells, the pooled calibration curves (observed coverage of central intervals per method, at
    `CALIBRATION_LEVELS`), the example datasets for plotting, and the settings."""

    cells: list[FidelityCell]
    calibration: dict[str, list[float]] = field(default_factory=dict)
    calibration_points: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    config: EvaluateConfig = field(default_factory=EvaluateConfig)
    seconds: float = float("nan")

    def to_json(self) -> dict[str, Any]:
        return dict(config=asdict(self.config), seconds=self.seconds, levels=list(CALIBRATION_LEVELS),
                    calibration=self.calibration, calibration_points=self.calibration_points,
                    cells=cells_to_json(self.cells), examples=self.examples)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FidelityReport":
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()}
        return cls(cells=[FidelityCell(**c) for c in data["cells"]], calibration=data["calibration"],
                   calibration_points=data.get("calibration_points", {}), examples=data.get("examples", []),
                   config=EvaluateConfig(**config), seconds=data.get("seconds", float("nan")))

    @classmethod
    def merge(cls, reports: list["FidelityReport"]) -> "FidelityReport":
        """One report from reports on other cells (e.g. other d, run side by side): cells sorted by (d, n),
        calibration curves averaged with weights by their number of points, the first examples found, the
        seconds added up."""
        names = {name for r in reports for name in r.calibration}
        calibration, points = {}, {}
        for name in sorted(names):
            parts = [(r.calibration[name], r.calibration_points.get(name, 1)) for r in reports if name in r.calibration]
            total = sum(w for _, w in parts)
            calibration[name] = [sum(c[i] * w for c, w in parts) / total for i in range(len(CALIBRATION_LEVELS))]
            points[name] = total
        return cls(cells=sorted((c for r in reports for c in r.cells), key=lambda c: (c.n_features, c.n_context)),
                   calibration=calibration, calibration_points=points,
                   examples=next((r.examples for r in reports if r.examples), []), config=reports[0].config,
                   seconds=sum(r.seconds for r in reports))


# ----------------------------------------------------------------------------------------------------------------
# scores


def _coverage(pit: Tensor, level: float) -> float:
    """Share of points inside the central `level` interval, i.e. with |F(y) - 1/2| <= level / 2."""
    return float(((pit - 0.5).abs() <= level / 2).double().mean())


def _mean_se(values: Tensor) -> tuple[float, float]:
    n = values.numel()
    return float(values.mean()), float(values.std() / math.sqrt(n)) if n > 1 else math.nan


@torch.inference_mode()
def pfn_predict(model: PFNTransformer, x: Tensor, y: Tensor, n_ctx: int, chunk: int = 64,
                ensemble: SymmetryEnsemble | None = None,
                precision: str = "float32") -> tuple[Tensor, Tensor, Tensor]:
    """The PFN's predictions at the points after the first `n_ctx` of each dataset (x `B x N x d`, y `B x N`),
    `chunk` datasets per forward pass: logits `B x (N - n_ctx) x K` over the bars of ``(y - loc) / scale``, and
    `loc`, `scale` (`B x 1`; 0 and 1 unless the model standardises targets). With an `ensemble`, the logits
    (float64) are those of its members' average; without, the model's own (float32). The forward passes run at
    `precision` (:mod:`priorfit.model.precision`)."""
    xf, yf = x.float(), y.float()
    logits, locs, scales = [], [], []
    for i in range(0, x.shape[0], chunk):
        cache = encode(model, xf[i:i + chunk, :n_ctx], yf[i:i + chunk, :n_ctx], ensemble, precision)
        logits.append(predict(model, cache, xf[i:i + chunk, n_ctx:], ensemble, precision))
        locs.append(cache.target_loc)
        scales.append(cache.target_scale)
    return torch.cat(logits), torch.cat(locs), torch.cat(scales)


def pfn_nll(bar: BarDistribution, logits: Tensor, loc: Tensor, scale: Tensor, y: Tensor) -> Tensor:
    """NLL of targets `y` (`B x m`) in their own units under the PFN's predictions (see :func:`pfn_predict`):
    the bar NLL of the standardised targets plus the log of the Jacobian."""
    loc, scale = loc.to(logits.dtype), scale.to(logits.dtype)
    return bar.nll(logits, (y.to(logits.dtype) - loc) / scale) + scale.log()


def _pfn_ms_per_dataset(model: PFNTransformer, x: Tensor, y: Tensor, n_ctx: int, count: int,
                        ensemble: SymmetryEnsemble | None = None, precision: str = "float32") -> float:
    """Milliseconds of the PFN's logits for one dataset (the median over the first `count` datasets)."""
    xf, yf = x.float(), y.float()
    pfn_predict(model, xf[:1], yf[:1], n_ctx, ensemble=ensemble, precision=precision)  # warm-up
    times = []
    for i in range(min(count, x.shape[0])):
        t = time.perf_counter()
        pfn_predict(model, xf[i:i + 1], yf[i:i + 1], n_ctx, ensemble=ensemble, precision=precision)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


@contextlib.contextmanager
def _one_thread():
    """Small GPyTorch fits and NUTS chains run faster on one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _marginal(prior: GPPrior, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor, config: EvaluateConfig, seed: int):
    from priorfit.exact.marginal import marginal_predictive

    with warnings.catch_warnings():  # a chain that did not converge shows in the cell's R-hat; no warning spam
        warnings.simplefilter("ignore", RuntimeWarning)
        return marginal_predictive(prior, x_ctx, y_ctx, x_qry, num_warmup=config.nuts_warmup,
                                   num_samples=config.nuts_samples, num_chains=config.nuts_chains, seed=seed)


# ----------------------------------------------------------------------------------------------------------------
# the report


def reference_protocol(prior: GPPrior, config: EvaluateConfig) -> dict[str, Any]:
    """What the exact references of a report depend on (the datasets and the NUTS / ML-II settings): a
    :class:`~priorfit.exact.store.ReferenceStore` computed under another protocol is refused."""
    return dict(prior=to_dict(prior), seed=config.seed, n_datasets=config.n_datasets, n_queries=config.n_queries,
                nuts_warmup=config.nuts_warmup, nuts_samples=config.nuts_samples, nuts_chains=config.nuts_chains,
                ml2_restarts=config.ml2_restarts)


def _stack(records: list[dict[str, Any]], name: str) -> Tensor:
    """Field `name` of the records as one flat float64 tensor (per-point fields such as "pit" concatenated)."""
    return torch.tensor([r[name] for r in records], dtype=torch.float64).flatten()


def _references(store: ReferenceStore, method: str, d: int, n: int, k: int, x: Tensor, y: Tensor,
                new_references: bool, on_reference: Callable[[], None] | None,
                compute: Callable[[int], dict[str, Any]]) -> tuple[list[int], list[dict[str, Any]]]:
    """The records of the first `k` datasets of a cell: from the store, else computed (and stored) when
    `new_references`; returns the indices that have one and their records."""
    used, records = [], []
    for i in range(k):
        fingerprint = dataset_fingerprint(x[i], y[i])
        record = store.get(method, d, n, i, fingerprint)
        if record is None and new_references:
            record = dict(fingerprint=fingerprint, **compute(i))
            store.put(method, d, n, i, record)
            if on_reference is not None:
                on_reference()
        if record is not None:
            used.append(i)
            records.append(record)
    return used, records


def _marginal_record(prior: GPPrior, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor, y_qry: Tensor,
                     config: EvaluateConfig, i: int) -> dict[str, Any]:
    t = time.perf_counter()
    with _one_thread():
        mix = _marginal(prior, x_ctx, y_ctx, x_qry, config, seed=config.seed + i)
        nll, crps, pit = -mix.log_prob(y_qry).mean(), mix.crps(y_qry).mean(), mix.cdf(y_qry)
    diag = mix.diagnostics
    return dict(nll=float(nll), crps=float(crps), pit=pit_list(pit),
                max_r_hat=float(diag.get("max_r_hat", math.nan)), min_ess=float(diag.get("min_ess", math.nan)),
                divergences=int(diag.get("num_divergences", 0)), ms=1000 * (time.perf_counter() - t))


def _ml2_record(prior: GPPrior, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor, y_qry: Tensor,
                config: EvaluateConfig, i: int) -> dict[str, Any]:
    t = time.perf_counter()
    with _one_thread():
        try:
            m, v = fit_ml2(prior, x_ctx, y_ctx, x_qry, restarts=config.ml2_restarts,
                           generator=torch.Generator().manual_seed(config.seed + i))
        except RuntimeError:  # every restart hit a non-PD kernel matrix: counted, left out of the gap
            return dict(failed=True, ms=1000 * (time.perf_counter() - t))
    return dict(failed=False, nll=float(normal_nll(m, v, y_qry).mean()), crps=float(normal_crps(m, v, y_qry).mean()),
                pit=pit_list(normal_pit(m, v, y_qry)), ms=1000 * (time.perf_counter() - t))


def _cell(ckpt: Checkpoint, prior: GPPrior, d: int, n: int, config: EvaluateConfig, pits: dict[str, list],
          store: ReferenceStore, new_references: bool = True,
          on_reference: Callable[[], None] | None = None):
    bar, model = ckpt.bar_distribution, ckpt.model
    generator = torch.Generator().manual_seed(config.seed * 100_003 + 1_000 * d + n)
    batch = prior.sample(config.n_datasets, n + config.n_queries, generator, n_features=d)
    x, y = batch.x, batch.y
    x_ctx, y_ctx, x_qry, y_qry = x[:, :n], y[:, :n], x[:, n:], y[:, n:]

    ensemble = symmetry_ensemble(prior, bar, d, config.ensemble_size)
    logits, loc, scale = (t.double() for t in pfn_predict(model, x, y, n, ensemble=ensemble,
                                                          precision=config.precision))
    pfn_nll_points = pfn_nll(bar, logits, loc, scale, y_qry)  # B x m
    nll_per_dataset = pfn_nll_points.mean(-1)
    z_qry = (y_qry - loc) / scale
    pfn_pit = bar.cdf(logits, z_qry)
    pfn_crps = (scale * bar.crps(logits, z_qry)).mean()
    pfn_ms = _pfn_ms_per_dataset(model, x, y, n, config.timing_datasets, ensemble, config.precision)

    t = time.perf_counter()
    mean, var = gp_predictive(prior, batch.params, x_ctx, y_ctx, x_qry)
    oracle_ms = 1000 * (time.perf_counter() - t) / config.n_datasets
    oracle_nll = normal_nll(mean, var, y_qry).mean(-1)
    # the oracle's normal moved onto the model's bars (in the model's frame): what the bars alone cost
    on_bars = bar.project_normal((mean - loc) / scale, var.sqrt() / scale)
    bar_floor = float((pfn_nll(bar, on_bars, loc, scale, y_qry).mean(-1) - oracle_nll).mean())
    pits["PFN"].append(pfn_pit.flatten())
    pits["oracle GP"].append(normal_pit(mean, var, y_qry).flatten())
    gap, gap_se = _mean_se(nll_per_dataset - oracle_nll)
    pfn_mean, pfn_se = _mean_se(nll_per_dataset)
    values: dict[str, Any] = dict(
        n_features=d, n_context=n, n_datasets=config.n_datasets, pfn_nll=pfn_mean, pfn_nll_se=pfn_se,
        oracle_nll=float(oracle_nll.mean()), gap_to_oracle=gap, gap_to_oracle_se=gap_se, bar_floor=bar_floor,
        pfn_crps=float(pfn_crps), oracle_crps=float(normal_crps(mean, var, y_qry).mean()),
        coverage_50=_coverage(pfn_pit, 0.5), coverage_90=_coverage(pfn_pit, 0.9),
        pfn_ensemble_members=1 if ensemble is None else len(ensemble),
        pfn_ms_per_dataset=pfn_ms, oracle_ms_per_dataset=oracle_ms,
    )

    k = min(config.marginal_datasets, config.n_datasets)
    if k:
        used, records = _references(store, "marginal", d, n, k, x, y, new_references, on_reference,
                                    lambda i: _marginal_record(prior, x_ctx[i], y_ctx[i], x_qry[i], y_qry[i], config, i))
        if used:
            nll_t, pit_t = _stack(records, "nll"), _stack(records, "pit")
            pits["marginal (NUTS)"].append(pit_t)
            gap, gap_se = _mean_se(nll_per_dataset[used] - nll_t)
            values.update(
                marginal_datasets=len(used), marginal_nll=float(nll_t.mean()), gap_to_marginal=gap,
                gap_to_marginal_se=gap_se, marginal_crps=float(_stack(records, "crps").mean()),
                marginal_coverage_50=_coverage(pit_t, 0.5), marginal_coverage_90=_coverage(pit_t, 0.9),
                marginal_max_r_hat=float(np.nanmax([r["max_r_hat"] for r in records])),
                marginal_min_ess=float(np.nanmin([r["min_ess"] for r in records])),
                marginal_divergences=int(sum(r["divergences"] for r in records)),
                marginal_ms_per_dataset=float(np.mean([r["ms"] for r in records])),
            )

    k = min(config.ml2_datasets, config.n_datasets)
    if k:
        tried, records = _references(store, "ml2", d, n, k, x, y, new_references, on_reference,
                                     lambda i: _ml2_record(prior, x_ctx[i], y_ctx[i], x_qry[i], y_qry[i], config, i))
        fitted = [i for i, r in zip(tried, records) if not r["failed"]]
        records_ok = [r for r in records if not r["failed"]]
        values.update(ml2_datasets=len(fitted), ml2_failures=len(tried) - len(fitted))
        if tried:
            values.update(ml2_ms_per_dataset=float(np.mean([r["ms"] for r in records])))
        if fitted:
            nll_t = _stack(records_ok, "nll")
            pits["ML-II GP"].append(_stack(records_ok, "pit"))
            gap, gap_se = _mean_se(nll_per_dataset[fitted] - nll_t)
            values.update(ml2_nll=float(nll_t.mean()), gap_to_ml2=gap, gap_to_ml2_se=gap_se,
                          ml2_crps=float(_stack(records_ok, "crps").mean()))
    return FidelityCell(**values)


def _examples(ckpt: Checkpoint, prior: GPPrior, config: EvaluateConfig) -> list[dict[str, Any]]:
    """1-D datasets with each method's predictive mean and 90% band on a grid, for the example plot."""
    grid = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]
    out = []
    longest = ckpt.max_context or max(config.example_context)
    for j, n in enumerate(n for n in config.example_context if n <= longest):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + 7_777 + j)
        batch = prior.sample(1, n, generator, n_features=1)
        x_ctx, y_ctx = batch.x[0], batch.y[0]
        example: dict[str, Any] = dict(n_context=n, x=x_ctx[:, 0].tolist(), y=y_ctx.tolist(),
                                       grid=grid[:, 0].tolist())
        logits, loc, scale = pfn_predict(ckpt.model, torch.cat([x_ctx, grid])[None], y_ctx[None], n,
                                         ensemble=symmetry_ensemble(prior, ckpt.bar_distribution, 1, config.ensemble_size),
                                         precision=config.precision)
        pfn = PredictiveDistribution(ckpt.bar_distribution, logits[0], loc=float(loc), scale=float(scale))
        q = pfn.quantile([0.05, 0.95])
        example["PFN"] = dict(mean=pfn.mean.tolist(), lo=q[:, 0].tolist(), hi=q[:, 1].tolist())
        params = {k: v[:1] for k, v in batch.params.items()}
        mean, var = gp_predictive(prior, params, x_ctx[None], y_ctx[None], grid[None])
        example["oracle GP"] = _band(mean[0], var[0])
        with _one_thread():
            if config.marginal_datasets:
                mix = _marginal(prior, x_ctx, y_ctx, grid, config, seed=config.seed)
                qm = mix.quantile([0.05, 0.95])
                example["marginal (NUTS)"] = dict(mean=mix.mean.tolist(), lo=qm[:, 0].tolist(),
                                                  hi=qm[:, 1].tolist())
            if config.ml2_datasets:
                m, v = ml2_fit(prior, x_ctx, y_ctx, restarts=config.ml2_restarts,
                               generator=torch.Generator().manual_seed(config.seed)).predict(grid)
                example["ML-II GP"] = _band(m, v)
        out.append(example)
    return out


def _band(mean: Tensor, var: Tensor) -> dict[str, list[float]]:
    half = 1.6448536269514722 * var.sqrt()
    return dict(mean=mean.tolist(), lo=(mean - half).tolist(), hi=(mean + half).tolist())


def evaluate(
    ckpt: Checkpoint,
    config: EvaluateConfig | None = None,
    progress: bool = True,
    examples: bool = True,
    on_cell: Callable[[list[FidelityCell]], None] | None = None,
    references: ReferenceStore | None = None,
    new_references: bool = True,
    on_reference: Callable[[], None] | None = None,
) -> FidelityReport:
    """The fidelity report of a checkpoint trained on a GP prior (see the module docstring); `examples` adds the
    1-D example datasets of the plots (when d = 1 is evaluated). `on_cell` is called with the cells done so far
    after each one (e.g. to save partial results of a long run).

    `references` (a store under :func:`reference_protocol` of this prior and config) supplies NUTS and ML-II
    results computed earlier, for any model on the same protocol; what it lacks is computed and added to it
    (`on_reference` is called after each addition, e.g. to save it), or, without `new_references`, left out:
    the marginal and ML-II columns then cover only the datasets the store holds."""
    config = config or EvaluateConfig()
    prior = ckpt.prior
    if not isinstance(prior, GPPrior):
        raise TypeError(
            f"evaluate needs a checkpoint trained on a GPPrior (the priors with an exact reference), got "
            f"{type(prior).__name__}"
        )
    n_features = config.n_features or tuple(range(1, prior.max_features + 1))
    too_many = [d for d in n_features if d > prior.max_features]
    if too_many:
        raise InputDataError(f"n_features {too_many} exceed the model's max_features ({prior.max_features})")
    longest = ckpt.max_context
    if longest is not None and max(config.n_context) > longest:
        raise InputDataError(
            f"n_context {max(config.n_context)} exceeds the {longest} context points the model was trained on"
        )
    if references is None:
        references = ReferenceStore(reference_protocol(prior, config))
    else:
        references.check_protocol(reference_protocol(prior, config))
    start = time.perf_counter()
    pits: dict[str, list] = {"PFN": [], "oracle GP": [], "marginal (NUTS)": [], "ML-II GP": []}
    todo = [(d, n) for d in n_features for n in config.n_context]
    cells = []
    for d, n in tqdm(todo, desc="evaluate", disable=not progress, dynamic_ncols=True):
        cells.append(_cell(ckpt, prior, d, n, config, pits, references, new_references, on_reference))
        if on_cell is not None:
            on_cell(cells)
    calibration = {name: [_coverage(torch.cat(p), c) for c in CALIBRATION_LEVELS] for name, p in pits.items() if p}
    points = {name: sum(t.numel() for t in p) for name, p in pits.items() if p}
    shown = _examples(ckpt, prior, config) if examples and 1 in n_features else []
    return FidelityReport(cells=cells, calibration=calibration, calibration_points=points, examples=shown,
                          config=config, seconds=time.perf_counter() - start)


def fidelity_report(ckpt: Checkpoint, progress: bool = True, **settings: Any) -> list[FidelityCell]:
    """The cells of :func:`evaluate`, its settings as keywords (the fields of :class:`EvaluateConfig`)."""
    return evaluate(ckpt, EvaluateConfig(**settings), progress=progress, examples=False).cells


# ----------------------------------------------------------------------------------------------------------------
# output


def format_table(cells: list[FidelityCell]) -> str:
    """A fixed-width text table of fidelity cells (NLL in nats per query point; gaps are PFN minus method)."""
    def fmt(v: float | None, spec: str) -> str:
        return "-".rjust(len(format(0.0, spec))) if v is None else format(v, spec)

    head = (f"{'d':>2} {'n':>4} | {'PFN':>7} {'oracle':>7} {'marginal':>8} {'ML-II':>7} | "
            f"{'-oracle':>7} {'floor':>6} {'-marginal':>14} {'-ML-II':>7} | {'cov50':>5} {'cov90':>5} | "
            f"{'CRPS PFN':>8} {'marg':>6} | {'ms PFN':>6} {'NUTS':>7} {'ML-II':>6} | {'R-hat':>5}")
    lines = [head, "-" * len(head)]
    for c in cells:
        marg_gap = "-" if c.gap_to_marginal is None else f"{c.gap_to_marginal:+.3f}±{c.gap_to_marginal_se:.3f}"
        lines.append(
            f"{c.n_features:>2} {c.n_context:>4} | {c.pfn_nll:7.3f} {c.oracle_nll:7.3f} {fmt(c.marginal_nll, '8.3f')} "
            f"{fmt(c.ml2_nll, '7.3f')} | {c.gap_to_oracle:+7.3f} {fmt(c.bar_floor, '+6.3f')} {marg_gap:>14} "
            f"{fmt(c.gap_to_ml2, '+7.3f')} | "
            f"{c.coverage_50:5.2f} {c.coverage_90:5.2f} | {c.pfn_crps:8.4f} {fmt(c.marginal_crps, '6.4f')} | "
            f"{c.pfn_ms_per_dataset:6.2f} {fmt(c.marginal_ms_per_dataset, '7.0f')} "
            f"{fmt(c.ml2_ms_per_dataset, '6.0f')} | {fmt(c.marginal_max_r_hat, '5.3f')}"
        )
    return "\n".join(lines)


def cells_to_json(cells: list[FidelityCell]) -> list[dict]:
    return [asdict(c) for c in cells]


_COLORS = {"PFN": "C0", "oracle GP": "C2", "marginal (NUTS)": "C3", "ML-II GP": "C1"}


def plot_report(report: FidelityReport, out_dir: str | Path) -> list[Path]:
    """Write nll_vs_context.png (top: NLL per context size and d, every method; bottom: the PFN's paired gap to
    each method with its standard error), calibration.png (observed vs nominal
    coverage of central intervals, pooled over the cells) and, when the report has 1-D examples, examples.png.
    Each file is written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    ds = sorted({c.n_features for c in report.cells})
    fig, axes = plt.subplots(2, len(ds), figsize=(4 * len(ds), 6.4), squeeze=False, sharey=False)
    for ax, d in zip(axes[0], ds):
        cells = [c for c in report.cells if c.n_features == d]
        ns = [c.n_context for c in cells]
        shown = []
        for name, attr in (("PFN", "pfn_nll"), ("oracle GP", "oracle_nll"), ("marginal (NUTS)", "marginal_nll"),
                           ("ML-II GP", "ml2_nll")):
            pts = [(n, getattr(c, attr)) for n, c in zip(ns, cells) if getattr(c, attr) is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", color=_COLORS[name], label=name, ms=3)
                if name != "ML-II GP":
                    shown += [v for _, v in pts]
        # ML-II's NLL explodes on small contexts (overfitted hyperparameters): keep the other methods readable
        lo, hi = min(shown), max(shown)
        pad = 0.15 * (hi - lo) + 0.05
        ax.set_ylim(lo - pad, hi + 2 * pad)
        off = [n for n, c in zip(ns, cells) if c.ml2_nll is not None and c.ml2_nll > hi + 2 * pad]
        if off:
            ax.text(0.02, 0.03, f"ML-II off scale at n = {', '.join(map(str, off))}", transform=ax.transAxes,
                    ha="left", va="bottom", fontsize=7, color=_COLORS["ML-II GP"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context points n")
        ax.set_title(f"d = {d}")
    # The slow methods score a subset of each cell's datasets, so their NLLs above are means over fewer datasets;
    # the paired gaps below compare the PFN with each method on the same datasets.
    for ax, d in zip(axes[1], ds):
        cells = [c for c in report.cells if c.n_features == d]
        shown = [0.0]
        for name, attr, shift in (("oracle GP", "gap_to_oracle", 0.97), ("marginal (NUTS)", "gap_to_marginal", 1.0),
                                  ("ML-II GP", "gap_to_ml2", 1.03)):
            pts = [(c.n_context * shift, getattr(c, attr), getattr(c, attr + "_se")) for c in cells
                   if getattr(c, attr) is not None]
            if pts:
                n, gap, se = zip(*pts)
                ax.errorbar(n, gap, yerr=se, fmt="o-", ms=3, capsize=2, color=_COLORS[name], label=f"PFN - {name}")
                if name != "ML-II GP":
                    shown += [g + e for g, e in zip(gap, se) if math.isfinite(e)] + list(gap)
        floor = [(c.n_context, c.bar_floor) for c in cells if c.bar_floor is not None]
        if floor:  # the part of the gap to the oracle that the model's bars alone set
            ax.plot(*zip(*floor), "--", color=_COLORS["oracle GP"], lw=1, label="bars' floor (oracle on the bars)")
        hi = max(shown)
        ax.set_ylim(min(-0.05, -0.25 * hi), 1.15 * hi + 0.02)
        ax.axhline(0, color="k", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context points n")
    axes[0][0].set_ylabel("NLL per held-out point (nats)")
    axes[0][0].legend(fontsize=8)
    axes[1][0].set_ylabel("PFN's NLL gap, paired (± s.e.)")
    axes[1][0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "nll_vs_context.png"))

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name, observed in report.calibration.items():
        ax.plot(CALIBRATION_LEVELS, observed, "o-", ms=3, color=_COLORS[name], label=name)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "calibration.png"))

    if report.examples:
        fig, axes = plt.subplots(1, len(report.examples), figsize=(4.5 * len(report.examples), 3.4),
                                 squeeze=False)
        for ax, ex in zip(axes[0], report.examples):
            grid = np.asarray(ex["grid"])
            for name in ("oracle GP", "marginal (NUTS)", "ML-II GP", "PFN"):
                if name in ex:
                    band = ex[name]
                    ax.plot(grid, band["mean"], color=_COLORS[name], lw=1.2, label=name)
                    ax.fill_between(grid, band["lo"], band["hi"], color=_COLORS[name], alpha=0.12)
            ax.plot(ex["x"], ex["y"], "k.", ms=5)
            ax.set_title(f"n = {ex['n_context']} (90% bands)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "examples.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, dpi=110, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
