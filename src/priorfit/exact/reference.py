"""What an exact reference is: a slow, exact (or, for the practitioner's baseline, fitted) predictive for one
dataset, that a PFN trained on a prior is measured against.

A prior declares its references with ``prior.references(settings)``; evaluation, training's held-out gap and the
benchmarks loop over what it returns and use each only through this protocol. So a new prior brings its own exact
inference in one place, and nothing else asks which prior it holds.

Kinds, which decide on how many datasets a fidelity report runs a reference:

- ``ORACLE``: the exact posterior given the hyperparameters the dataset was drawn with (``Task.truth``). Cheap,
  on every dataset; a bound no method reaches, since no method sees the truth.
- ``MARGINAL``: the Bayes posterior predictive with the hyperparameters integrated out, the target a PFN
  approximates. Slow (MCMC), on a subset; results are kept in a :class:`~priorfit.exact.store.ReferenceStore`.
- ``FITTED``: a practitioner's plug-in baseline (e.g. ML-II). Slow, on a subset, stored too.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from priorfit.predictive.base import Predictive
from priorfit.validation import check_int

__all__ = ["ReferenceKind", "ReferenceSettings", "Task", "ReferenceResult", "Reference", "R_HAT_LIMIT",
           "RERUN_FACTOR", "longer_chains"]


class ReferenceKind(enum.Enum):
    ORACLE = "oracle"
    MARGINAL = "marginal"
    FITTED = "fitted"


@dataclass(frozen=True)
class ReferenceSettings:
    """How much work the slow references do per dataset.

    Attributes:
        nuts_warmup, nuts_samples, nuts_chains: MCMC adaptation steps, kept draws per chain, and chains.
        ml2_restarts: starts of a marginal-likelihood fit.
    """

    nuts_warmup: int = 200
    nuts_samples: int = 200
    nuts_chains: int = 2
    ml2_restarts: int = 3

    def __post_init__(self) -> None:
        check_int("nuts_warmup", self.nuts_warmup, minimum=0)
        for name in ("nuts_samples", "nuts_chains", "ml2_restarts"):
            check_int(name, getattr(self, name), minimum=1)


@dataclass(frozen=True)
class Task:
    """One dataset to predict: `n x d` context inputs, `n` targets, `m x d` query inputs (float64), and the
    latent values the prior drew it with (its ``Params`` tree with a leading dimension of 1; None when unknown)."""

    x_ctx: Tensor
    y_ctx: Tensor
    x_qry: Tensor
    truth: Any = None


@dataclass(frozen=True)
class ReferenceResult:
    """A reference's predictive for one task, or None where it failed (e.g. every ML-II start diverged: counted
    and left out of the scores). MCMC references fill in their diagnostics (split R-hat, bulk effective sample
    size, divergent transitions); others leave them NaN / 0."""

    predictive: Predictive | None
    max_r_hat: float = math.nan
    min_ess: float = math.nan
    divergences: int = 0

    @property
    def failed(self) -> bool:
        return self.predictive is None

    @classmethod
    def from_mcmc(cls, predictive: Predictive) -> "ReferenceResult":
        """The result of an MCMC reference whose predictive carries ``diagnostics`` (``max_r_hat``, ``min_ess``,
        ``num_divergences``, as :func:`priorfit.exact.marginal_predictive` reports them)."""
        diag = getattr(predictive, "diagnostics", {})
        return cls(predictive, max_r_hat=float(diag.get("max_r_hat", math.nan)),
                   min_ess=float(diag.get("min_ess", math.nan)), divergences=int(diag.get("num_divergences", 0)))


@runtime_checkable
class Reference(Protocol):
    """An exact reference of a prior (see the module docstring).

    Attributes:
        name: identifier in reports and reference stores ("oracle", "marginal", "ml2", ...).
        label: what tables and plots call it ("oracle GP", "marginal (NUTS)", ...).
        kind: a :class:`ReferenceKind`.
    """

    name: str
    label: str
    kind: ReferenceKind

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        """The reference's predictive of noisy y at ``task.x_qry``; ``seed`` seeds whatever it draws."""
        ...


#: Split R-hat above which an MCMC reference's run is rerun with longer chains (:func:`longer_chains`).
R_HAT_LIMIT = 1.05
#: How much longer (warm-up and draws) the rerun's chains are.
RERUN_FACTOR = 4


def longer_chains(reference: Reference, factor: int = RERUN_FACTOR) -> Reference | None:
    """The same MCMC reference with ``factor`` times the warm-up and draws per chain, or None for a reference
    without chains (an MCMC reference is a frozen dataclass with ``num_warmup`` and ``num_samples``). A sampler
    of another kind says what its longer run is by a ``longer(factor)`` method (e.g. SMC: more moves)."""
    if hasattr(reference, "longer"):
        return reference.longer(factor)
    fields = getattr(reference, "__dataclass_fields__", {})
    if "num_warmup" not in fields or "num_samples" not in fields:
        return None
    return dataclasses.replace(reference, num_warmup=factor * reference.num_warmup,
                               num_samples=factor * reference.num_samples)
