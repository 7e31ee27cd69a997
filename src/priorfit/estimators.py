"""scikit-learn estimators backed by a PFN: one forward pass instead of fitting hyperparameters.

``fit`` validates and normalises the data, then encodes it once into the transformer's per-layer key/value
cache; ``predict`` and ``predict_distribution`` (``predict_proba`` for :class:`PFNClassifier`) answer any number of
queries from that cache.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from priorfit.exceptions import CheckpointError, InputDataError, OutOfDomainWarning
from priorfit.model.categorical import masked_log_probs
from priorfit.model.ensemble import DatasetTransform, encode, predict, symmetry_ensemble
from priorfit.model.evidence import evidence_weights, log_evidence, prequential_blocks
from priorfit.model.precision import PRECISIONS, inference_precision, native_bfloat16
from priorfit.models import load_model, resolve_model_path, shipped_models  # noqa: F401  (re-exported)
from priorfit.predictive.bar import PredictiveDistribution
from priorfit.principal_axes import PrincipalAxes, trained_on_principal_axes

POINT_ESTIMATES = ("mean", "median")

#: How ``PFNClassifier`` combines the principal-axes view's member with the data's own.
VIEW_WEIGHTINGS = ("evidence", "equal")

#: The shipped model ``PFNClassifier()`` uses.
DEFAULT_CLASSIFIER = "tabular"


def _check_positive_int(name: str, value: object, owner: str = "PFNRegressor") -> None:
    """scikit-learn's ``check_scalar`` (bools refused too), its message as an InputDataError naming the parameter."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be an instance of int, not bool.")
        check_scalar(value, name, numbers.Integral, min_val=1)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"The {name!r} parameter of {owner} must be a positive int: {exc}") from None


def _check_precision(value: object, owner: str) -> None:
    if value not in PRECISIONS:
        raise InputDataError(f"The 'precision' parameter of {owner} must be one of {PRECISIONS}. "
                             f"Got {value!r} instead.")
    if value == "bfloat16" and not native_bfloat16():
        warnings.warn("this CPU has no bfloat16 instructions: precision='bfloat16' is emulated here and runs "
                      "slower than 'float32'", UserWarning, stacklevel=3)


def _check_context_size(checkpoint, n: int, d: int) -> None:
    """A clear error when the data has more features or points than the model was trained for."""
    max_features = checkpoint.model_config.max_features
    if d > max_features:
        raise InputDataError(f"X has {d} features, but the model was trained for at most {max_features}")
    max_context = checkpoint.max_context
    if max_context is not None and n > max_context:
        raise InputDataError(
            f"X has {n} samples, but the model was trained on contexts of at most {max_context} points"
        )


def _scaled_inputs(X: np.ndarray, x_min: np.ndarray, x_scale: np.ndarray, where: str | None) -> torch.Tensor:
    """`1 x n x d` float64 inputs ``(X - x_min) / x_scale``, warning (``where`` says what that means for the
    model; None: no warning) when they leave the training inputs' range. float64: the network casts to its own
    precision after an invariant model has put the data in its context's units, so that data far from 0 relative
    to its spread keeps its digits."""
    xn = (X - x_min) / x_scale
    if where is not None and xn.size and (xn.min() < -0.05 or xn.max() > 1.05):
        warnings.warn(f"X lies outside the range of the training inputs{where}; predictions there extrapolate",
                      OutOfDomainWarning, stacklevel=4)
    return torch.as_tensor(xn, dtype=torch.float64)[None]


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
        _check_precision(self.precision, "PFNRegressor")
        if self.point_estimate not in POINT_ESTIMATES:
            raise InputDataError(f"The 'point_estimate' parameter of PFNRegressor must be one of {POINT_ESTIMATES}. "
                                 f"Got {self.point_estimate!r} instead.")
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64, reset=True)
        n, d = X.shape
        if n < 2:
            raise InputDataError(f"X and y hold {n} sample(s); a PFN needs at least 2 training samples, got n_samples = {n}")
        checkpoint = load_model(self.model)
        if checkpoint.model_config.n_classes:
            raise CheckpointError(f"model={str(self.model)!r} is a classifier ({checkpoint.model_config.n_classes} "
                                  "classes); use PFNClassifier")
        _check_context_size(checkpoint, n, d)
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
        where = "" if self.checkpoint_.model_config.invariant else ", which the model maps to its prior's domain [0, 1]"
        return _scaled_inputs(X, self.x_min_, self.x_scale_, where if self.normalize else None)

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


class PFNClassifier(ClassifierMixin, BaseEstimator):
    """Bayesian classification in one forward pass of a Prior-Data Fitted Network.

    ``predict_proba`` is the network's approximation of the posterior predictive probability of each class that
    the training labels hold, given the training data, under the prior the model was trained on: no
    hyperparameters are fitted, and there is nothing to tune.

    Parameters
    ----------
    model : str, path or None, default=None
        A classifier checkpoint written by ``priorfit train`` (a prior of class labels, e.g.
        ``configs/classifier.json``) or the name of a shipped one; None uses the shipped ``"tabular"``, the model
        for real tabular data (up to 8 features, 10 classes and 256 training points; its measured report is in its
        metadata, ``fidelity``); ``"classifier"`` names the shipped GP classifier, trained on one GP-classification
        prior and measured against that prior's exact posterior (docs/classification.md).
    ensemble_size : int or None, default=None
        Average the class probabilities of up to this many transformed copies of the training data: the classes
        renumbered at random, and the input features reordered or reflected where the model's prior is invariant
        to that (``priorfit.priors.base.Symmetries``). The exact posterior is unchanged by these, so averaging
        removes part of the network's own error; each member costs one more forward pass. For a model trained on
        its inputs' principal axes too (``TrainConfig.principal_axes_rate``), the second copy is that view
        (``priorfit.principal_axes``) instead: not a symmetry (it drops directions the context does not vary
        along, and for one feature it is the data again), but a view the network was trained on, weighted as
        ``view_weighting`` says. 1: the plain network. None: the model's own default, the size its shipped report
        was measured at (``default_ensemble_size`` in its metadata: 2 for ``"tabular"``), else 1.
    random_state : int, RandomState instance or None, default=0
        Draws the ensemble's transforms, and the order in which ``view_weighting="evidence"`` scores the labels.
    query_batch_size : int, default=4096
        Queries evaluated per forward pass; it bounds memory, not the result.
    precision : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the forward pass (see ``PFNRegressor``).
    view_weighting : {"evidence", "equal"}, default="evidence"
        How the principal-axes view's member and the data's own members are combined, for a model trained on both
        views (no other model has two). ``"evidence"``: by Bayes' rule, as two models of the labels drawn with
        probability 1/2 each (whatever the ensemble's size: the data's members share their half), weighted by
        approximate posterior probabilities from how probable each view's member finds the training labels (a
        partial evidence, scored prequentially in blocks on up to 64 training points, each member with its own
        class renumbering and the view with the whole context's axes: ``priorfit.model.evidence``).
        ``"equal"``: every member the same weight.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels ``y`` held, sorted; the columns of ``predict_proba``.
    n_features_in_ : int
    checkpoint_ : Checkpoint
        The loaded model, its prior and its metadata.
    ensemble_size_ : int
        The ensemble's size: ``ensemble_size``, or the model's default where that is None.
    member_weights_ : ndarray of shape (ensemble_size_,)
        Each member's weight in ``predict_proba`` (they sum to 1).
    log_evidence_ : ndarray of shape (2,) or None
        The log evidence of the training labels on the data and on the principal-axes view, where
        ``view_weighting="evidence"`` weighted them; None otherwise.
    x_min_, x_scale_ : ndarray of shape (n_features,)
        The training inputs' minimum and range per feature, which map every input onto the context's [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from priorfit import PFNClassifier
    >>> X = np.linspace(0, 1, 30)[:, None]; y = np.where(X[:, 0] > 0.5, "high", "low")
    >>> clf = PFNClassifier().fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba([[0.1], [0.9]]).shape  # doctest: +SKIP
    (2, 2)
    """

    def __init__(self, model=None, *, ensemble_size: int | None = None, random_state=0, query_batch_size: int = 4096,
                 precision: str = "float32", view_weighting: str = "evidence") -> None:
        self.model = model
        self.ensemble_size = ensemble_size
        self.random_state = random_state
        self.query_batch_size = query_batch_size
        self.precision = precision
        self.view_weighting = view_weighting

    def fit(self, X, y):
        """Condition the PFN on the training data (the context). Returns self."""
        if self.ensemble_size is not None:
            _check_positive_int("ensemble_size", self.ensemble_size, "PFNClassifier")
        _check_positive_int("query_batch_size", self.query_batch_size, "PFNClassifier")
        _check_precision(self.precision, "PFNClassifier")
        if self.view_weighting not in VIEW_WEIGHTINGS:
            raise InputDataError(f"The 'view_weighting' parameter of PFNClassifier must be one of {VIEW_WEIGHTINGS}. "
                                 f"Got {self.view_weighting!r} instead.")
        X, y = validate_data(self, X, y, dtype=np.float64, reset=True)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        n, d = X.shape
        if len(self.classes_) < 2:
            raise InputDataError(f"y holds one class ({self.classes_[0]!r}); a classifier needs at least 2 "
                                 "classes")
        if self.model is None and DEFAULT_CLASSIFIER not in shipped_models():
            raise CheckpointError("no classifier ships with this version of priorfit yet (one is in training: "
                                  "docs/classification.md); pass model= a checkpoint trained on a prior of labels "
                                  "with `priorfit train`")
        checkpoint = load_model(DEFAULT_CLASSIFIER if self.model is None else self.model)
        n_classes = checkpoint.model_config.n_classes
        if not n_classes:
            raise CheckpointError(f"model={str(self.model)!r} is a regression PFN, not a classifier; use PFNRegressor "
                                  "or a classifier checkpoint")
        if len(self.classes_) > n_classes:
            raise InputDataError(f"y holds {len(self.classes_)} classes, but the model was trained for at most "
                                 f"{n_classes}")
        _check_context_size(checkpoint, n, d)
        self.checkpoint_ = checkpoint
        if self.ensemble_size is None:
            stated = checkpoint.metadata.get("default_ensemble_size", 1)
            if isinstance(stated, bool) or not isinstance(stated, int) or stated < 1:
                raise CheckpointError(f"the model's metadata states default_ensemble_size {stated!r}; expected a "
                                      "positive int (pass ensemble_size= to choose one)")
            self.ensemble_size_ = stated
        else:
            self.ensemble_size_ = int(self.ensemble_size)
        self.x_min_ = X.min(axis=0)
        ptp = np.ptp(X, axis=0)
        self.x_scale_ = np.where(ptp > 0, ptp, 1.0)
        x_ctx = self._to_model_inputs(X)
        rng = check_random_state(self.random_state)
        self.members_ = self._members(x_ctx, len(self.classes_), rng)
        y_ctx = torch.as_tensor(labels, dtype=torch.int64)[None]
        self.precision_ = self.precision
        with torch.inference_mode(), inference_precision(self.precision_):
            self.contexts_ = [checkpoint.model.encode_context(inputs.inputs(x_ctx), order[y_ctx])
                              for inputs, order in self.members_]
            self.member_weights_, self.log_evidence_ = self._member_weights(x_ctx, labels, y_ctx, rng)
        return self

    def _member_weights(self, x_ctx: torch.Tensor, labels: np.ndarray, y_ctx: torch.Tensor,
                        rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray | None]:
        """Each member's weight, and the two views' log evidences where they set them: with the principal-axes
        view (the second member) and ``view_weighting="evidence"``, the view's weight is its posterior probability
        against the data's own (the identity member's) evidence, and the data's members share the rest."""
        size = len(self.members_)
        has_view = size > 1 and isinstance(self.members_[1][0], PrincipalAxes)
        if not has_view or self.view_weighting == "equal":
            return np.full(size, 1.0 / size), None
        blocks = prequential_blocks(labels, rng)
        log_evidences = log_evidence(self.checkpoint_.model, self.members_[:2], x_ctx, y_ctx, blocks)
        data, view = evidence_weights(log_evidences)
        weights = np.full(size, data / (size - 1))
        weights[1] = view
        return weights, log_evidences

    def _members(self, x_ctx: torch.Tensor, n_classes: int,
                 rng: np.random.RandomState) -> list[tuple[DatasetTransform | PrincipalAxes, torch.Tensor]]:
        """The ensemble: (input transform, class renumbering) pairs, the identity first; for a model trained on its
        context's principal axes too (``principal_axes_rate``), that view second; then symmetries of the prior."""
        n_features = x_ctx.shape[-1]
        identity = DatasetTransform(tuple(range(n_features)), (False,) * n_features)
        members = [(identity, torch.arange(n_classes))]
        symmetries = self.checkpoint_.prior.symmetries
        if self.ensemble_size_ > 1 and trained_on_principal_axes(self.checkpoint_):
            members.append((PrincipalAxes.fit(x_ctx), torch.as_tensor(rng.permutation(n_classes))))
        while len(members) < self.ensemble_size_:
            permutation = tuple(rng.permutation(n_features)) if symmetries.permute_inputs else identity.permutation
            reflect = tuple(bool(b) for b in rng.random(n_features) < 0.5) if symmetries.reflect_inputs \
                else identity.reflect
            members.append((DatasetTransform(tuple(int(i) for i in permutation), reflect),
                            torch.as_tensor(rng.permutation(n_classes))))
        return members

    def _to_model_inputs(self, X: np.ndarray) -> torch.Tensor:
        return _scaled_inputs(X, self.x_min_, self.x_scale_, "")

    def predict_proba(self, X) -> np.ndarray:
        """Posterior predictive probability of each class of ``classes_``, shape (n_queries, n_classes)."""
        check_is_fitted(self, "contexts_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        xq = self._to_model_inputs(X)
        k = len(self.classes_)
        model = self.checkpoint_.model
        total = torch.zeros(xq.shape[1], k, dtype=torch.float64)
        with torch.inference_mode(), inference_precision(self.precision_):
            for (inputs, order), cache, weight in zip(self.members_, self.contexts_, self.member_weights_):
                for start in range(0, xq.shape[1], self.query_batch_size):
                    queries = inputs.inputs(xq[:, start:start + self.query_batch_size])
                    logits = model.predict_logits(cache, queries).double()  # rows then sum to 1 in float64
                    probs = masked_log_probs(logits, k)[0, :, :k].exp()[:, order]  # member's order[c] is c
                    total[start:start + queries.shape[1]] += probs if self.log_evidence_ is None else weight * probs
        # equal weights as a plain mean, so that every model without the view predicts exactly what it did before
        return (total / len(self.members_) if self.log_evidence_ is None else total).numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row of X (the Bayes decision under 0-1 loss)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
