"""The PFN as a Bayesian-optimisation surrogate: conditioned through :class:`~priorfit.PFNRegressor` (the path
users call and the model was trained for), then queried with gradients and sampled jointly.

Points live in the unit cube (:mod:`priorfit.bo.space`); targets are what the optimiser minimises. Logits
describe ``(y - loc) / scale`` for the floats ``loc`` and ``scale`` of :attr:`PFNSurrogate.target_affine`.
"""

from __future__ import annotations

import warnings
from dataclasses import fields, replace
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from priorfit.estimators import PFNRegressor
from priorfit.exceptions import OutOfDomainWarning
from priorfit.model.ensemble import encode, predict
from priorfit.predictive.bar import BarPredictive

__all__ = ["PFNSurrogate"]


class PFNSurrogate:
    """A PFN conditioned on observations ``X`` (`n x d`, unit cube) and ``y`` (`n`).

    Args:
        model: a shipped model's name or a checkpoint path (None: the default model).
        precision: the forward passes' arithmetic, as :class:`~priorfit.PFNRegressor`'s.
        X, y: the observations to condition on (at least 2, y not constant).
    """

    def __init__(self, model, X: np.ndarray, y: np.ndarray, precision: str = "float32") -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            self.regressor = PFNRegressor(model=model, precision=precision).fit(X, y)
        reg = self.regressor
        self.model = reg.checkpoint_.model
        self.bars = reg.checkpoint_.bar_distribution
        self.precision = reg.precision_
        self._x_min = torch.as_tensor(reg.x_min_, dtype=torch.float64)
        self._x_scale = torch.as_tensor(reg.x_scale_, dtype=torch.float64)
        self._x_ctx = self._to_model_inputs(torch.as_tensor(X, dtype=torch.float64))[None]
        self._y_ctx = torch.as_tensor((np.asarray(y, dtype=np.float64) - reg.y_mean_) / reg.y_scale_)[None]

    @property
    def target_affine(self) -> tuple[float, float]:
        """``(loc, scale)``: the logits describe ``(y - loc) / scale`` in the optimiser's units."""
        reg = self.regressor
        return (reg.y_mean_ + reg.y_scale_ * float(reg.context_.target_loc),
                reg.y_scale_ * float(reg.context_.target_scale))

    def _to_model_inputs(self, x: Tensor) -> Tensor:
        return (x - self._x_min) / self._x_scale

    def logits(self, x: Tensor) -> Tensor:
        """Logits `m x K` (float32) at unit-cube points ``x`` (`m x d`, float64); differentiable in ``x``."""
        return predict(self.model, self.regressor.context_, self._to_model_inputs(x)[None], None,
                       self.precision)[0]

    def predictive(self, x) -> BarPredictive:
        """The posterior predictive at unit-cube points ``x`` (`m x d`), in the optimiser's units."""
        with torch.no_grad():
            logits = self.logits(torch.as_tensor(np.atleast_2d(x), dtype=torch.float64))
        loc, scale = self.target_affine
        return BarPredictive(self.bars, logits, loc=loc, scale=scale)

    def sample_joint(self, x, n_samples: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``n_samples`` joint posterior samples of y at the unit-cube points ``x`` (`q x d`): `n_samples x q`,
        the optimiser's units (see :meth:`fantasize`)."""
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        x = torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)
        draws, _ = self._bar_chain(x, n_samples, generator, final_context=False)  # no contexts after the last
        return draws.numpy()

    def fantasize(self, x: Tensor, n_samples: int, generator: torch.Generator) -> tuple[Tensor, "Fantasies"]:
        """Joint samples of y at the points ``x`` (`q x d`), drawn autoregressively: y_1 from the predictive,
        y_2 from the PFN conditioned on the observations and (x_1, y_1), and so on (the chain rule, so the
        draws are joint samples of the PFN's posterior). Returns the samples (`n_samples x q`, optimiser's
        units) and the ``n_samples`` contexts extended by them, ready to be queried."""
        draws, context = self._bar_chain(x, n_samples, generator, final_context=True)
        return draws, Fantasies(self, context)

    def _bar_chain(self, x: Tensor, n_samples: int, generator: torch.Generator, final_context: bool):
        """:meth:`chain` at the points ``x`` (`q x d`, unit cube) for ``n_samples`` rows, each value drawn from the
        bars (no gradients)."""
        xm = self._to_model_inputs(x)[None].expand(n_samples, -1, -1)
        with torch.no_grad():
            return self.chain(xm, lambda logits, j: self.bars.sample(logits.double(), (1,), generator=generator)[0],
                              final_context=final_context)

    def chain(self, xm: Tensor, draw: Callable[[Tensor, int], Tensor],
              final_context: bool = True) -> tuple[Tensor, object]:
        """The chain rule behind every joint sample: for each of ``B`` rows of points ``xm`` (`B x q x d`, model
        inputs), point j's value is ``draw(logits, j)`` (`B` standardised values from the `B x K` logits of the
        PFN conditioned on the observations and the row's points before j), then appended to that row's context.
        Returns the values (`B x q`, optimiser's units) and, if ``final_context``, the `B` extended contexts
        (else None). Differentiable where ``draw`` is."""
        reg = self.regressor
        b, q = xm.shape[:2]
        x_ctx, y_ctx = self._x_ctx.expand(b, -1, -1), self._y_ctx.expand(b, -1)
        context = _repeat(reg.context_, b)
        values = []
        for j in range(q):
            point = xm[:, j:j + 1]
            logits = predict(self.model, context, point, None, self.precision)[:, 0]
            z = draw(logits, j)
            y_norm = context.target_loc[:, 0] + context.target_scale[:, 0] * z
            values.append(reg.y_mean_ + reg.y_scale_ * y_norm)
            if j + 1 < q or final_context:
                x_ctx = torch.cat([x_ctx, point], dim=1)
                y_ctx = torch.cat([y_ctx, y_norm[:, None]], dim=1)
                context = encode(self.model, x_ctx, y_ctx, None, self.precision)
        return torch.stack(values, dim=1), (context if final_context else None)


class Fantasies:
    """The PFN conditioned on the observations plus each of a batch of fantasised outcomes (one context per
    sample): logits at queries for every sample at once."""

    def __init__(self, surrogate: PFNSurrogate, context) -> None:
        self.surrogate = surrogate
        self.context = context

    @property
    def n_samples(self) -> int:
        return self.context.batch_size

    def target_affine(self) -> tuple[Tensor, Tensor]:
        """Per sample `(loc, scale)` (`n_samples x 1` each) of the logits' ``(y - loc) / scale``."""
        reg = self.surrogate.regressor
        return (reg.y_mean_ + reg.y_scale_ * self.context.target_loc,
                reg.y_scale_ * self.context.target_scale)

    def logits(self, x: Tensor) -> Tensor:
        """Logits `n_samples x m x K` at unit-cube points ``x`` (`m x d`); differentiable in ``x``."""
        s = self.surrogate
        xm = s._to_model_inputs(x)[None].expand(self.n_samples, -1, -1)
        return predict(s.model, self.context, xm, None, s.precision)


def _repeat(context, n: int):
    """A one-dataset context cache repeated ``n`` times along the batch (views, no copies)."""
    def repeat(value):
        if isinstance(value, Tensor):
            return value.expand(n, *value.shape[1:])
        if isinstance(value, tuple):
            return tuple(repeat(v) for v in value)
        return value

    return replace(context, **{f.name: repeat(getattr(context, f.name)) for f in fields(context)})
