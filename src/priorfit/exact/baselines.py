"""Practitioners' GP baselines, fitted the way their users run them: scikit-learn's ML-II GP and BoTorch's
``SingleTaskGP``.

They are not exact for any prior of priorfit's; a fidelity report shows them (kind ``FITTED``) to say what a user
gets from the usual tool on the same datasets. Both see a dataset as a user hands it over and put it in their own
units as their documentation does: inputs scaled to the unit cube by the context's range, targets standardised.

- :class:`SklearnGP`: ``GaussianProcessRegressor`` with ``C * Matern(nu=2.5, ARD) + WhiteKernel``,
  ``normalize_y=True`` and L-BFGS-B restarts: type-II maximum likelihood.
- :class:`BoTorchGP`: ``SingleTaskGP`` with its default kernel and hyperpriors (the dimension-scaled log-normal
  lengthscale prior), ``Normalize`` and ``Standardize`` transforms, fitted by ``fit_gpytorch_mll``: a MAP
  estimate.

Each predicts noisy y as independent normals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.predictive.normal import NormalPredictive

__all__ = ["SklearnGP", "BoTorchGP", "unit_cube"]


def unit_cube(x_ctx: Tensor, x_qry: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Context and queries scaled by the context's per-feature min and range (a constant feature: range 1)."""
    lo = x_ctx.min(0).values
    width = x_ctx.max(0).values - lo
    width = torch.where(width > 0, width, torch.ones_like(width))
    return ((x_ctx - lo) / width).double().numpy(), ((x_qry - lo) / width).double().numpy()


@dataclass(frozen=True)
class SklearnGP:
    """scikit-learn's GP regressor, ML-II with ``restarts`` random restarts of the optimiser after its first
    start (scikit-learn's ``n_restarts_optimizer``)."""

    restarts: int = 5
    name = "sklearn_gp"
    label = "ML-II GP (scikit-learn)"
    kind = ReferenceKind.FITTED

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        xc, xq = unit_cube(task.x_ctx, task.x_qry)
        d = xc.shape[1]
        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.ones(d), (1e-2, 1e3), nu=2.5)
                  + WhiteKernel(0.1, (1e-6, 1e1)))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.restarts,
                                      random_state=seed % 2**32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(xc, task.y_ctx.double().numpy())
                mean, std = gp.predict(xq, return_std=True)  # the WhiteKernel's noise is in std
        except (np.linalg.LinAlgError, ValueError):
            return ReferenceResult(None)
        if not (np.all(np.isfinite(mean)) and np.all(std > 0)):
            return ReferenceResult(None)
        return ReferenceResult(NormalPredictive(mean, std**2))


@dataclass(frozen=True)
class BoTorchGP:
    """BoTorch's ``SingleTaskGP`` at its defaults (MAP under its hyperpriors)."""

    name = "botorch"
    label = "SingleTaskGP (BoTorch, MAP)"
    kind = ReferenceKind.FITTED

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        x = task.x_ctx.double()
        d = x.shape[1]
        try:
            with warnings.catch_warnings(), torch.random.fork_rng():
                torch.manual_seed(seed)  # the fit's random restarts, without touching the caller's generator
                warnings.simplefilter("ignore")  # BoTorch's optimiser and input-scaling notices
                model = SingleTaskGP(x, task.y_ctx.double()[:, None], input_transform=Normalize(d=d),
                                     outcome_transform=Standardize(m=1))
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
                with torch.no_grad():
                    post = model.posterior(task.x_qry.double(), observation_noise=True)
                    mean, var = post.mean[:, 0], post.variance[:, 0]
        except Exception:  # noqa: BLE001  every attempt failed (ModelFittingError), or a non-PD matrix
            return ReferenceResult(None)
        if not (torch.isfinite(mean).all() and (var > 0).all()):
            return ReferenceResult(None)
        return ReferenceResult(NormalPredictive(mean, var))
