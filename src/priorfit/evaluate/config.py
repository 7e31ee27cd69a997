"""What a fidelity report measures: the protocol of DESIGN.md as a typed configuration, and what its stored exact
references depend on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from priorfit.config import to_dict
from priorfit.exact.reference import ReferenceKind, ReferenceSettings
from priorfit.model.precision import check_precision
from priorfit.validation import check_int

__all__ = ["EvaluateConfig", "reference_protocol", "CALIBRATION_LEVELS", "PATHS"]

#: How a report feeds the PFN: through the estimator in random units, or raw into the network.
PATHS = ("user", "raw")

#: Central-interval levels of the calibration curve.
CALIBRATION_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass(frozen=True)
class EvaluateConfig:
    """What `evaluate` measures (defaults: DESIGN.md's protocol, the slow references on a subset of each cell).

    Attributes:
        n_context: context sizes n.
        n_features: numbers of input features d (None: 1 .. the prior's max_features).
        n_datasets: datasets per cell (PFN and oracle).
        n_queries: held-out points per dataset.
        marginal_datasets: of which the first are scored by the prior's marginal references (NUTS; 0: none).
        nuts_warmup, nuts_samples, nuts_chains: NUTS settings per dataset.
        ml2_datasets: of which the first are scored by its fitted references (ML-II; 0: none).
        ml2_restarts: ML-II's L-BFGS restarts.
        timing_datasets: datasets per cell on which the PFN's time per dataset is measured one at a time.
        example_context: context sizes of the example plot's 1-D datasets.
        seed: seeds the datasets, NUTS and the ML-II restarts.
        ensemble_size: the PFN's predictions are averaged over this many transforms of each dataset under which
            the prior is invariant (:mod:`priorfit.model.ensemble`); 1 is the plain PFN.
        precision: the arithmetic of the PFN's forward passes, "float32" or "bfloat16"
            (:mod:`priorfit.model.precision`).
        path: how the PFN is fed. "user" (the default): each dataset is moved to random units (targets and every
            feature scaled by factors over 8 orders of magnitude and shifted far from 0) and predicted by
            :class:`~priorfit.estimators.PFNRegressor` with its defaults, as a user would; its predictive is
            mapped back to the prior's units exactly (the Jacobian included), where the references score.
            "raw": the datasets in the prior's own units straight into the network (the reports before
            units-free training).
        gap_targets: (d, target) pairs: a cell whose gap to the marginal reference is within two standard errors
            of its d's target gets that reference on all of its datasets, not only the first
            ``marginal_datasets`` (one rule for every cell that is too close to call).
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
    path: str = "user"
    gap_targets: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        check_precision("precision", self.precision)
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {self.path!r}")
        for name in ("n_datasets", "n_queries", "timing_datasets", "ensemble_size"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("marginal_datasets", "ml2_datasets", "seed"):
            check_int(name, getattr(self, name), minimum=0)
        self.reference_settings  # checks the NUTS and ML-II settings
        for name in ("n_context", "example_context"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {values!r}")
            for v in values:
                check_int(f"each of {name}", v, minimum=1)
        if not isinstance(self.gap_targets, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], int) and p[0] >= 1
                and isinstance(p[1], (int, float)) and p[1] >= 0 for p in self.gap_targets):
            raise ValueError(f"gap_targets must be a tuple of (d >= 1, target >= 0) pairs, got {self.gap_targets!r}")
        if len({d for d, _ in self.gap_targets}) != len(self.gap_targets):
            raise ValueError(f"gap_targets gives some d more than one target: {self.gap_targets!r}")
        if self.n_features is not None:
            if not isinstance(self.n_features, tuple) or not self.n_features:
                raise ValueError(f"n_features must be None or a non-empty tuple of positive integers, got "
                                 f"{self.n_features!r}")
            for v in self.n_features:
                check_int("each of n_features", v, minimum=1)

    def gap_target(self, d: int) -> float | None:
        """The target of the PFN's gap to the marginal reference at d input features, if one is set."""
        return dict(self.gap_targets).get(d)

    @property
    def reference_settings(self) -> ReferenceSettings:
        """How much work the slow references do per dataset."""
        return ReferenceSettings(nuts_warmup=self.nuts_warmup, nuts_samples=self.nuts_samples,
                                 nuts_chains=self.nuts_chains, ml2_restarts=self.ml2_restarts)

    def datasets_for(self, kind: ReferenceKind) -> int:
        """On how many datasets of a cell (the first ones) a reference of this kind runs."""
        count = {ReferenceKind.ORACLE: self.n_datasets, ReferenceKind.MARGINAL: self.marginal_datasets,
                 ReferenceKind.FITTED: self.ml2_datasets}[kind]
        return min(count, self.n_datasets)

    @classmethod
    def quick(cls) -> "EvaluateConfig":
        """A run of seconds, for tests and a first look: d = 1, n in {4, 16}, a few datasets, short NUTS chains."""
        return cls(n_context=(4, 16), n_features=(1,), n_datasets=16, n_queries=16, marginal_datasets=2,
                   nuts_warmup=60, nuts_samples=60, ml2_datasets=2, ml2_restarts=1, timing_datasets=2,
                   example_context=(4, 16))


def reference_protocol(prior: Any, config: EvaluateConfig) -> dict[str, Any]:
    """What the stored exact references of a report depend on (the datasets and the slow references' settings):
    a :class:`~priorfit.exact.store.ReferenceStore` computed under another protocol is refused."""
    return dict(prior=to_dict(prior), seed=config.seed, n_datasets=config.n_datasets, n_queries=config.n_queries,
                nuts_warmup=config.nuts_warmup, nuts_samples=config.nuts_samples, nuts_chains=config.nuts_chains,
                ml2_restarts=config.ml2_restarts)
