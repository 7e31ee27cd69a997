"""Fidelity reports: how far a PFN is from exact inference on its own prior.

- :mod:`~priorfit.evaluate.config`: the protocol (:class:`EvaluateConfig`) and what stored references depend on;
- :mod:`~priorfit.evaluate.scoring`: :func:`evaluate`, one loop over the prior's exact references;
- :mod:`~priorfit.evaluate.report`: typed scores per method and cell, JSON, the text table;
- :mod:`~priorfit.evaluate.plots`: the report's figures.
"""

from priorfit.evaluate.config import CALIBRATION_LEVELS, EvaluateConfig, reference_protocol
from priorfit.evaluate.plots import plot_report
from priorfit.evaluate.report import PFN, FidelityCell, FidelityReport, MethodScores, format_table
from priorfit.evaluate.scoring import evaluate, fidelity_report

__all__ = [
    "CALIBRATION_LEVELS",
    "EvaluateConfig",
    "reference_protocol",
    "evaluate",
    "fidelity_report",
    "FidelityCell",
    "FidelityReport",
    "MethodScores",
    "PFN",
    "format_table",
    "plot_report",
]
