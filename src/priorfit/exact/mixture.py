"""The oracle of a mixture of priors (:class:`~priorfit.priors.mixture.MixturePrior`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task

__all__ = ["MixtureOracle"]


@dataclass(frozen=True)
class MixtureOracle:
    """The oracle of the component a dataset was drawn from, given that component's latent values."""

    oracles: tuple
    name = "oracle"
    label = "oracle (its component's)"
    kind = ReferenceKind.ORACLE

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        k = int(task.truth.component[0])
        return self.oracles[k].predict(dataclasses.replace(task, truth=task.truth.parts[k]), seed)
