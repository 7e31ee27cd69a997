"""priorfit: Bayesian inference in one forward pass with Prior-Data Fitted Networks.

The public names below are imported on first use (PEP 562), so that ``import priorfit.training`` does not load
scikit-learn and ``priorfit predict`` does not load the training stack.
"""

from importlib import import_module

from priorfit import priors  # noqa: F401  (registers every prior class for (de)serialisation)

_PUBLIC = {
    "Checkpoint": "priorfit.checkpoint",
    "load_checkpoint": "priorfit.checkpoint",
    "save_checkpoint": "priorfit.checkpoint",
    "PFNRegressor": "priorfit.estimators",
    "PFNClassifier": "priorfit.estimators",
    "shipped_models": "priorfit.models",
    "load_model": "priorfit.models",
    "ModelConfig": "priorfit.model.transformer",
    "PFNTransformer": "priorfit.model.transformer",
    "TrainConfig": "priorfit.training",
    "train": "priorfit.training",
}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'priorfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
