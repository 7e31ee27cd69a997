"""scikit-learn estimators backed by a PFN: one forward pass instead of fitting hyperparameters.

``fit`` validates and normalises the data, then encodes it once into the transformer's per-layer key/value
cache; ``predict`` and ``predict_distribution`` answer any number of queries from that cache.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_scalar
from sklearn.utils.validation import check_is_fitted, validate_data

from priorfit.exceptions import InputDataError, OutOfDomainWarning
from priorfit.model.ensemble import encode, predict, symmetry_ensemble
from priorfit.model.precision import PRECISIONS, native_bfloat16
from priorfit.models import load_model, resolve_model_path, shipped_models  # noqa: F401  (re-exported)
from priorfit.predictive.bar import PredictiveDistribution

POINT_ESTIMATES = ("mean", "median")


def _check_positive_int(name: str, value: object) -> None:
    """scikit-learn's ``check_scalar`` (bools refused too), its message as an InputDataError naming the parameter."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be an instance of int, not bool.")
        check_scalar(value, name, numbers.Integral, min_val=1)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"The {name!r} parameter of PFNRegressor must be a positive int: {exc}") from None


class PFNRegressor(RegressorMixin, BaseEstimator):
    """Bayesian regression in one forward pass of a Prior-Data Fitted Network.

    Parameters
    ----------
    model : str, path or None, default=None
        A checkpoint written by ``priorfit train`` or the name of a shipped model; None uses the default,
        ``invariant_default``, which sees only the data's own units (``shipped_models()`` lists them all).
    normalize : bool, default=True
        Scale each input feature to the prior's input domain [0, 1] with the training data's min and max, and
        z-score the targets with the training data's mean and standard deviation. Predictions are mapped back,
        densities with their Jacobian, so everything is in the user's units.
    query_batch_size : int, default=4096
        Queries evaluated per forward pass; it bounds memory, not the result (queries are independent).
    ensemble_size : int, default=1
        Average the predictive distributions of up to this many transformed copies of the data under which the
        model's prior is invariant (reflecting and reordering input features, negating the targets; see
        ``priorfit.model.ensemble``). The exact posterior is unchanged by them, so averaging removes part of the
        PFN's own error; each member costs one more forward pass. 1: the plain PFN.
    point_estimate : {"median", "mean"}, default="median"
        What ``predict`` returns: the predictive median (the absolute-error Bayes estimate; always defined, and
        set by the bulk of the predictive, which the network learns well) or mean (the squared-error one). The
        mean is that of the predictive winsorised at its 0.1% and 99.9% quantiles
        (``priorfit.predictive.bar.TAIL_ALPHA``): the raw mean would sum far tail bars' mass the network does
        not resolve, and under heavy tails (an invariant model at n = 2, the ``robust`` model's Student-t noise)
        the exact predictive may have no mean at all.
    precision : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the forward pass (``priorfit.model.precision``). "bfloat16" runs the matrix products in
        bfloat16: on a CPU with bfloat16 instructions a prediction took about a third less time (the shipped
        model, 1000 queries), at a measured KL of at most 0.0005 nats per query; slower than float32 on a CPU
        without them (a warning says so).

    Attributes
    ----------
    n_features_in_ : int
    checkpoint_ : Checkpoint
        The loaded model, its bar distribution, its prior and its metadata.
    x_min_, x_scale_ : ndarray of shape (n_features,)
    y_mean_, y_scale_ : float
    ensemble_ : SymmetryEnsemble or None
        The transforms predictions are averaged over (None when ``ensemble_size=1``).
    precision_ : str
        The precision the context was encoded in; predictions use it too.

    Examples
    --------
    >>> import numpy as np
    >>> from priorfit import PFNRegressor
    >>> X = np.linspace(0, 1, 20)[:, None]; y = np.sin(6 * X[:, 0])
    >>> reg = PFNRegressor().fit(X, y)
    >>> reg.predict_distribution(X[:3]).quantile([0.05, 0.95]).shape
    (3, 2)
    """

    def __init__(self, model=None, *, normalize: bool = True, query_batch_size: int = 4096,
                 ensemble_size: int = 1, precision: str = "float32", point_estimate: str = "median") -> None:
        self.model = model
        self.normalize = normalize
        self.query_batch_size = query_batch_size
        self.ensemble_size = ensemble_size
        self.precision = precision
        self.point_estimate = point_estimate

    # -- fitting -------------------------------------------------------------------------------------------
    def fit(self, X, y):
        """Condition the PFN on the training data (the context). Returns self."""
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise InputDataError(f"The 'normalize' parameter of PFNRegressor must be a bool. Got {self.normalize!r} instead.")
        _check_positive_int("query_batch_size", self.query_batch_size)
        _check_positive_int("ensemble_size", self.ensemble_size)
        if self.precision not in PRECISIONS:
            raise InputDataError(
                f"The 'precision' parameter of PFNRegressor must be one of {PRECISIONS}. Got {self.precision!r} instead."
            )
        if self.point_estimate not in POINT_ESTIMATES:
            raise InputDataError(f"The 'point_estimate' parameter of PFNRegressor must be one of {POINT_ESTIMATES}. "
                                 f"Got {self.point_estimate!r} instead.")
        if self.precision == "bfloat16" and not native_bfloat16():
            warnings.warn("this CPU has no bfloat16 instructions: precision='bfloat16' is emulated here and runs "
                          "slower than 'float32'", UserWarning, stacklevel=2)
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64, reset=True)
        n, d = X.shape
        if n < 2:
            raise InputDataError(f"X and y hold {n} sample(s); a PFN needs at least 2 training samples, got n_samples = {n}")
        checkpoint = load_model(self.model)
        max_features = checkpoint.model_config.max_features
        if d > max_features:
            raise InputDataError(f"X has {d} features, but the model was trained for at most {max_features}")
        max_context = checkpoint.max_context
        if max_context is not None and n > max_context:
            raise InputDataError(
                f"X has {n} samples, but the model was trained on contexts of at most {max_context} points"
            )
        if self.normalize:
            if np.ptp(y) == 0:
                raise InputDataError("y is constant; with normalize=True its standard deviation must be positive")
            self.x_min_ = X.min(axis=0)
            ptp = np.ptp(X, axis=0)
            self.x_scale_ = np.where(ptp > 0, ptp, 1.0)
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std())
        else:
            self.x_min_, self.x_scale_ = np.zeros(d), np.ones(d)
            self.y_mean_, self.y_scale_ = 0.0, 1.0
        self.checkpoint_ = checkpoint
        x_ctx = self._to_model_inputs(X)
        y_ctx = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float64)[None]
        self.ensemble_ = symmetry_ensemble(checkpoint.prior, checkpoint.bar_distribution, d, int(self.ensemble_size))
        self.precision_ = self.precision
        # no_grad, not inference_mode: the cached keys and values may then enter an autograd graph, as
        # Bayesian optimisation's gradients with respect to the queries need (priorfit.bo)
        with torch.no_grad():
            self.context_ = encode(checkpoint.model, x_ctx, y_ctx, self.ensemble_, self.precision_)
        return self

    def _to_model_inputs(self, X: np.ndarray) -> torch.Tensor:
        xn = (X - self.x_min_) / self.x_scale_
        if self.normalize and xn.size and (xn.min() < -0.05 or xn.max() > 1.05):
            where = ("" if self.checkpoint_.model_config.invariant
                     else ", which the model maps to its prior's domain [0, 1]")
            warnings.warn(f"X lies outside the range of the training inputs{where}; predictions there extrapolate",
                          OutOfDomainWarning, stacklevel=3)
        # float64: the network casts to its own precision, after an invariant model has put the data in its
        # context's units (in float64, so that data far from 0 relative to its spread keeps its digits)
        return torch.as_tensor(xn, dtype=torch.float64)[None]

    # -- prediction ----------------------------------------------------------------------------------------
    def _logits(self, X) -> torch.Tensor:
        check_is_fitted(self, "context_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        xq = self._to_model_inputs(X)
        model = self.checkpoint_.model
        chunks = []
        with torch.inference_mode():
            for start in range(0, xq.shape[1], self.query_batch_size):
                queries = xq[:, start:start + self.query_batch_size]
                chunks.append(predict(model, self.context_, queries, self.ensemble_, self.precision_)[0])
        if not chunks:
            return torch.zeros(0, self.checkpoint_.model_config.n_bars)
        return torch.cat(chunks)

    def _to_user_units(self) -> tuple[float, float]:
        """(loc, scale): user units <- the prior's (normalize) <- the model's standardised targets."""
        return (self.y_mean_ + self.y_scale_ * float(self.context_.target_loc),
                self.y_scale_ * float(self.context_.target_scale))

    def predict_distribution(self, X) -> PredictiveDistribution:
        """The posterior predictive distribution of y at each row of X, in the user's units."""
        logits = self._logits(X)
        loc, scale = self._to_user_units()
        return PredictiveDistribution(self.checkpoint_.bar_distribution, logits, loc=loc, scale=scale)

    def predict(self, X) -> np.ndarray:
        """Posterior predictive median (or winsorised mean, per ``point_estimate``), shape (n_queries,)."""
        if self.point_estimate == "mean":
            return self.predict_distribution(X).mean
        # the median straight from the network's logits, in their own precision (float32 for a single model):
        # the predictive distribution's float64 copy, softmax and cumulative sums cost a sixth of a prediction
        logits = self._logits(X)
        loc, scale = self._to_user_units()
        if logits.shape[0] == 0:
            return np.zeros(0)
        return loc + scale * self.checkpoint_.bar_distribution.icdf(logits, 0.5).double().numpy()

    def predict_quantiles(self, X, q) -> np.ndarray:
        """Posterior predictive quantiles, shape (n_queries, len(q))."""
        return self.predict_distribution(X).quantile(np.atleast_1d(np.asarray(q, dtype=float)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
