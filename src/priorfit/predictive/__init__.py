"""Predictive distributions behind one interface (mean, variance, quantile, cdf, log_prob, crps, sample)."""

from priorfit.predictive.bar import BarPredictive, PredictiveDistribution
from priorfit.predictive.base import Predictive
from priorfit.predictive.mixture import NormalMixturePredictive, StudentTMixturePredictive
from priorfit.predictive.normal import NormalPredictive
from priorfit.predictive.student_t import StudentTPredictive

__all__ = [
    "Predictive",
    "BarPredictive",
    "PredictiveDistribution",
    "NormalPredictive",
    "StudentTPredictive",
    "NormalMixturePredictive",
    "StudentTMixturePredictive",
]
