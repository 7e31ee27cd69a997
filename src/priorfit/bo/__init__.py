"""Bayesian optimisation with PFN surrogates: :func:`minimize`, the ask/tell :class:`Optimizer`, search spaces."""

from priorfit.bo.maximize import SpaceExhausted
from priorfit.bo.optimizer import OptimizeResult, Optimizer, Trial, minimize
from priorfit.bo.space import Integer, Real, Space

__all__ = ["minimize", "Optimizer", "OptimizeResult", "Trial", "Space", "Real", "Integer", "SpaceExhausted"]
