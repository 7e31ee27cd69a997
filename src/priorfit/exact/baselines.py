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
- :class:`SklearnGPClassifier`: ``GaussianProcessClassifier`` (the Laplace approximation, one-vs-rest for more
  than two classes) with ``C * Matern(nu=2.5, ARD)``, type-II maximum likelihood: the usual tool for GP
  classification, against the exact posterior of :mod:`priorfit.exact.classification`.
- :class:`GPyTorchStudentT`: GPyTorch's robust GP, a variational GP (inducing points at the context, a full
  Cholesky variational distribution) with a ``StudentTLikelihood``, fitted by Adam on the ELBO as GPyTorch's
  examples do.

The first two predict noisy y as independent normals, the third as a Student-t averaged over the approximate
posterior of f (Gauss-Hermite quadrature).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from priorfit.exact.reference import ReferenceKind, ReferenceResult, Task
from priorfit.predictive.normal import NormalPredictive

__all__ = ["SklearnGP", "SklearnGPClassifier", "BoTorchGP", "GPyTorchStudentT", "unit_cube"]


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
class SklearnGPClassifier:
    """scikit-learn's GP classifier (Laplace, ML-II with ``restarts`` optimiser restarts) on class indices
    0 ... C - 1; its predictive is :class:`~priorfit.predictive.categorical.ClassProbabilities` over those."""

    restarts: int = 2
    name = "ml2"
    label = "ML-II GP classifier (scikit-learn, Laplace)"
    kind = ReferenceKind.FITTED

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessClassifier
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern

        from priorfit.predictive.categorical import ClassProbabilities

        xc, xq = unit_cube(task.x_ctx, task.x_qry)
        labels = task.y_ctx.long().numpy()
        n_classes = int(labels.max()) + 1
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.ones(xc.shape[1]), (1e-2, 1e3), nu=2.5)
        gpc = GaussianProcessClassifier(kernel, n_restarts_optimizer=self.restarts, random_state=seed % 2**32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                proba = gpc.fit(xc, labels).predict_proba(xq)
        except (np.linalg.LinAlgError, ValueError):
            return ReferenceResult(None)
        full = np.zeros((len(xq), n_classes))
        full[:, gpc.classes_] = proba
        return ReferenceResult(ClassProbabilities(torch.as_tensor(full)))


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


@dataclass(frozen=True)
class GPyTorchStudentT:
    """A GP with a Student-t likelihood as GPyTorch fits one: ``ApproximateGP`` with inducing points at the
    (unit-cube) context, ``CholeskyVariationalDistribution``, ``ConstantMean`` and a Matérn-5/2 ARD
    ``ScaleKernel``, ``StudentTLikelihood`` (its degrees of freedom learned, kept above 2 by GPyTorch's default
    constraint), targets standardised; Adam
    (learning rate ``lr``) on the variational ELBO for ``iterations`` steps. Its predictive of a query is the
    likelihood's Student-t averaged over the approximate posterior of f by Gauss-Hermite quadrature on
    ``nodes`` nodes, in the user's units."""

    iterations: int = 300
    lr: float = 0.05
    nodes: int = 32
    name = "gpytorch_student_t"
    label = "Student-t likelihood GP (GPyTorch, variational)"
    kind = ReferenceKind.FITTED

    def predict(self, task: Task, seed: int) -> ReferenceResult:
        import gpytorch

        from priorfit.predictive.mixture import StudentTMixturePredictive

        xc, xq = (torch.from_numpy(a) for a in unit_cube(task.x_ctx, task.x_qry))
        y = task.y_ctx.double()
        loc, scale = y.mean(), y.std() if y.numel() > 1 else torch.tensor(1.0, dtype=torch.float64)
        scale = scale if scale > 0 else torch.tensor(1.0, dtype=torch.float64)
        yz = (y - loc) / scale
        d = xc.shape[1]

        class _Robust(gpytorch.models.ApproximateGP):
            def __init__(self, inducing: Tensor) -> None:
                variational = gpytorch.variational.CholeskyVariationalDistribution(inducing.shape[0])
                strategy = gpytorch.variational.VariationalStrategy(self, inducing, variational,
                                                                    learn_inducing_locations=False)
                super().__init__(strategy)
                self.mean_module = gpytorch.means.ConstantMean()
                self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.MaternKernel(nu=2.5,
                                                                                              ard_num_dims=d))

            def forward(self, x: Tensor):
                return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

        try:
            with warnings.catch_warnings(), torch.random.fork_rng():
                torch.manual_seed(seed)
                warnings.simplefilter("ignore")
                model, likelihood = _Robust(xc).double(), gpytorch.likelihoods.StudentTLikelihood().double()
                model.train()
                likelihood.train()
                optimizer = torch.optim.Adam([*model.parameters(), *likelihood.parameters()], lr=self.lr)
                elbo = gpytorch.mlls.VariationalELBO(likelihood, model, num_data=yz.numel())
                for _ in range(self.iterations):
                    optimizer.zero_grad()
                    loss = -elbo(model(xc), yz)
                    loss.backward()
                    optimizer.step()
                model.eval()
                likelihood.eval()
                with torch.no_grad():
                    f = model(xq)
                    mean, sd = f.mean, f.variance.clamp_min(0.0).sqrt()
                    df, noise = float(likelihood.deg_free), float(likelihood.noise.sqrt())
        except (gpytorch.utils.errors.NotPSDError, torch.linalg.LinAlgError, RuntimeError, ValueError):
            return ReferenceResult(None)  # a non-PD matrix or a diverged fit
        z, w = np.polynomial.hermite_e.hermegauss(self.nodes)
        z, log_w = torch.as_tensor(z), torch.as_tensor(np.log(w / w.sum()))
        locs = loc + scale * (mean[None, :] + sd[None, :] * z[:, None])  # nodes x m
        if not (torch.isfinite(locs).all() and np.isfinite(df) and df > 0 and noise > 0):
            return ReferenceResult(None)
        scales = torch.full_like(locs, float(scale) * noise)
        return ReferenceResult(StudentTMixturePredictive(locs, scales, df=df, log_weights=log_w))
