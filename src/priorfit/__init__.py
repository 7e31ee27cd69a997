"""priorfit: Bayesian inference in one forward pass with Prior-Data Fitted Networks."""

from priorfit import priors  # noqa: F401  (registers every prior class for (de)serialisation)
from priorfit.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from priorfit.estimators import PFNRegressor, shipped_models
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.training import TrainConfig, train

__all__ = [
    "Checkpoint",
    "ModelConfig",
    "PFNRegressor",
    "PFNTransformer",
    "TrainConfig",
    "load_checkpoint",
    "save_checkpoint",
    "shipped_models",
    "train",
]
__version__ = "0.1.0"
