"""Fidelity reports: how far a PFN is from exact inference on its own prior.

- :mod:`~priorfit.evaluate.config`: the protocol (:class:`EvaluateConfig`) and what stored references depend on;
- :mod:`~priorfit.evaluate.scoring`: :func:`evaluate`, one loop over the prior's exact references;
- :mod:`~priorfit.evaluate.report`: typed scores per method and cell, JSON, the text table;
- :mod:`~priorfit.evaluate.plots`: the report's figures.

Names are imported on first use, so that reading the configuration (e.g. for the command line's help) does not
load the scoring stack.
"""

from importlib import import_module

_PUBLIC = {
    "CALIBRATION_LEVELS": "config",
    "EvaluateConfig": "config",
    "reference_protocol": "config",
    "evaluate": "scoring",
    "fidelity_report": "scoring",
    "FidelityCell": "report",
    "FidelityReport": "report",
    "MethodScores": "report",
    "PFN": "report",
    "format_table": "report",
    "plot_report": "plots",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(f"priorfit.evaluate.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'priorfit.evaluate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
