r"""Mixtures per query point: of normals, the hyperprior-marginalised posterior predictive of a GP, one component
per hyperparameter sample (NUTS draws, or importance-weighted prior draws); of Student-t distributions, the same
for the invariant prior, whose components integrate the targets' location and scale.

.. math:: p(y_j) = \sum_{s=1}^{S} w_s\, N(y_j \mid \mu_{sj}, v_{sj}), \qquad j = 1..m
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import special
from torch import Tensor

from priorfit.predictive.base import Predictive, as_float64
from priorfit.predictive.normal import abs_normal_mean

__all__ = ["NormalMixturePredictive", "StudentTMixturePredictive"]

_LOG_2PI = math.log(2.0 * math.pi)
# Quantiles by bisection on the mixture's cdf: stop when the bracket is below _TOL * (1 + |bracket|).
_TOL = 1e-12
_MAX_ITER = 200
_CRPS_CHUNK = 8  # query points at a time in the S x S pair sums of the CRPS
_CRPS_NODES = 200  # Gauss-Legendre nodes on each side of y, for the Student-t mixture's CRPS
_CRPS_PAIRWISE_MAX = 1024  # a normal mixture with more components takes its CRPS by quadrature (memory ~ S^2)


def _pick_components(weights: Tensor, n_samples: int, m: int,
                     generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Row and column indices (`n_samples x m` each) of a component drawn by weight for every draw and query."""
    idx = torch.multinomial(weights, n_samples * m, replacement=True, generator=generator).reshape(n_samples, m)
    return idx, torch.arange(m).expand(n_samples, -1)


def _crps_by_quadrature(pred: Predictive, y: Tensor) -> Tensor:
    r"""CRPS as :math:`\int_{-\infty}^{y} F^2 + \int_y^\infty (1 - F)^2`, each half-line mapped onto (0, 1] by
    :math:`x = y \mp w (1 - v) / v` (w the interquartile width) and integrated by Gauss-Legendre in v: memory
    linear in the number of components."""
    q1, q3 = pred._quantile(torch.tensor([0.25, 0.75], dtype=torch.float64)).T
    width = (q3 - q1).clamp_min(1e-300)  # m: the scale of the substitution
    nodes, weights = np.polynomial.legendre.leggauss(_CRPS_NODES)
    v = torch.as_tensor((nodes + 1) / 2, dtype=torch.float64)[:, None]  # G x 1, in (0, 1)
    dv = torch.as_tensor(weights / 2, dtype=torch.float64)[:, None]
    reach = width * (1 - v) / v  # G x m: x = y -+ reach maps v in (0, 1] onto each half-line
    jacobian = width / v.square()
    step = max(1, 2**22 // max(1, len(pred) * getattr(pred, "num_components", 1)))  # nodes at a time: bounded memory
    out = []
    for yy in y.reshape(-1, len(pred)):  # F^2 below y plus (1 - F)^2 above it
        total = torch.zeros(len(pred), dtype=torch.float64)
        for g in range(0, _CRPS_NODES, step):
            r, jac, d = reach[g:g + step], jacobian[g:g + step], dv[g:g + step]
            total = total + (pred._cdf(yy - r).square() * jac * d).sum(0) + (pred._sf(yy + r).square() * jac * d).sum(0)
        out.append(total)
    return torch.stack(out).reshape(y.shape)


class NormalMixturePredictive(Predictive):
    """A mixture of normals over y at m query points, one component per row. Each query's marginal only: the
    components' covariances between queries are not kept.

    Args:
        means: `S x m` component means :math:`\\mu_{sj}`. For NUTS, rows are chain-major (chain c, draw t is row
            ``c * num_samples + t``).
        variances: `S x m` positive component variances :math:`v_{sj}` of noisy y.
        log_weights: `S` log weights, normalised here so that :math:`\\sum_s w_s = 1` (-inf allowed); None means
            equal weights :math:`w_s = 1/S`.
        diagnostics: how the components were drawn (see :func:`priorfit.exact.marginal_predictive`).
    """

    def __init__(self, means: object, variances: object, log_weights: object | None = None,
                 diagnostics: dict[str, Any] | None = None) -> None:
        means, variances = as_float64("means", means), as_float64("variances", variances)
        if means.dim() != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape S x m with S >= 1, got {tuple(means.shape)}")
        if variances.shape != means.shape:
            raise ValueError(
                f"variances must have the shape of means {tuple(means.shape)}, got {tuple(variances.shape)}"
            )
        if not torch.isfinite(means).all():
            raise ValueError("means contains NaN or infinite values")
        if not (torch.isfinite(variances).all() and (variances > 0).all()):
            raise ValueError("variances must be positive and finite")
        self.means, self.variances = means, variances
        if log_weights is None:
            self.log_weights = torch.full((means.shape[0],), -math.log(means.shape[0]), dtype=torch.float64)
        else:
            lw = as_float64("log_weights", log_weights)
            if tuple(lw.shape) != (means.shape[0],):
                raise ValueError(f"log_weights must have shape ({means.shape[0]},) (S), got {tuple(lw.shape)}")
            if torch.isnan(lw).any() or (lw == math.inf).any() or not torch.isfinite(lw).any():
                raise ValueError("log_weights must be finite or -inf, with at least one finite entry")
            self.log_weights = lw - torch.logsumexp(lw, 0)
        if diagnostics is not None and not isinstance(diagnostics, dict):
            raise TypeError(f"diagnostics must be a dict, got {type(diagnostics).__name__}")
        self.diagnostics: dict[str, Any] = dict(diagnostics or {})

    def __len__(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        """S, the number of mixture components."""
        return self.means.shape[0]

    @property
    def weights(self) -> Tensor:
        """`S` weights :math:`w_s`, summing to 1."""
        return self.log_weights.exp()

    @property
    def weights_ess(self) -> float:
        r"""Kish's effective sample size of the weights, :math:`1 / \sum_s w_s^2` (S for equal weights). It says
        nothing about autocorrelation: for NUTS see ``diagnostics["min_ess"]``."""
        return float(torch.exp(-torch.logsumexp(2.0 * self.log_weights, 0)))

    def _mean(self) -> Tensor:
        return self.weights @ self.means

    def _variance(self) -> Tensor:
        # the law of total variance: sum_s w_s (v_s + (mu_s - mean)^2)
        centred = self.means - self._mean()
        return self.weights @ (self.variances + centred.square())

    def _log_prob(self, y: Tensor) -> Tensor:
        yy = y.unsqueeze(-2)  # ... x 1 x m
        comp = -0.5 * (_LOG_2PI + self.variances.log() + (yy - self.means).square() / self.variances)  # ... x S x m
        return torch.logsumexp(comp + self.log_weights[:, None], dim=-2)

    def _cdf(self, y: Tensor) -> Tensor:
        z = (y.unsqueeze(-2) - self.means) / self.variances.sqrt()  # ... x S x m
        return (self.weights[:, None] * torch.special.ndtr(z)).sum(-2)

    def _sf(self, y: Tensor) -> Tensor:
        z = (y.unsqueeze(-2) - self.means) / self.variances.sqrt()  # ... x S x m
        return (self.weights[:, None] * 0.5 * torch.special.erfc(z / math.sqrt(2.0))).sum(-2)

    def _crps(self, y: Tensor) -> Tensor:
        r"""Closed form: :math:`E|X - y| - \tfrac12 E|X - X'|` over the components and their pairs (S^2 per point);
        by quadrature (:func:`_crps_by_quadrature`) beyond ``_CRPS_PAIRWISE_MAX`` components, where the pairs
        would not fit in memory (a NUTS marginal with quadrature nodes per draw has 10^4)."""
        if self.means.shape[0] > _CRPS_PAIRWISE_MAX:
            return _crps_by_quadrature(self, y)
        flat = y.reshape(-1, len(self))
        w = self.weights
        rows = []
        for yy in flat:
            out = []
            for j in range(0, len(self), _CRPS_CHUNK):
                mu, var = self.means[:, j:j + _CRPS_CHUNK], self.variances[:, j:j + _CRPS_CHUNK]  # S x c
                to_y = (w[:, None] * abs_normal_mean(mu - yy[j:j + _CRPS_CHUNK], var)).sum(0)
                pair = abs_normal_mean(mu[:, None] - mu[None], var[:, None] + var[None])  # S x S x c
                out.append(to_y - 0.5 * torch.einsum("s,r,src->c", w, w, pair))
            rows.append(torch.cat(out))
        return torch.stack(rows).reshape(y.shape)

    def _quantile(self, levels: Tensor) -> Tensor:
        """Bisection on the cdf. The mixture's q-quantile lies between the smallest and the largest of its
        components' q-quantiles (at the smallest every component's cdf is <= q, at the largest >= q)."""
        sd = self.variances.sqrt()
        comp_q = self.means[:, :, None] + sd[:, :, None] * torch.special.ndtri(levels)  # S x m x Q
        lo, hi = comp_q.min(0).values, comp_q.max(0).values  # m x Q
        w = self.weights[:, None, None]
        for _ in range(_MAX_ITER):
            if ((hi - lo) <= _TOL * (1.0 + torch.maximum(lo.abs(), hi.abs()))).all():
                break
            mid = 0.5 * (lo + hi)
            below = (w * torch.special.ndtr((mid - self.means[:, :, None]) / sd[:, :, None])).sum(0) < levels
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def _sample(self, n_samples: int, generator: torch.Generator | None) -> Tensor:
        # a component per draw and query point, then a normal draw from it
        idx, cols = _pick_components(self.weights, n_samples, len(self), generator)
        z = torch.randn(n_samples, len(self), generator=generator, dtype=torch.float64)
        return self.means[idx, cols] + self.variances[idx, cols].sqrt() * z


class StudentTMixturePredictive(Predictive):
    """A mixture of location-scale Student-t distributions over y at m query points, one component per row: the
    invariant prior's marginal predictive, one component per posterior draw of the shape hyperparameters.

    Args:
        locs: `S x m` component locations.
        scales: `S x m` positive component scales (not standard deviations).
        df: degrees of freedom, a float (the same for every component, as n - 1 is) or `S`.
        log_weights: `S` log weights (normalised here); None means equal weights.
        diagnostics: how the components were drawn.

    The CRPS has no closed form here: it is the integral of F(x)^2 below y and (1 - F(x))^2 above it, each half-line
    mapped onto (0, 1] by x = y -+ w (1 - v) / v (w the mixture's interquartile range) and integrated by
    Gauss-Legendre quadrature on 200 nodes; infinite when any component has df <= 1 (E|Y| is then infinite).
    """

    def __init__(self, locs: object, scales: object, df: object, log_weights: object | None = None,
                 diagnostics: dict[str, Any] | None = None) -> None:
        self._normal = NormalMixturePredictive(locs, as_float64("scales", scales).square(), log_weights)
        self.locs, self.scales = self._normal.means, self._normal.variances.sqrt()
        df_t = as_float64("df", df)
        if df_t.ndim > 1 or (df_t.ndim == 1 and df_t.shape[0] != self.locs.shape[0]):
            raise ValueError(f"df must be a float or have length S={self.locs.shape[0]}, got {tuple(df_t.shape)}")
        if not (torch.isfinite(df_t).all() and (df_t > 0).all()):
            raise ValueError("df must be positive and finite")
        self.df = df_t.expand(self.locs.shape[0]).clone()
        self.log_weights = self._normal.log_weights
        self.diagnostics: dict[str, Any] = dict(diagnostics or {})

    def __len__(self) -> int:
        return self.locs.shape[1]

    @property
    def num_components(self) -> int:
        return self.locs.shape[0]

    @property
    def weights(self) -> Tensor:
        return self.log_weights.exp()

    @property
    def weights_ess(self) -> float:
        """Kish's effective sample size of the weights (see :attr:`NormalMixturePredictive.weights_ess`)."""
        return self._normal.weights_ess

    def _component_cdf(self, y: Tensor, upper: bool = False) -> Tensor:
        z = (y.unsqueeze(-2) - self.locs) / self.scales  # ... x S x m
        nu = self.df[:, None].expand(z.shape[-2:]).expand(z.shape)
        return torch.from_numpy(special.stdtr(nu.numpy(), (-z if upper else z).numpy()))

    def _mean(self) -> Tensor:
        mean = self.weights @ self.locs
        return torch.where((self.df > 1).all(), mean, torch.full_like(mean, math.nan))

    def _variance(self) -> Tensor:
        if not (self.df > 2).all():
            return torch.full((len(self),), math.inf, dtype=torch.float64)
        comp_var = self.scales.square() * (self.df / (self.df - 2))[:, None]
        centred = self.locs - self.weights @ self.locs
        return self.weights @ (comp_var + centred.square())

    def _log_prob(self, y: Tensor) -> Tensor:
        nu = self.df[:, None]
        z = (y.unsqueeze(-2) - self.locs) / self.scales
        norm = torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(nu * math.pi) - self.scales.log()
        comp = norm - (nu + 1) / 2 * torch.log1p(z.square() / nu)  # ... x S x m
        return torch.logsumexp(comp + self.log_weights[:, None], dim=-2)

    def _cdf(self, y: Tensor) -> Tensor:
        return (self.weights[:, None] * self._component_cdf(y)).sum(-2)

    def _sf(self, y: Tensor) -> Tensor:
        return (self.weights[:, None] * self._component_cdf(y, upper=True)).sum(-2)

    def _quantile(self, levels: Tensor) -> Tensor:
        nu = self.df[:, None, None].expand(self.num_components, len(self), levels.shape[0])
        t = torch.from_numpy(special.stdtrit(nu.numpy(), levels.expand(nu.shape).numpy()))
        comp_q = self.locs[:, :, None] + self.scales[:, :, None] * t  # S x m x Q
        lo, hi = comp_q.min(0).values, comp_q.max(0).values
        for _ in range(_MAX_ITER):
            if ((hi - lo) <= _TOL * (1.0 + torch.maximum(lo.abs(), hi.abs()))).all():
                break
            mid = 0.5 * (lo + hi)
            below = self._cdf(mid.T).T < levels  # mid.T: Q x m
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def _crps(self, y: Tensor) -> Tensor:
        if (self.df <= 1).any():
            return torch.full(y.shape, math.inf, dtype=torch.float64)
        return _crps_by_quadrature(self, y)

    def _sample(self, n_samples: int, generator: torch.Generator | None) -> Tensor:
        idx, cols = _pick_components(self.weights, n_samples, len(self), generator)
        u = torch.rand(n_samples, len(self), generator=generator, dtype=torch.float64).clamp(1e-300, 1 - 2**-53)
        t = torch.from_numpy(special.stdtrit(self.df[idx].numpy(), u.numpy()))
        return self.locs[idx, cols] + self.scales[idx, cols] * t
