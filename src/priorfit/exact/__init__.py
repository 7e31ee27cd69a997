"""Exact (slow, closed-form or fitted) references that a PFN's predictions are compared against."""

from priorfit.exact.gp import MLIIFit, fit_ml2, gp_log_marginal_likelihood, gp_predictive, ml2_fit
from priorfit.exact.marginal import (
    MarginalPredictive,
    importance_predictive,
    marginal_predictive,
)

__all__ = [
    "gp_predictive",
    "gp_log_marginal_likelihood",
    "fit_ml2",
    "ml2_fit",
    "MLIIFit",
    "MarginalPredictive",
    "marginal_predictive",
    "importance_predictive",
]
