"""Exact (slow, closed-form or fitted) references that a PFN's predictions are compared against."""

from priorfit.exact.gp import MLIIFit, fit_ml2, gp_log_marginal_likelihood, gp_predictive, ml2_fit
from priorfit.exact.marginal import (
    SUPPORTED_KERNELS,
    MarginalPredictive,
    importance_predictive,
    jax_kernel_matrix,
    marginal_predictive,
    numpyro_distribution,
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
    "jax_kernel_matrix",
    "numpyro_distribution",
    "SUPPORTED_KERNELS",
]
