"""Exact (slow, closed-form or fitted) references that a PFN's predictions are compared against."""

from priorfit.exact.gp import GPMLII, GPOracle, MLIIFit, gp_log_marginal_likelihood, gp_predictive, ml2_fit
from priorfit.exact.reference import Reference, ReferenceKind, ReferenceResult, ReferenceSettings, Task
from priorfit.exact.marginal import (
    GPMarginal,
    MarginalPredictive,
    importance_predictive,
    marginal_predictive,
)

__all__ = [
    "gp_predictive",
    "gp_log_marginal_likelihood",
    "GPOracle",
    "GPMLII",
    "GPMarginal",
    "Reference",
    "ReferenceKind",
    "ReferenceResult",
    "ReferenceSettings",
    "Task",
    "ml2_fit",
    "MLIIFit",
    "MarginalPredictive",
    "marginal_predictive",
    "importance_predictive",
]
