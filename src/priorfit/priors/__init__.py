"""Priors over datasets: GP priors with kernels and hyperpriors, input samplers, and the Batch they produce."""

from priorfit.priors.base import Batch, Prior, Symmetries
from priorfit.priors.bnn import BNNParams, BNNPrior
from priorfit.priors.bnn_classification import BNNClassificationParams, BNNClassificationPrior
from priorfit.priors.classification import (
    CategoricalTargets,
    ClassificationParams,
    GPClassificationPrior,
    LabelProbabilities,
)
from priorfit.priors.gp import GPParams, GPPrior, cholesky_with_jitter
from priorfit.priors.hyperpriors import (
    Fixed,
    Gamma,
    HalfCauchy,
    Hyperprior,
    InverseGamma,
    LogNormal,
    Normal,
    Uniform,
)
from priorfit.priors.invariant import InvariantGPPrior
from priorfit.priors.mixture import MixtureParams, MixturePrior
from priorfit.priors.nngp import NNGP, NNGPParams
from priorfit.priors.factor_classification import FactorClassificationParams, FactorClassificationPrior
from priorfit.priors.scm import SCMClassificationPrior
from priorfit.priors.tree_classification import TreeClassificationParams, TreeClassificationPrior
from priorfit.priors.warping import KumaraswamyWarp, WarpParams
from priorfit.priors.student_t import (
    StudentTNoiseParams,
    StudentTNoisePrior,
    StudentTProcessParams,
    StudentTProcessPrior,
)
from priorfit.priors.inputs import ClusteredInputs, InputSampler, MixedInputs, UniformInputs
from priorfit.priors.kernels import (
    RBF,
    CompositeParams,
    Kernel,
    LengthscaleParams,
    Linear,
    LinearParams,
    Matern,
    Periodic,
    PeriodicParams,
    Product,
    RationalQuadratic,
    RationalQuadraticParams,
    Scale,
    ScaleParams,
    SpectralMixture,
    SpectralMixtureParams,
    Sum,
)
from priorfit.priors.params import Params

__all__ = [
    "Batch",
    "Prior",
    "Symmetries",
    "GPPrior",
    "GPClassificationPrior",
    "ClassificationParams",
    "CategoricalTargets",
    "LabelProbabilities",
    "SCMClassificationPrior",
    "FactorClassificationPrior",
    "TreeClassificationPrior",
    "TreeClassificationParams",
    "FactorClassificationParams",
    "BNNClassificationPrior",
    "BNNClassificationParams",
    "InvariantGPPrior",
    "BNNPrior",
    "BNNParams",
    "MixturePrior",
    "MixtureParams",
    "StudentTProcessPrior",
    "StudentTProcessParams",
    "StudentTNoisePrior",
    "StudentTNoiseParams",
    "GPParams",
    "Params",
    "LengthscaleParams",
    "PeriodicParams",
    "RationalQuadratic",
    "RationalQuadraticParams",
    "LinearParams",
    "SpectralMixtureParams",
    "ScaleParams",
    "CompositeParams",
    "cholesky_with_jitter",
    "Hyperprior",
    "Fixed",
    "Normal",
    "LogNormal",
    "Uniform",
    "Gamma",
    "InverseGamma",
    "HalfCauchy",
    "InputSampler",
    "UniformInputs",
    "ClusteredInputs",
    "MixedInputs",
    "Kernel",
    "RBF",
    "Matern",
    "Periodic",
    "Linear",
    "SpectralMixture",
    "NNGP",
    "KumaraswamyWarp",
    "WarpParams",
    "NNGPParams",
    "Scale",
    "Sum",
    "Product",
]
