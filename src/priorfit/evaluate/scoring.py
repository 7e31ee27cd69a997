"""How far a PFN is from exact Bayesian inference, on datasets drawn from the PFN's own prior.

The fidelity protocol of DESIGN.md. For each number of input features d and context size n, ``n_datasets``
datasets of n + ``n_queries`` points are drawn with a fixed seed, and the held-out points are scored under the
PFN's predictive (one forward pass) and under each exact reference the prior declares
(:meth:`Prior.references <priorfit.priors.base.Prior.references>`; for a GP: the oracle with the true
hyperparameters, the NUTS marginal over the hyperpriors, which is what the PFN approximates, and ML-II). One loop
scores them all through the :class:`~priorfit.predictive.Predictive` interface.

Scores per cell and method: mean NLL per query point (nats), CRPS (in y's units), coverage of the central 50% and
90% intervals (from the PIT, F(y)), and milliseconds per dataset. Slow references (marginal, fitted) run on the
first ``marginal_datasets`` / ``ml2_datasets`` datasets of each cell, and the PFN's gaps to them are paired
differences on exactly those datasets (with their standard errors). Their results depend on the datasets alone,
not on the PFN, so a :class:`~priorfit.exact.store.ReferenceStore` keeps them per dataset and any later model on
the same protocol reuses them (``priorfit evaluate --references``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor
from tqdm.auto import tqdm

from priorfit.checkpoint import Checkpoint
from priorfit.evaluate.config import CALIBRATION_LEVELS, EvaluateConfig, reference_protocol
from priorfit.evaluate.report import PFN, FidelityCell, FidelityReport, MethodScores
from priorfit.exact.reference import (R_HAT_LIMIT, RERUN_FACTOR, Reference, ReferenceKind, Task,
                                     longer_chains)
from priorfit.exact.store import ReferenceStore, dataset_fingerprint, pit_list
from priorfit.exceptions import ConfigError, InputDataError, OutOfDomainWarning
from priorfit.model.ensemble import SymmetryEnsemble, symmetry_ensemble
from priorfit.model.loss import pfn_nll, pfn_predict
from priorfit.model.transformer import PFNTransformer
from priorfit.predictive.bar import BarPredictive
from priorfit.predictive.base import Predictive
from priorfit.priors.base import Prior
from priorfit.seeding import dataset_seed, derive_seed, example_seed

#: derive_seed's key of the user path's random units
_UNITS_STREAM = 11

__all__ = ["evaluate", "fidelity_report"]


@dataclass(frozen=True)
class _Record:
    """One reference's scores on one dataset (what a ReferenceStore keeps, less the fingerprint)."""

    nll: float = math.nan
    crps: float = math.nan
    pit: tuple[float, ...] = ()
    ms: float = math.nan
    failed: bool = False
    max_r_hat: float = math.nan
    min_ess: float = math.nan
    divergences: int = 0
    chain_factor: int = 1  # RERUN_FACTOR where the first chains' R-hat exceeded R_HAT_LIMIT

    def to_json(self) -> dict[str, Any]:
        if self.failed:
            return dict(failed=True, ms=self.ms)
        return dict(failed=False, nll=self.nll, crps=self.crps, pit=list(self.pit), ms=self.ms,
                    max_r_hat=self.max_r_hat, min_ess=self.min_ess, divergences=self.divergences,
                    chain_factor=self.chain_factor)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "_Record":
        if data.get("failed", False):
            return cls(failed=True, ms=data["ms"])
        return cls(nll=data["nll"], crps=data["crps"], pit=tuple(data["pit"]), ms=data["ms"],
                   max_r_hat=data.get("max_r_hat", math.nan), min_ess=data.get("min_ess", math.nan),
                   divergences=data.get("divergences", 0), chain_factor=data.get("chain_factor", 1))

    @property
    def unconverged(self) -> bool:
        """An MCMC run whose R-hat exceeds the limit and that has not been rerun with longer chains yet."""
        return self.max_r_hat > R_HAT_LIMIT and self.chain_factor == 1


def _coverage(pit: Tensor, level: float) -> float:
    """Share of points inside the central `level` interval, i.e. with |F(y) - 1/2| <= level / 2."""
    return float(((pit - 0.5).abs() <= level / 2).double().mean())


def _mean_se(values: Tensor) -> tuple[float, float]:
    n = values.numel()
    return float(values.mean()), float(values.std() / math.sqrt(n)) if n > 1 else math.nan


@contextlib.contextmanager
def _one_thread():
    """Every timed method runs on one torch thread, so that the ms columns compare like for like (small GP fits
    and NUTS chains run fastest on one thread anyway)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):  # numpy's and scipy's BLAS too (scikit-learn's GP)
            yield
    finally:
        torch.set_num_threads(threads)


def _pfn_ms_per_dataset(model: PFNTransformer, x: Tensor, y: Tensor, n_ctx: int, count: int,
                        ensemble: SymmetryEnsemble | None = None, precision: str = "float32") -> float:
    """Milliseconds of the PFN's logits for one dataset on one thread, as the references (the median over the
    first `count` datasets)."""
    xf, yf = x.float(), y.float()
    times = []
    with _one_thread():
        pfn_predict(model, xf[:1], yf[:1], n_ctx, ensemble=ensemble, precision=precision)  # warm-up
        for i in range(min(count, x.shape[0])):
            t = time.perf_counter()
            pfn_predict(model, xf[i:i + 1], yf[i:i + 1], n_ctx, ensemble=ensemble, precision=precision)
            times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def _score(reference: Reference, task: Task, y_qry: Tensor, seed: int) -> tuple[_Record, Predictive | None]:
    """Run one reference on one dataset and score its predictive at the held-out targets; the predictive too
    (None where the reference failed)."""
    t = time.perf_counter()
    slow = reference.kind is not ReferenceKind.ORACLE
    with _one_thread() if slow else contextlib.nullcontext():
        result = reference.predict(task, seed)
        if result.failed:
            return _Record(failed=True, ms=1000 * (time.perf_counter() - t)), None
        pred = result.predictive
        nll, crps, pit = -pred._log_prob(y_qry).mean(), pred._crps(y_qry).mean(), pred._cdf(y_qry)
    record = _Record(nll=float(nll), crps=float(crps), pit=tuple(pit_list(pit)),
                     ms=1000 * (time.perf_counter() - t), max_r_hat=result.max_r_hat, min_ess=result.min_ess,
                     divergences=result.divergences)
    return record, pred


@dataclass(frozen=True)
class UserUnits:
    """Per-dataset affine maps to a user's units: y_user = a * y + b, x_user = c * x + e (per feature).

    Scales are log-uniform over 1e-4 .. 1e4; each shift is its scale times a log-uniform 0.1 .. 1e4 with a random
    sign, so the data sit far from 0 relative to their spread, as raw measurements often do."""

    a: Tensor  # B
    b: Tensor  # B
    c: Tensor  # B x d
    e: Tensor  # B x d

    @classmethod
    def draw(cls, batch_size: int, d: int, generator: torch.Generator) -> "UserUnits":
        def scale(*shape: int) -> Tensor:
            return 10.0 ** (8 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 4)

        def shift(s: Tensor) -> Tensor:
            sign = torch.where(torch.rand(s.shape, generator=generator) < 0.5, -1.0, 1.0).double()
            return s * sign * 10.0 ** (5 * torch.rand(s.shape, generator=generator, dtype=torch.float64) - 1)

        a, c = scale(batch_size), scale(batch_size, d)
        return cls(a=a, b=shift(a), c=c, e=shift(c))


def _user_path(ckpt: Checkpoint, x: Tensor, y: Tensor, n: int, config: EvaluateConfig,
               units: UserUnits) -> tuple[Tensor, Tensor, Tensor, float]:
    """The PFN's predictions through :class:`~priorfit.estimators.PFNRegressor` (its defaults, this config's
    ensemble and precision) on each dataset moved to ``units``, mapped back to the prior's units: logits
    (`B x m x K`), loc and scale (`B x 1`), and the median milliseconds of a fit plus a prediction (on one
    thread, as the references)."""
    from priorfit.estimators import PFNRegressor

    xu = units.c[:, None, :] * x.double() + units.e[:, None, :]
    yu = units.a[:, None] * y.double() + units.b[:, None]
    logits, locs, scales, times = [], [], [], []
    for i in range(x.shape[0]):
        reg = PFNRegressor(ckpt, ensemble_size=config.ensemble_size, precision=config.precision)
        t = time.perf_counter()
        with warnings.catch_warnings(), _one_thread():
            warnings.simplefilter("ignore", OutOfDomainWarning)  # queries beyond the context's range are fine
            pred = reg.fit(xu[i, :n].numpy(), yu[i, :n].numpy()).predict_distribution(xu[i, n:].numpy())
        times.append(time.perf_counter() - t)
        logits.append(pred.logits.double())
        # y = (y_user - b) / a: the same bars, moved back
        locs.append((pred.loc.double() - units.b[i]) / units.a[i])
        scales.append(pred.scale.double() / units.a[i])
    loc = torch.stack([v.reshape(-1)[:1] for v in locs])
    scale = torch.stack([v.reshape(-1)[:1] for v in scales])
    return torch.stack(logits), loc, scale, 1000 * float(np.median(times))


class _Cell:
    """The datasets of one (d, n) cell, the PFN's predictions on them (by the config's path) and its milliseconds
    per dataset."""

    def __init__(self, ckpt: Checkpoint, d: int, n: int, config: EvaluateConfig) -> None:
        prior = ckpt.prior
        generator = torch.Generator().manual_seed(dataset_seed(config.seed, d, n))
        self.batch = prior.sample(config.n_datasets, n + config.n_queries, generator, n_features=d, n_context=n)
        self.d, self.n = d, n
        x, y = self.batch.x, self.batch.y
        self.y_qry = y[:, n:]
        self.ensemble = symmetry_ensemble(prior, ckpt.bar_distribution, d, config.ensemble_size)
        if config.path == "user":
            units = UserUnits.draw(config.n_datasets, d,
                                   torch.Generator().manual_seed(derive_seed(config.seed, _UNITS_STREAM, d, n)))
            self.logits, self.loc, self.scale, self.ms = _user_path(ckpt, x, y, n, config, units)
        else:
            self.logits, self.loc, self.scale = (t.double() for t in pfn_predict(
                ckpt.model, x, y, n, ensemble=self.ensemble, precision=config.precision))
            self.ms = _pfn_ms_per_dataset(ckpt.model, x, y, n, config.timing_datasets, self.ensemble,
                                          config.precision)
        self.nll = pfn_nll(ckpt.bar_distribution, self.logits, self.loc, self.scale, self.y_qry).mean(-1)  # B

    def task(self, i: int) -> Task:
        truth = None if self.batch.params is None else self.batch.params.map(lambda t: t[i:i + 1])
        x, y, n = self.batch.x[i], self.batch.y[i], self.n
        return Task(x_ctx=x[:n], y_ctx=y[:n], x_qry=x[n:], truth=truth)

    def fingerprint(self, i: int) -> list[float]:
        return dataset_fingerprint(self.batch.x[i], self.batch.y[i])


def _slow_record(reference: Reference, task: Task, y_qry: Tensor, seed: int, first: _Record | None = None) -> _Record:
    """A slow reference's record (``first``: its first run, already stored); an MCMC run with R-hat above
    R_HAT_LIMIT is rerun once with chains RERUN_FACTOR times longer, and the rerun is kept unless it failed
    (whatever its R-hat, which the report then shows), timed as both runs together."""
    record = first if first is not None else _score(reference, task, y_qry, seed)[0]
    longer = longer_chains(reference) if record.max_r_hat > R_HAT_LIMIT else None
    if longer is None:
        return record
    rerun, _ = _score(longer, task, y_qry, seed)
    if rerun.failed:
        return record
    # its time is what the reference cost: both runs
    return dataclasses.replace(rerun, chain_factor=RERUN_FACTOR, ms=record.ms + rerun.ms)


def _records(cell: _Cell, reference: Reference, k: int, config: EvaluateConfig, store: ReferenceStore,
             new_references: bool, on_reference: Callable[[], None] | None,
             ) -> tuple[list[int], list[_Record], list[Predictive | None]]:
    """The records of the first `k` datasets of a cell. The oracle is computed afresh; slow references come from
    the store, else are computed (and stored) when `new_references`, as is a stored MCMC run that did not
    converge (:attr:`_Record.unconverged`). Returns the indices that have one, their records, and the oracle's
    predictives (for the bars' floor; none for the other references)."""
    used, records, predictives = [], [], []
    for i in range(k):
        if reference.kind is ReferenceKind.ORACLE:
            record, pred = _score(reference, cell.task(i), cell.y_qry[i], config.seed + i)
            predictives.append(pred)
        else:
            fingerprint = cell.fingerprint(i)
            stored = store.get(reference.name, cell.d, cell.n, i, fingerprint)
            record = None if stored is None else _Record.from_json(stored)
            if new_references and (record is None or record.unconverged):
                record = _slow_record(reference, cell.task(i), cell.y_qry[i], config.seed + i, first=record)
                store.put(reference.name, cell.d, cell.n, i, dict(fingerprint=fingerprint, **record.to_json()))
                if on_reference is not None:
                    on_reference()
        if record is not None:
            used.append(i)
            records.append(record)
    return used, records, predictives


def _reference_scores(cell: _Cell, used: list[int], records: list[_Record]) -> tuple[MethodScores, Tensor]:
    """A reference's scores on a cell's datasets that have a record, and its PIT values there."""
    ok = [(i, r) for i, r in zip(used, records) if not r.failed]
    ms = float(np.mean([r.ms for r in records])) if records else None
    if not ok:
        return MethodScores(datasets=0, failures=len(records), ms_per_dataset=ms), torch.zeros(0, dtype=torch.float64)
    idx = [i for i, _ in ok]
    nll = torch.tensor([r.nll for _, r in ok], dtype=torch.float64)
    pit = torch.tensor([p for _, r in ok for p in r.pit], dtype=torch.float64)
    gap, gap_se = _mean_se(cell.nll[idx] - nll)
    mcmc = any(math.isfinite(r.max_r_hat) for _, r in ok)
    return MethodScores(
        datasets=len(ok), failures=len(records) - len(ok), nll=float(nll.mean()), nll_se=_mean_se(nll)[1],
        crps=float(np.mean([r.crps for _, r in ok])), coverage_50=_coverage(pit, 0.5),
        coverage_90=_coverage(pit, 0.9), ms_per_dataset=ms, gap=gap, gap_se=gap_se,
        max_r_hat=float(np.nanmax([r.max_r_hat for _, r in ok])) if mcmc else None,
        min_ess=float(np.nanmin([r.min_ess for _, r in ok])) if mcmc else None,
        divergences=int(sum(r.divergences for _, r in ok)) if mcmc else None,
    ), pit


def _bar_floor(ckpt: Checkpoint, cell: _Cell, oracle: list[Predictive], oracle_nll: Tensor) -> float:
    """The oracle's predictives (one per dataset of the cell) moved onto the model's bars (in each dataset's
    frame), their NLL minus the oracle's, averaged over the cell: what the bars' resolution alone costs."""
    bar = ckpt.bar_distribution
    inner = bar.borders[1:-1].to(torch.float64)  # K - 1
    excess = []
    for i in range(cell.batch.batch_size):
        pred = oracle[i]
        at = cell.loc[i] + cell.scale[i] * inner[:, None].expand(-1, len(pred))  # (K-1) x m, the user's units
        logits = bar.project(pred._cdf(at).T, pred._sf(at).T)  # m x K
        nll = pfn_nll(bar, logits[None], cell.loc[i:i + 1], cell.scale[i:i + 1], cell.y_qry[i:i + 1]).mean()
        excess.append(float(nll) - float(oracle_nll[i]))
    return float(np.mean(excess))


def _score_cell(ckpt: Checkpoint, references: tuple[Reference, ...], d: int, n: int, config: EvaluateConfig,
                pits: dict[str, list[Tensor]], store: ReferenceStore, new_references: bool,
                on_reference: Callable[[], None] | None) -> FidelityCell:
    cell = _Cell(ckpt, d, n, config)
    bar = ckpt.bar_distribution
    z_qry = (cell.y_qry - cell.loc) / cell.scale
    pfn_pit = bar.cdf(cell.logits, z_qry)
    pits.setdefault(PFN, []).append(pfn_pit.flatten())
    pfn_mean, pfn_se = _mean_se(cell.nll)
    pfn = MethodScores(
        datasets=config.n_datasets, nll=pfn_mean, nll_se=pfn_se,
        crps=float((cell.scale * bar.crps(cell.logits, z_qry)).mean()),
        coverage_50=_coverage(pfn_pit, 0.5), coverage_90=_coverage(pfn_pit, 0.9),
        ms_per_dataset=cell.ms,
    )
    scores: dict[str, MethodScores] = {}
    bar_floor = None
    for reference in references:
        k = config.datasets_for(reference.kind)
        if not k:
            continue
        used, records, predictives = _records(cell, reference, k, config, store, new_references, on_reference)
        if not records:
            continue
        method, pit = _reference_scores(cell, used, records)
        target = config.gap_target(d)
        if (reference.kind is ReferenceKind.MARGINAL and k < config.n_datasets and target is not None
                and method.gap is not None and abs(method.gap - target) <= 2 * (method.gap_se or 0.0)):
            # too close to its target to tell: the reference runs on every dataset of the cell
            used, records, _ = _records(cell, reference, config.n_datasets, config, store, new_references,
                                        on_reference)
            method, pit = _reference_scores(cell, used, records)
        scores[reference.name] = method
        if pit.numel():
            pits.setdefault(reference.name, []).append(pit)
        if reference.kind is ReferenceKind.ORACLE and len(used) == config.n_datasets and None not in predictives:
            oracle_nll = torch.tensor([r.nll for r in records], dtype=torch.float64)
            bar_floor = _bar_floor(ckpt, cell, predictives, oracle_nll)
    return FidelityCell(n_features=d, n_context=n, n_datasets=config.n_datasets, pfn=pfn, references=scores,
                        bar_floor=bar_floor, pfn_ensemble_members=1 if cell.ensemble is None else len(cell.ensemble))


def _examples(ckpt: Checkpoint, references: tuple[Reference, ...], config: EvaluateConfig) -> list[dict[str, Any]]:
    """1-D datasets with each method's predictive mean and 90% band on a grid, for the example plot."""
    prior = ckpt.prior
    grid = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]
    out = []
    longest = ckpt.max_context or max(config.example_context)
    for j, n in enumerate(n for n in config.example_context if n <= longest):
        batch = prior.sample(1, n, torch.Generator().manual_seed(example_seed(config.seed, j)), n_features=1,
                             n_context=n)
        x_ctx, y_ctx = batch.x[0], batch.y[0]
        example: dict[str, Any] = dict(n_context=n, x=x_ctx[:, 0].tolist(), y=y_ctx.tolist(),
                                       grid=grid[:, 0].tolist())
        logits, loc, scale = pfn_predict(ckpt.model, torch.cat([x_ctx, grid])[None], y_ctx[None], n,
                                         ensemble=symmetry_ensemble(prior, ckpt.bar_distribution, 1,
                                                                    config.ensemble_size),
                                         precision=config.precision)
        methods: list[tuple[str, Any]] = [
            (PFN, BarPredictive(ckpt.bar_distribution, logits[0], loc=float(loc), scale=float(scale)))]
        task = Task(x_ctx=x_ctx, y_ctx=y_ctx, x_qry=grid, truth=batch.params)
        for reference in references:
            if config.datasets_for(reference.kind):
                result = reference.predict(task, config.seed)
                if not result.failed:
                    methods.append((reference.name, result.predictive))
        for name, pred in methods:
            q = pred.quantile([0.05, 0.95])
            example[name] = dict(mean=pred.mean.tolist(), lo=q[:, 0].tolist(), hi=q[:, 1].tolist())
        out.append(example)
    return out


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
    """The fidelity report of a checkpoint against its prior's exact references (see the module docstring);
    ``examples`` adds the 1-D example datasets of the plots (when d = 1 is evaluated). ``on_cell`` is called
    with the cells done so far after each one (e.g. to save partial results of a long run).

    ``references`` (a store under :func:`~priorfit.evaluate.config.reference_protocol` of this prior and config)
    supplies slow reference results computed earlier, for any model on the same protocol; what it lacks is
    computed and added to it (``on_reference`` is called after each addition, e.g. to save it), or, without
    ``new_references``, left out: those columns then cover only the datasets the store holds."""
    config = config or EvaluateConfig()
    prior = ckpt.prior
    if not isinstance(prior, Prior):
        raise TypeError(f"the checkpoint's prior must follow the Prior protocol (max_features, sample, symmetries, "
                        f"references), got {type(prior).__name__}")
    exact = tuple(prior.references(config.reference_settings))
    if not exact:
        raise ConfigError(f"evaluate needs a prior with exact references; {type(prior).__name__} declares none")
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
    pits: dict[str, list[Tensor]] = {}
    todo = [(d, n) for d in n_features for n in config.n_context]
    cells = []
    for d, n in tqdm(todo, desc="evaluate", disable=not progress, dynamic_ncols=True):
        cells.append(_score_cell(ckpt, exact, d, n, config, pits, references, new_references, on_reference))
        if on_cell is not None:
            on_cell(cells)
    calibration = {name: [_coverage(torch.cat(p), c) for c in CALIBRATION_LEVELS] for name, p in pits.items()}
    points = {name: sum(t.numel() for t in p) for name, p in pits.items()}
    shown = _examples(ckpt, exact, config) if examples and 1 in n_features else []
    labels = {PFN: "PFN", **{r.name: r.label for r in exact}}
    return FidelityReport(cells=cells, calibration=calibration, calibration_points=points, examples=shown,
                          labels=labels, kinds={r.name: r.kind.value for r in exact}, config=config,
                          seconds=time.perf_counter() - start)


def fidelity_report(ckpt: Checkpoint, progress: bool = True, **settings: Any) -> list[FidelityCell]:
    """The cells of :func:`evaluate`, its settings as keywords (the fields of :class:`EvaluateConfig`)."""
    return evaluate(ckpt, EvaluateConfig(**settings), progress=progress, examples=False).cells
