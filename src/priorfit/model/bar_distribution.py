"""The PFN's output distribution: a Riemann (histogram) distribution over a scalar target, with half-normal tails.

Notation. ``K`` bars with borders ``b_0 < b_1 < ... < b_K`` (bar ``k`` spans ``[b_k, b_{k+1}]``, width ``w_k``).
The network emits ``logits`` of shape ``... x K``; bar probabilities are ``p = softmax(logits)``.

Density. Inner bars ``k = 1 .. K-2`` are uniform on their span,

.. math::

    f(y) = p_k / w_k, \\qquad b_k \\le y < b_{k+1}.

The first bar's mass is spread as a half-normal running from ``b_1`` towards ``-inf``, the last bar's as a
half-normal from ``b_{K-1}`` towards ``+inf``:

.. math::

    f(y) = p_0 \\frac{2}{\\sigma_L} \\varphi\\Big(\\frac{b_1 - y}{\\sigma_L}\\Big), \\; y < b_1; \\qquad
    f(y) = p_{K-1} \\frac{2}{\\sigma_R} \\varphi\\Big(\\frac{y - b_{K-1}}{\\sigma_R}\\Big), \\; y \\ge b_{K-1}.

Tail scale rule: each tail puts half of its mass within the width of its original bar,
``P(b_1 - Y <= w_0 | left tail) = 1/2``, i.e. ``sigma_L = w_0 / Phi^{-1}(3/4)`` and
``sigma_R = w_{K-1} / Phi^{-1}(3/4)`` (``Phi^{-1}(3/4) ~= 0.6745``). The density is positive on the whole real line
and integrates to 1; ``b_0`` and ``b_K`` only set the tails' scales.

A point on a border ``b_k`` belongs to bar ``k`` (the distribution function is continuous, so this matters only
for the density there). Every method accounts for the tails in closed form.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

__all__ = ["BarDistribution"]

_Z75 = 0.6744897501960817  # Phi^{-1}(3/4): a half-normal puts half its mass within Z75 * sigma
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)  # mean of |Z|, and 2 * phi(0)
_HALF_LOG_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)  # log of the half-normal density's constant 2 phi(0)
_HALF_NORMAL_ENTROPY = 0.5 * math.log(math.pi / 2.0) + 0.5  # entropy of |Z| (add log sigma)


class Transfer(NamedTuple):
    """A sparse transfer matrix (see :meth:`BarDistribution.transfer_matrix`): `mass` of source bar `source`
    lands in bar `target` (three 1-D tensors of the nonzero entries)."""

    source: Tensor
    target: Tensor
    mass: Tensor


class _Bars(NamedTuple):
    """Per-bar constants derived from the borders, all in one dtype and on one device.

    ``borders`` has K+1 entries, ``inner`` the K-1 borders ``b_1 .. b_{K-1}``, the others K (one per bar; for the
    two tail bars ``log_width`` is unused and ``mean``, ``var``, ``entropy`` are the half-normals').
    """

    borders: Tensor
    inner: Tensor
    width: Tensor
    log_width: Tensor
    sigma_left: Tensor
    sigma_right: Tensor
    mean: Tensor
    var: Tensor
    entropy: Tensor


def _make_bars(borders: Tensor, dtype: torch.dtype, device: torch.device) -> _Bars:
    """Per-bar constants, computed in the borders' own dtype (typically float64) and then cast.

    Computing widths before the cast keeps them positive even where float32 would merge two close borders.
    """
    b = borders
    w = b[1:] - b[:-1]
    sigma_l = w[0] / _Z75
    sigma_r = w[-1] / _Z75
    mean = 0.5 * (b[1:] + b[:-1])
    mean[0] = b[1] - sigma_l * _SQRT_2_OVER_PI
    mean[-1] = b[-2] + sigma_r * _SQRT_2_OVER_PI
    var = w**2 / 12.0
    var[0] = sigma_l**2 * (1.0 - 2.0 / math.pi)
    var[-1] = sigma_r**2 * (1.0 - 2.0 / math.pi)
    log_w = torch.log(w)
    entropy = log_w.clone()
    entropy[0] = torch.log(sigma_l) + _HALF_NORMAL_ENTROPY
    entropy[-1] = torch.log(sigma_r) + _HALF_NORMAL_ENTROPY

    def cast(t: Tensor) -> Tensor:
        return t.to(dtype=dtype, device=device)

    return _Bars(
        borders=cast(b),
        inner=cast(b[1:-1]).contiguous(),
        width=cast(w),
        log_width=cast(log_w),
        sigma_left=cast(sigma_l),
        sigma_right=cast(sigma_r),
        mean=cast(mean),
        var=cast(var),
        entropy=cast(entropy),
    )


def _broadcast(a: Sequence[int], b: Sequence[int]) -> torch.Size:
    """The broadcast of two shapes (pure Python: ``torch.broadcast_shapes`` costs ~100 us a call)."""
    if tuple(a) == tuple(b):
        return torch.Size(a)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, j in zip(a, b):
        if i != j and i != 1 and j != 1:
            raise ValueError(f"shapes {a} and {b} do not broadcast")
        out.append(j if i == 1 else i)
    return torch.Size(out)


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """``x[..., idx]`` per batch element: x ``... x K``, idx ``...'`` (broadcastable) -> broadcast shape."""
    shape = _broadcast(x.shape[:-1], idx.shape)
    return x.expand(*shape, x.shape[-1]).gather(-1, idx.expand(shape).unsqueeze(-1)).squeeze(-1)


def _cdf(bars: _Bars, logits: Tensor, y: Tensor) -> Tensor:
    """F(y) = sum_{j<k} p_j + p_k * (fraction of bar k below y); logits ``... x K``, y ``...'`` -> broadcast."""
    k = logits.shape[-1]
    log_p = torch.log_softmax(logits, dim=-1)
    p = log_p.exp()
    below = torch.cumsum(p, dim=-1) - p  # exclusive cumulative sum, ... x K
    idx = torch.searchsorted(bars.inner, y.contiguous(), right=True)
    p_k = _gather(p, idx)
    frac = ((y - bars.borders[idx]) / bars.width[idx]).clamp(0.0, 1.0)
    inner = _gather(below, idx) + p_k * frac
    b1, bk = bars.borders[1], bars.borders[-2]
    left = p_k * torch.special.erfc((b1 - y).clamp_min(0.0) / (bars.sigma_left * _SQRT2))
    right = 1.0 - p_k * torch.special.erfc((y - bk).clamp_min(0.0) / (bars.sigma_right * _SQRT2))
    out = torch.where(idx == 0, left, torch.where(idx == k - 1, right, inner))
    return out.clamp(0.0, 1.0)


def _int_phi(u: Tensor) -> Tensor:
    """P1(u) = int_{-inf}^u Phi(t) dt = u Phi(u) + phi(u)."""
    return u * torch.special.ndtr(u) + torch.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)


def _int_phi2(u: Tensor) -> Tensor:
    """P2(u) = int_{-inf}^u Phi(t)^2 dt = u Phi(u)^2 + 2 phi(u) Phi(u) - Phi(sqrt(2) u) / sqrt(pi)."""
    cdf = torch.special.ndtr(u)
    pdf = torch.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)
    return u * cdf**2 + 2.0 * pdf * cdf - torch.special.ndtr(_SQRT2 * u) / math.sqrt(math.pi)


def _lower_cdf2(bars: _Bars, logits: Tensor, y: Tensor) -> Tensor:
    """int_{-inf}^y F(t)^2 dt in closed form; logits ``... x K``, y ``...'`` -> broadcast.

    Left tail: F = 2 p_0 Phi((t - b_1) / sigma_L). Inner bars: F is linear, and the integral of a linear
    function's square over [a, b] is (b - a)(F_a^2 + F_a F_b + F_b^2) / 3. Right tail: 1 - F = 2 p_{K-1}
    Phi(-(t - b_{K-1}) / sigma_R). P1 and P2 (above) integrate Phi and Phi^2.
    """
    k = logits.shape[-1]
    p = torch.softmax(logits, dim=-1)
    cum = torch.cumsum(p, dim=-1)  # F at b_1 .. b_K
    upper = cum[..., :-1]  # F(b_{j+1}) for bars j = 0 .. K-2
    lower = upper - p[..., :-1]  # F(b_j)
    w = bars.width[:-1]
    inner_int = w * (lower**2 + lower * upper + upper**2) / 3.0  # bars 0 .. K-2 (bar 0 is replaced by its tail)
    sl, sr = bars.sigma_left, bars.sigma_right
    p0, pk = p[..., 0], p[..., -1]
    zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
    left_total = 4.0 * p0**2 * sl * _int_phi2(zero)
    inner_int = torch.cat([left_total.unsqueeze(-1), inner_int[..., 1:]], dim=-1)
    before = torch.cumsum(inner_int, dim=-1) - inner_int  # integral up to b_j for bars j = 0 .. K-2
    idx = torch.searchsorted(bars.inner, y.contiguous(), right=True)
    inner_idx = idx.clamp(max=k - 2)
    f_lo = _gather(lower, inner_idx)
    frac = ((y - bars.borders[inner_idx]) / bars.width[inner_idx]).clamp(0.0, 1.0)
    f_y = f_lo + _gather(p, inner_idx) * frac  # F is linear inside an inner bar
    partial = (y - bars.borders[inner_idx]).clamp_min(0.0) * (f_lo**2 + f_lo * f_y + f_y**2) / 3.0
    inner = _gather(before, inner_idx) + partial
    left = 4.0 * p0**2 * sl * _int_phi2((y - bars.borders[1]).clamp_max(0.0) / sl)
    v = (y - bars.borders[-2]).clamp_min(0.0) / sr
    right_part = sr * (v - 4.0 * pk * (_int_phi(zero) - _int_phi(-v)) + 4.0 * pk**2 * (_int_phi2(zero) - _int_phi2(-v)))
    up_to_right_tail = before[..., -1] + inner_int[..., -1]
    right = up_to_right_tail + right_part
    return torch.where(idx == 0, left, torch.where(idx == k - 1, right, inner))


def _quantiles(bars: _Bars, logits: Tensor, q: Tensor) -> Tensor:
    """Exact inverse of ``_cdf``: logits ``... x K``, q ``...' x Q`` (leading dims broadcast) -> ``... x Q``.

    Only the ``... x Q`` bar values at each quantile's bar are gathered; no other ``... x K`` tensor is made beyond
    the probabilities and their cumulative sums (the large temporaries dominate the cost for many distributions).
    """
    k = logits.shape[-1]
    p = torch.softmax(logits, dim=-1)
    upto = torch.cumsum(p, dim=-1)  # inclusive, ... x K
    batch = _broadcast(logits.shape[:-1], q.shape[:-1])
    n_q = q.shape[-1]
    if tuple(batch) != tuple(logits.shape[:-1]):
        p, upto = p.expand(*batch, k).contiguous(), upto.expand(*batch, k).contiguous()
    q = q.expand(*batch, n_q).contiguous()
    # smallest k with cumsum_k >= q; the last bar also takes q above a sum that round-off left below 1
    idx = torch.searchsorted(upto, q).clamp_max(k - 1)
    p_k = p.gather(-1, idx)
    p_safe = torch.where(p_k > 0, p_k, torch.ones_like(p_k))
    frac = ((q - (upto.gather(-1, idx) - p_k)) / p_safe).clamp(0.0, 1.0)
    inner = bars.borders[idx] + bars.width[idx] * frac
    # left tail: F(y) = p_0 * 2 Phi((y - b_1) / sigma_L)
    left = bars.borders[1] + bars.sigma_left * torch.special.ndtri((0.5 * q / p_safe).clamp(max=0.5))
    # right tail: 1 - F(y) = p_{K-1} * 2 Phi(-(y - b_{K-1}) / sigma_R)
    right = bars.borders[-2] - bars.sigma_right * torch.special.ndtri((0.5 * (1.0 - q) / p_safe).clamp(max=0.5))
    return torch.where(idx == 0, left, torch.where(idx == k - 1, right, inner))


def _upper_expectation(bars: _Bars, logits: Tensor, f: Tensor) -> Tensor:
    """E[max(Y - f, 0)], summed bar by bar in closed form: logits ``... x K``, f ``...'`` -> broadcast shape.

    Inner bar ``[a, b]``: ``(p / w) * (b - c)(b + c - 2 f) / 2`` with ``c = clamp(f, a, b)``.
    Left tail ``Y = b_1 - sigma |Z|``, ``e = max(b_1 - f, 0)``, ``t = e / sigma``:
    ``e erf(t / sqrt 2) + sigma sqrt(2/pi) expm1(-t^2 / 2)``.
    Right tail ``Y = b_{K-1} + sigma |Z|``, ``d = f - b_{K-1}``: ``sigma sqrt(2/pi) - d`` if ``d <= 0``, else
    ``sigma sqrt(2/pi) exp(-t^2 / 2) - d erfc(t / sqrt 2)`` with ``t = d / sigma``.
    Every term is non-negative, so the sum has no cancellation.
    """
    p = torch.softmax(logits, dim=-1)
    fk = f.unsqueeze(-1)
    lo, hi = bars.borders[:-1], bars.borders[1:]
    c = torch.minimum(torch.maximum(fk, lo), hi)
    per_bar = (hi - c) * (hi + c - 2.0 * fk) / (2.0 * bars.width)  # ...' x K (tails replaced below)

    s_l = bars.sigma_left
    e = (bars.borders[1] - f).clamp_min(0.0)
    t = e / s_l
    left = e * torch.special.erf(t / _SQRT2) + s_l * _SQRT_2_OVER_PI * torch.expm1(-0.5 * t**2)

    s_r = bars.sigma_right
    d = f - bars.borders[-2]
    t = d.clamp_min(0.0) / s_r
    right_above = s_r * _SQRT_2_OVER_PI * torch.exp(-0.5 * t**2) - d.clamp_min(0.0) * torch.special.erfc(t / _SQRT2)
    right = torch.where(d > 0, right_above, s_r * _SQRT_2_OVER_PI - d)

    per_bar = torch.cat([left.unsqueeze(-1), per_bar[..., 1:-1], right.unsqueeze(-1)], dim=-1)
    return (p * per_bar.clamp_min(0.0)).sum(-1)


_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_TINY = 1e-300


def _log_upper_expectation(bars: _Bars, logits: Tensor, f: Tensor) -> Tensor:
    """log E[max(Y - f, 0)] without underflow, for the log-EI acquisition: ``logsumexp`` over bars of
    ``log p_k + log E_k``, each bar's expectation ``E_k`` (as in :func:`_upper_expectation`) taken in log.

    Where f lies beyond the right tail's start (``d = f - b_{K-1} > 0``, ``t = d / sigma``), the tail's term
    ``2 sigma (phi(t) - t Phi(-t))`` underflows and cancels; it is written
    ``log(2 sigma) + log phi(t) + log1p(-t sqrt(pi/2) erfcx(t / sqrt 2))``, and for t > 25 with the asymptotic
    series ``log(1/t^2 - 3/t^4 + 15/t^6)``. Bars wholly below f contribute nothing (log 0 = -inf). Expects
    float64 (callers cast): float32 would lose the tail term long before it underflows.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    fk = f.unsqueeze(-1)
    lo, hi = bars.borders[:-1], bars.borders[1:]
    above = hi > fk  # the bar reaches above f
    c = torch.minimum(torch.maximum(fk, lo), hi)
    first = torch.where(above, hi - c, torch.ones_like(c))
    second = torch.where(above, hi + c - 2.0 * fk, torch.ones_like(c))
    inner = torch.where(above, first.log() + second.log() - (2.0 * bars.width).log(),
                        torch.full_like(c, -math.inf))

    s_l = bars.sigma_left
    e = (bars.borders[1] - f).clamp_min(0.0)
    t = e / s_l
    left_value = e * torch.special.erf(t / _SQRT2) + s_l * _SQRT_2_OVER_PI * torch.expm1(-0.5 * t**2)
    left = torch.where(e > 0, left_value.clamp_min(_TINY).log(), torch.full_like(e, -math.inf))

    s_r = bars.sigma_right
    d = f - bars.borders[-2]
    t = (d / s_r).clamp_min(0.0)
    safe_t = torch.where(t > 0, t, torch.ones_like(t))
    ratio = safe_t * _SQRT_HALF_PI * torch.special.erfcx(safe_t / _SQRT2)  # t Phi(-t) / phi(t)
    big = safe_t.clamp_min(25.0)
    series = (1.0 / big**2 - 3.0 / big**4 + 15.0 / big**6).log()
    factor = torch.where(safe_t > 25.0, series, torch.log1p(-ratio.clamp_max(1.0 - 1e-16)))
    right_above = (2.0 * s_r).log() - 0.5 * safe_t**2 - 0.5 * math.log(2 * math.pi) + factor
    right_below = torch.where(d > 0, torch.ones_like(d), s_r * _SQRT_2_OVER_PI - d).log()
    right = torch.where(d > 0, right_above, right_below)

    log_e = torch.cat([left.unsqueeze(-1), inner[..., 1:-1], right.unsqueeze(-1)], dim=-1)
    return torch.logsumexp(log_p + log_e, dim=-1)


def _bar_masses(cdf: Tensor, sf: Tensor) -> Tensor:
    """The masses ``... x K`` a continuous distribution puts on the bars, from its distribution and survival
    functions at the K - 1 inner borders: differences of cdf values below the median and of sf values above it,
    so that each keeps its precision in both tails."""
    zero, one = torch.zeros_like(cdf[..., :1]), torch.ones_like(cdf[..., :1])
    by_cdf = torch.cat([cdf, one], -1) - torch.cat([zero, cdf], -1)
    by_sf = torch.cat([one, sf], -1) - torch.cat([sf, zero], -1)
    upper = torch.cat([torch.zeros_like(cdf[..., :1], dtype=torch.bool), sf < 0.5], -1)  # lower border above
    return torch.where(upper, by_sf, by_cdf)


def _bar_moments(bars: _Bars) -> tuple[Tensor, Tensor]:
    """E[Y | bar k] and E[Y^2 | bar k] for every bar (uniform inside; the half-normals in the tails)."""
    return bars.mean, bars.var + bars.mean**2


def _partial_moments(bars: _Bars, p: Tensor, c1: Tensor, c2: Tensor, m1: Tensor, m2: Tensor,
                     t: Tensor) -> tuple[Tensor, Tensor]:
    """``int_{-inf}^t y f(y) dy`` and ``int_{-inf}^t y^2 f(y) dy`` for each distribution (rows of p, inclusive
    cumulative sums c1, c2 of p * m1, p * m2) at its own point t (`...`): the bars below t's whole, t's own bar up
    to t (uniform, or the half-normal's partial moments in a tail)."""
    k = p.shape[-1]
    idx = torch.searchsorted(bars.inner, t.unsqueeze(-1).contiguous(), right=True)  # ... x 1
    p_k = p.gather(-1, idx).squeeze(-1)
    idx = idx.squeeze(-1)
    before1 = c1.gather(-1, idx.unsqueeze(-1)).squeeze(-1) - p_k * m1[idx]
    before2 = c2.gather(-1, idx.unsqueeze(-1)).squeeze(-1) - p_k * m2[idx]
    lo, w = bars.borders[idx], bars.width[idx]
    tc = torch.minimum(torch.maximum(t, lo), lo + w)
    inner1, inner2 = p_k * (tc**2 - lo**2) / (2.0 * w), p_k * (tc**3 - lo**3) / (3.0 * w)
    # left tail, Y = b_1 - X: the part with X > u = b_1 - t
    b1, s = bars.borders[1], bars.sigma_left
    u = (b1 - t).clamp_min(0.0) / s
    phi_u = torch.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)
    tail_p = torch.special.erfc(u / _SQRT2)
    ex1, ex2 = 2.0 * s * phi_u, s**2 * (tail_p + 2.0 * u * phi_u)
    left1, left2 = p_k * (b1 * tail_p - ex1), p_k * (b1**2 * tail_p - 2.0 * b1 * ex1 + ex2)
    # right tail, Y = b_{K-1} + X: the part with X < v = t - b_{K-1}
    bk, s = bars.borders[-2], bars.sigma_right
    v = (t - bk).clamp_min(0.0) / s
    phi_v = torch.exp(-0.5 * v**2) / math.sqrt(2.0 * math.pi)
    head_p = torch.special.erf(v / _SQRT2)
    ex1 = 2.0 * s * (1.0 / math.sqrt(2.0 * math.pi) - phi_v)
    ex2 = s**2 * (head_p - 2.0 * v * phi_v)
    right1, right2 = p_k * (bk * head_p + ex1), p_k * (bk**2 * head_p + 2.0 * bk * ex1 + ex2)
    part1 = torch.where(idx == 0, left1, torch.where(idx == k - 1, right1, inner1))
    part2 = torch.where(idx == 0, left2, torch.where(idx == k - 1, right2, inner2))
    return before1 + part1, before2 + part2


class BarDistribution(torch.nn.Module):
    """A histogram distribution over a scalar with half-normal tails (see the module docstring for the density).

    Args:
        borders: ``K+1`` strictly increasing finite borders, ``K >= 2``. Registered as a buffer, so it follows
            ``.to()`` and is saved in the ``state_dict``.

    Every method takes ``logits`` of shape ``... x K`` (unnormalised log bar probabilities) and broadcasts them
    against its other arguments' shapes ``...``; float32 and float64 both work (the per-bar constants are
    computed in the borders' dtype, then cast to the logits' dtype).

    Example:
        >>> bd = BarDistribution.from_samples(torch.randn(10_000, dtype=torch.float64), n_bars=100)
        >>> logits = torch.zeros(3, 100, dtype=torch.float64)
        >>> bd.nll(logits, torch.zeros(3)).shape
        torch.Size([3])
    """

    borders: Tensor

    def __init__(self, borders: Tensor) -> None:
        super().__init__()
        borders = torch.as_tensor(borders)
        if not borders.is_floating_point():
            borders = borders.to(torch.get_default_dtype())
        if borders.ndim != 1:
            raise ValueError(f"borders must be a 1-D tensor, got shape {tuple(borders.shape)}")
        if borders.numel() < 3:
            raise ValueError(f"borders must hold at least 3 values (2 bars), got {borders.numel()}")
        if not torch.isfinite(borders).all():
            raise ValueError("borders must be finite, got NaN or infinite values")
        steps = borders[1:] - borders[:-1]
        if not (steps > 0).all():
            bad = int(torch.nonzero(steps <= 0)[0])
            raise ValueError(
                f"borders must be strictly increasing, got borders[{bad}] = {borders[bad].item()!r} >= "
                f"borders[{bad + 1}] = {borders[bad + 1].item()!r}"
            )
        self.register_buffer("borders", borders.detach().clone())
        self._cache: dict[tuple, _Bars] = {}
        self._cache_src: Tensor | None = None
        self._cache_version = -1

    @property
    def n_bars(self) -> int:
        """K, the number of bars (``len(borders) - 1``)."""
        return self.borders.numel() - 1

    def extra_repr(self) -> str:
        b = self.borders
        return f"n_bars={self.n_bars}, range=[{b[0].item():.4g}, {b[-1].item():.4g}]"

    @classmethod
    def from_samples(cls, y: Tensor, n_bars: int, tail_bars: int = 0, tail_reach: float = 1e4) -> "BarDistribution":
        """Borders at the equal-mass quantiles ``i / K``, ``i = 0..K``, of the samples ``y`` (any shape).

        The outer borders are the samples' minimum and maximum. Ties (duplicate quantiles, e.g. from an atom or
        rounded targets) are broken by ``b_i <- max(b_i, b_{i-1} + delta)`` with
        ``delta = (max - min) / (1000 K)``, so the borders are strictly increasing and move by at most
        ``(max - min) / 1000``. Computed in float64; the borders come back in ``y``'s floating dtype.

        With ``tail_bars`` T > 0, for heavy-tailed targets: the K - 2T inner bars are equal-mass between the
        samples' quantiles T / K and 1 - T / K, and T bars on each side have geometrically growing widths, from
        the neighbouring inner bar's to ``tail_reach`` times the inner borders' span (so a density falling like a
        power of |y| keeps about the same mass per tail bar, where equal-mass bars would put its far tail in the
        half-normal beyond the last border).
        """
        if isinstance(n_bars, bool) or not isinstance(n_bars, numbers.Integral) or n_bars < 2:
            raise ValueError(f"n_bars must be an integer >= 2, got {n_bars!r}")
        n_bars = int(n_bars)
        if isinstance(tail_bars, bool) or not isinstance(tail_bars, numbers.Integral) or not 0 <= 2 * tail_bars <= n_bars - 2:
            raise ValueError(f"tail_bars must be an integer in 0..{(n_bars - 2) // 2}, got {tail_bars!r}")
        if tail_bars:
            if not (isinstance(tail_reach, (int, float)) and math.isfinite(tail_reach) and tail_reach > 1):
                raise ValueError(f"tail_reach must be a finite number > 1, got {tail_reach!r}")
            return cls._with_tail_bars(torch.as_tensor(y), n_bars, int(tail_bars), float(tail_reach))
        y = torch.as_tensor(y)
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        ys = y.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
        if ys.numel() < 2:
            raise ValueError(f"y must hold at least 2 samples, got {ys.numel()}")
        if not torch.isfinite(ys).all():
            raise ValueError("y must be finite, got NaN or infinite samples")
        ys = ys.sort().values
        span = (ys[-1] - ys[0]).item()
        if not span > 0:
            raise ValueError(f"y must hold at least 2 distinct values, got only {ys[0].item()!r}")
        # linear-interpolation quantiles at positions (n - 1) * i / K
        pos = torch.linspace(0.0, ys.numel() - 1.0, n_bars + 1, dtype=torch.float64)
        lo = pos.floor().long().clamp(max=ys.numel() - 1)
        hi = (lo + 1).clamp(max=ys.numel() - 1)
        b = ys[lo] + (pos - lo) * (ys[hi] - ys[lo])
        b[0], b[-1] = ys[0], ys[-1]
        delta = span / (1000.0 * n_bars)
        steps = torch.arange(n_bars + 1, dtype=torch.float64) * delta
        b = torch.cummax(b - steps, dim=0).values + steps  # b_i >= b_{i-1} + delta
        b = b.to(dtype)
        if not (b[1:] > b[:-1]).all():
            raise ValueError(
                f"y's quantiles cannot be made strictly increasing in {dtype}; pass y as float64 or use fewer bars"
            )
        return cls(b)

    @classmethod
    def _with_tail_bars(cls, y: Tensor, n_bars: int, tail_bars: int, tail_reach: float) -> "BarDistribution":
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        ys = y.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
        if not torch.isfinite(ys).all():
            raise ValueError("y must be finite, got NaN or infinite samples")
        inner_bars = n_bars - 2 * tail_bars
        levels = torch.linspace(tail_bars / n_bars, 1 - tail_bars / n_bars, inner_bars + 1, dtype=torch.float64)
        inner = cls.from_samples(torch.quantile(ys, levels), inner_bars).borders.to(torch.float64)
        span = (inner[-1] - inner[0]).item()
        first, last = (inner[1] - inner[0]).item(), (inner[-1] - inner[-2]).item()
        steps = torch.arange(1, tail_bars + 1, dtype=torch.float64) / tail_bars
        left = inner[0] - first * (tail_reach * span / first) ** steps  # growing distances below the inner bars
        right = inner[-1] + last * (tail_reach * span / last) ** steps
        borders = torch.cat([left.flip(0), inner, right]).to(dtype)
        if not (borders[1:] > borders[:-1]).all():
            raise ValueError(f"the tail borders cannot be made strictly increasing in {dtype}; use float64")
        return cls(borders)

    # -- validation --------------------------------------------------------------------------------------------

    def _check_logits(self, logits: Tensor) -> Tensor:
        if not isinstance(logits, Tensor):
            raise ValueError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
        if not logits.is_floating_point():
            raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
        if logits.ndim < 1 or logits.shape[-1] != self.n_bars:
            raise ValueError(
                f"logits must have shape ... x {self.n_bars} (one logit per bar), got shape {tuple(logits.shape)}"
            )
        return logits

    def _bars(self, logits: Tensor, reflected: bool = False) -> _Bars:
        """Per-bar constants in the logits' dtype and device, cached until ``borders`` changes.

        ``reflected=True`` gives the constants of -Y (borders negated and reversed): pair them with
        ``logits.flip(-1)``. The cache holds the borders tensor itself and its version counter, so replacing the
        buffer (``.to()``), or changing it in place (``load_state_dict``), recomputes the constants. Borders
        created under ``torch.inference_mode`` have no version counter and are never cached.
        """
        # constants made under inference_mode are inference tensors, which autograd must not save: separate entries
        key = (logits.dtype, logits.device, reflected, torch.is_inference_mode_enabled())
        src = self.borders
        if src.is_inference():  # no version counter to tell an in-place change: do not cache
            return _make_bars(-src.flip(0) if reflected else src, logits.dtype, logits.device)
        if self._cache_src is not src or self._cache_version != src._version:
            self._cache.clear()
            self._cache_src, self._cache_version = src, src._version
        bars = self._cache.get(key)
        if bars is None:
            b = -src.detach().flip(0) if reflected else src.detach()
            bars = self._cache[key] = _make_bars(b, logits.dtype, logits.device)
        return bars

    def _reflected_bars(self, logits: Tensor) -> _Bars:
        return self._bars(logits, reflected=True)

    @staticmethod
    def _as_tensor(name: str, value, logits: Tensor, finite: bool = False) -> Tensor:
        try:
            t = torch.as_tensor(value, dtype=logits.dtype, device=logits.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be a number or a tensor, got {type(value).__name__}") from err
        if finite and not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite, got NaN or infinite values")
        return t

    @staticmethod
    def _check_q(q: Tensor) -> None:
        if not ((q > 0) & (q < 1)).all():
            bad = q[~((q > 0) & (q < 1))].reshape(-1)[0].item()
            raise ValueError(f"q must lie in the open interval (0, 1), got {bad!r}")

    # -- densities ---------------------------------------------------------------------------------------------

    def log_prob(self, logits: Tensor, y: Tensor) -> Tensor:
        """log f(y): logits ``... x K``, y ``...`` -> ``...``; differentiable w.r.t. logits.

        ``log_softmax(logits)[k] - log w_k`` for an inner bar; in a tail,
        ``log p_0 + log(2 / sigma) + log phi(t)`` with ``t`` the distance from ``b_1`` (or ``b_{K-1}``) over sigma.
        NaN y gives NaN.
        """
        logits = self._check_logits(logits)
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        bars = self._bars(logits)
        k = self.n_bars
        idx = torch.searchsorted(bars.inner, y.contiguous(), right=True)  # bar of y, 0 .. K-1
        log_p = _gather(torch.log_softmax(logits, dim=-1), idx)
        t_l = (bars.borders[1] - y) / bars.sigma_left
        t_r = (y - bars.borders[-2]) / bars.sigma_right
        left = _HALF_LOG_2_OVER_PI - torch.log(bars.sigma_left) - 0.5 * t_l**2
        right = _HALF_LOG_2_OVER_PI - torch.log(bars.sigma_right) - 0.5 * t_r**2
        log_density = torch.where(idx == 0, left, torch.where(idx == k - 1, right, -bars.log_width[idx]))
        return log_p + log_density

    def nll(self, logits: Tensor, y: Tensor) -> Tensor:
        """The training loss ``-log f(y)``: logits ``... x K``, y ``...`` -> ``...`` (no reduction)."""
        return -self.log_prob(logits, y)

    def expected_nll(self, logits: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """The cross-entropy ``E[-log f(Y)]`` for ``Y ~ N(mean, std^2)``, in closed form: logits ``... x K``, mean,
        std ``...`` -> ``...``; differentiable w.r.t. logits.

        With the normal's masses ``P_k`` on the bars (as :meth:`project_normal`) it is ``-sum_k P_k log p_k`` plus
        terms free of the logits: ``P_k log w_k`` for an inner bar and, for a tail, the half-normal's constant and
        ``E[t^2; Y in the tail] / 2`` (``t`` the distance past ``b_1`` or ``b_{K-1}`` over sigma), from the
        normal's truncated second moment ``s^2 ((z^2 + 1) Phi(z) + z phi(z))``. So it equals the mean of
        :meth:`nll` over draws of Y, with no sampling noise: the Rao-Blackwellised training loss. Computed in the
        logits' dtype (float32 erfc is ten times faster than float64 on a CPU; a mass's rounding error there is far
        below what training resolves); each mass is a difference of the smaller of the two tail probabilities, so
        it keeps its relative precision in both tails.
        """
        logits = self._check_logits(logits)
        dtype = logits.dtype
        with torch.no_grad():
            mean = torch.as_tensor(mean, dtype=dtype, device=logits.device)
            std = torch.as_tensor(std, dtype=dtype, device=logits.device)
            if not (std > 0).all():
                raise ValueError("std must be positive")
            bars = self._bars(logits.detach())
            z = (bars.inner - mean.unsqueeze(-1)) / std.unsqueeze(-1)  # ... x (K-1)
            small = 0.5 * torch.special.erfc(z.abs() / _SQRT2)  # the smaller tail probability at each border
            below = z < 0
            mass = _bar_masses(torch.where(below, small, 1.0 - small), torch.where(below, 1.0 - small, small))
            mass = mass.clamp_min(0.0)

            def tail_moment(u: Tensor) -> Tensor:  # E[(u - Z)^2; Z < u] for Z ~ N(0, 1)
                phi = torch.exp(-0.5 * u.square()) / math.sqrt(2.0 * math.pi)
                cdf_u = 0.5 * torch.special.erfc(-u / _SQRT2)
                return ((u.square() + 1.0) * cdf_u + u * phi).clamp_min(0.0)

            const = (mass[..., 1:-1] * bars.log_width[1:-1]).sum(-1)
            const = const + mass[..., 0] * (bars.sigma_left.log() - _HALF_LOG_2_OVER_PI)
            const = const + mass[..., -1] * (bars.sigma_right.log() - _HALF_LOG_2_OVER_PI)
            const = const + 0.5 * std.square() * (tail_moment(z[..., 0]) / bars.sigma_left.square()
                                                   + tail_moment(-z[..., -1]) / bars.sigma_right.square())
        return const - (mass * torch.log_softmax(logits, dim=-1)).sum(-1)

    def pdf(self, logits: Tensor, y: Tensor) -> Tensor:
        """f(y) = exp(log_prob): logits ``... x K``, y ``...`` -> ``...``."""
        return self.log_prob(logits, y).exp()

    def cdf(self, logits: Tensor, y: Tensor) -> Tensor:
        """F(y) = P(Y <= y): logits ``... x K``, y ``...`` -> ``...``.

        Left tail: ``p_0 erfc((b_1 - y) / (sigma_L sqrt 2))``; right tail: ``1 - p_{K-1} erfc(...)``.
        """
        logits = self._check_logits(logits)
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        return _cdf(self._bars(logits), logits, y)

    def sf(self, logits: Tensor, y: Tensor) -> Tensor:
        """1 - F(y) = P(Y > y), computed as the CDF of -Y (accurate far in the upper tail). Shapes as ``cdf``."""
        logits = self._check_logits(logits)
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        return _cdf(self._reflected_bars(logits), logits.flip(-1), -y)

    def crps(self, logits: Tensor, y: Tensor) -> Tensor:
        """Continuous ranked probability score ``int (F(t) - 1{t >= y})^2 dt`` (lower is better; in y's units),
        in closed form, tails included: logits ``... x K``, y ``...`` -> broadcast.

        Computed as ``int_{-inf}^y F^2 + int_y^inf (1 - F)^2``, the second term being the first for -Y.
        """
        logits = self._check_logits(logits)
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        return _lower_cdf2(self._bars(logits), logits, y) + _lower_cdf2(
            self._reflected_bars(logits), logits.flip(-1), -y
        )

    # -- quantiles and sampling -------------------------------------------------------------------------------

    def icdf(self, logits: Tensor, q: float | Tensor) -> Tensor:
        """F^{-1}(q), elementwise: logits ``... x K``, q a float or a tensor broadcastable to ``...`` -> broadcast.

        Exact inverse of ``cdf``, inside the tails too: ``b_1 + sigma_L Phi^{-1}(q / (2 p_0))`` in the left tail.
        q must lie in (0, 1). For several quantiles of every distribution use ``quantile``.
        """
        logits = self._check_logits(logits)
        q = self._as_tensor("q", q, logits)
        self._check_q(q)
        return _quantiles(self._bars(logits), logits, q.unsqueeze(-1)).squeeze(-1)

    def quantile(self, logits: Tensor, qs: Sequence[float] | Tensor) -> Tensor:
        """The same Q quantiles of every distribution: logits ``... x K``, qs 1-D (Q) -> ``... x Q``."""
        logits = self._check_logits(logits)
        qs = self._as_tensor("qs", qs, logits)
        if qs.ndim != 1:
            raise ValueError(f"qs must be a 1-D sequence of quantile levels, got shape {tuple(qs.shape)}")
        if not ((qs > 0) & (qs < 1)).all():
            bad = qs[~((qs > 0) & (qs < 1))][0].item()
            raise ValueError(f"qs must lie in the open interval (0, 1), got {bad!r}")
        return _quantiles(self._bars(logits), logits, qs)

    def sample(
        self,
        logits: Tensor,
        sample_shape: int | Sequence[int] | torch.Size = (),
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Inverse-CDF samples: logits ``... x K`` -> ``sample_shape x ...``.

        Draws ``U ~ Uniform(0, 1)`` of shape ``sample_shape x ...`` from ``generator`` (on the logits' device, in
        their dtype), clamps it away from 0, and returns ``icdf(U)``.
        """
        logits = self._check_logits(logits)
        if isinstance(sample_shape, int):
            sample_shape = (sample_shape,)
        sample_shape = torch.Size(sample_shape)
        batch = logits.shape[:-1]
        u = torch.rand(sample_shape + batch, generator=generator, dtype=logits.dtype, device=logits.device)
        u = u.clamp_min(torch.finfo(logits.dtype).tiny)  # rand is in [0, 1)
        # move the sample dims last, so each distribution's cumulative sums are searched once
        u_last = u.reshape(sample_shape.numel(), *batch).movedim(0, -1)
        y = _quantiles(self._bars(logits), logits, u_last)  # ... x S
        return y.movedim(-1, 0).reshape(sample_shape + batch)

    # -- moments and information ------------------------------------------------------------------------------

    def mean(self, logits: Tensor) -> Tensor:
        """E[Y] = sum_k p_k m_k, m_k the bar midpoint or ``b_1 - sigma_L sqrt(2/pi)`` for the left tail (and so on).

        logits ``... x K`` -> ``...``.
        """
        logits = self._check_logits(logits)
        return torch.softmax(logits, dim=-1) @ self._bars(logits).mean

    def variance(self, logits: Tensor) -> Tensor:
        """Var[Y] = sum_k p_k (v_k + (m_k - E[Y])^2), v_k = w_k^2 / 12 or sigma^2 (1 - 2/pi) in a tail.

        logits ``... x K`` -> ``...``.
        """
        logits = self._check_logits(logits)
        bars = self._bars(logits)
        p = torch.softmax(logits, dim=-1)
        mu = (p * bars.mean).sum(-1, keepdim=True)
        return (p * (bars.var + (bars.mean - mu) ** 2)).sum(-1)

    def winsorized_moments(self, logits: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
        """Mean and variance of ``clamp(Y, F^{-1}(alpha), F^{-1}(1 - alpha))``: Y with its outer ``alpha`` of mass
        on each side moved onto those quantiles. logits ``... x K`` -> two ``...`` tensors, in closed form.

        A network trained by NLL cannot tell a far tail bar's mass of 1e-5 from 1e-8 (the loss differs by 1e-5
        nats), yet with tail bars reaching 10^4 spreads out that mass alone moves the raw :meth:`mean` by 0.1
        spreads and the :meth:`variance` by a factor of hundreds. Winsorising at ``alpha`` keeps only what the
        bars resolve; for a normal at alpha = 1e-3 it leaves the mean of a symmetric predictive unchanged and
        scales the variance by 0.996. Computed in float64 whatever the logits' dtype.
        """
        logits = self._check_logits(logits)
        if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 0.5):
            raise ValueError(f"alpha must be a number in (0, 0.5), got {alpha!r}")
        logits = logits.to(torch.float64)  # the second moment less the squared mean: float32 would lose digits
        bars = self._bars(logits)
        qs = _quantiles(bars, logits, torch.tensor([alpha, 1.0 - alpha], dtype=logits.dtype, device=logits.device))
        a, b = qs[..., 0], qs[..., 1]
        p = torch.softmax(logits, dim=-1)
        bar1, bar2 = _bar_moments(bars)
        c1, c2 = torch.cumsum(p * bar1, -1), torch.cumsum(p * bar2, -1)
        lo1, lo2 = _partial_moments(bars, p, c1, c2, bar1, bar2, a)
        hi1, hi2 = _partial_moments(bars, p, c1, c2, bar1, bar2, b)
        # F(a) = alpha and 1 - F(b) = alpha: the quantiles are exact inverses of the continuous cdf
        m1 = alpha * (a + b) + (hi1 - lo1)
        m2 = alpha * (a**2 + b**2) + (hi2 - lo2)
        return m1, (m2 - m1**2).clamp_min(0.0)

    def stddev(self, logits: Tensor) -> Tensor:
        """sqrt(Var[Y]): logits ``... x K`` -> ``...``."""
        return self.variance(logits).sqrt()

    def entropy(self, logits: Tensor) -> Tensor:
        """Differential entropy -E[log f(Y)] = -sum_k p_k log p_k + sum_k p_k h_k (nats).

        ``h_k = log w_k`` for an inner bar, ``log sigma + log(pi / 2) / 2 + 1/2`` (half-normal) for a tail.
        logits ``... x K`` -> ``...``.
        """
        logits = self._check_logits(logits)
        log_p = torch.log_softmax(logits, dim=-1)
        p = log_p.exp()
        plogp = torch.where(p > 0, p * log_p, torch.zeros_like(p))
        return (p * self._bars(logits).entropy - plogp).sum(-1)

    # -- other distributions on these bars ----------------------------------------------------------------------

    def project_normal(self, mean: Tensor, std: Tensor) -> Tensor:
        """Logits whose bar masses are the masses N(mean, std^2) puts on each bar: mean, std ``...`` -> ``... x K``
        (:meth:`project` of the normal's distribution and survival functions, by erfc so that they keep their
        precision deep in either tail; torch's ndtr rounds Phi(-8.5) to 0)."""
        mean = torch.as_tensor(mean, dtype=self.borders.dtype, device=self.borders.device)
        std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
        if not (std > 0).all():
            raise ValueError("std must be positive")
        inner = self.borders[1:-1].to(mean.dtype)
        z = (inner - mean.unsqueeze(-1)) / std.unsqueeze(-1)  # ... x (K-1), the inner borders standardised
        return self.project(0.5 * torch.special.erfc(-z / _SQRT2), 0.5 * torch.special.erfc(z / _SQRT2))

    def project(self, cdf: Tensor, sf: Tensor) -> Tensor:
        """Logits ``... x K`` whose bar masses are those a continuous distribution puts on each bar, from its
        distribution function ``cdf`` and survival function ``sf`` at the K - 1 inner borders (``... x (K-1)``).

        Of all distributions on these bars (inner bars uniform, tails half-normal), this one is closest to the
        given one in KL(given || bars): that KL is ``-sum_k P_k log q_k`` plus terms free of ``q``, least at
        ``q = P``. So its expected NLL under the given distribution, minus that distribution's own, is the least
        excess any model with these bars can have when the exact predictive is the given one: the floor the bars'
        resolution sets. Each mass is a difference of cdf values below the median and of sf values above it, so
        it keeps its precision in both tails.
        """
        mass = _bar_masses(cdf, sf)
        return mass.clamp_min(torch.finfo(mass.dtype).tiny).log()

    # -- other borders -----------------------------------------------------------------------------------------

    def transfer_matrix(self, borders: Tensor) -> Tensor:
        """``K' x K`` float64 matrix ``T``: a bar distribution on `borders` (K' + 1 of them, tails included) with
        bar probabilities ``p`` puts probability ``p @ T`` in each of these K bars.

        Row k is where the source's piece k (uniform on its bar, or a half-normal tail) falls, in closed form, so
        ``p @ T`` is exact for the bar masses; only the shape within each of these bars then becomes this
        distribution's (uniform, or its own tails'). Rows sum to 1 and hold no negative entries.
        """
        source = BarDistribution(torch.as_tensor(borders, dtype=torch.float64))
        src = _make_bars(source.borders, torch.float64, torch.device("cpu"))
        t = self.borders.detach().to(device="cpu", dtype=torch.float64)[1:-1]  # this distribution's inner borders
        lo, w = src.borders[1:-2, None], src.width[1:-1, None]
        # F_k(t) for every source piece k at every inner border t, and the complement where it is more precise
        cdf_inner = ((t - lo) / w).clamp(0.0, 1.0)  # K'-2 x K-1
        left = torch.where(t >= src.borders[1], torch.ones_like(t),
                           torch.erfc((src.borders[1] - t) / (src.sigma_left * _SQRT2)))
        right_sf = torch.where(t < src.borders[-2], torch.ones_like(t),
                               torch.erfc((t - src.borders[-2]) / (src.sigma_right * _SQRT2)))
        cdf = torch.cat([left[None], cdf_inner, (1.0 - right_sf)[None]])  # K' x K-1
        zeros, ones = torch.zeros(cdf.shape[0], 1, dtype=torch.float64), torch.ones(cdf.shape[0], 1, dtype=torch.float64)
        cdf = torch.cat([zeros, cdf, ones], dim=1)  # F at b_0 = -inf ... b_K = +inf
        masses = cdf[:, 1:] - cdf[:, :-1]
        sf = torch.cat([ones[0], right_sf, zeros[0]])  # the right tail's survival function, exactly
        masses[-1] = sf[:-1] - sf[1:]  # its far-right masses are differences of small numbers, not of numbers near 1
        return masses.clamp_min(0.0)

    def reflection(self) -> Transfer:
        """The nonzero entries of the :meth:`transfer_matrix` of the negated, reversed borders (where -Y's bars
        lie): a few per row, since the borders of a prior's targets are nearly symmetric."""
        matrix = self.transfer_matrix(-self.borders.detach().flip(0))
        source, target = torch.nonzero(matrix, as_tuple=True)
        return Transfer(source, target, matrix[source, target])

    def reflected_probs(self, probs: Tensor, reflection: Transfer | None = None) -> Tensor:
        """Bar probabilities over these bars of -Y, Y having bar probabilities `probs` (``... x K``, float64):
        -Y is a bar distribution on the negated, reversed borders, moved onto these bars with exact masses
        (pass ``reflection = self.reflection()`` to reuse it). Exact when the borders are symmetric."""
        r = self.reflection() if reflection is None else reflection
        flat = probs.flip(-1).reshape(-1, self.n_bars)
        moved = flat[:, r.source.to(flat.device)] * r.mass.to(flat)
        return torch.zeros_like(flat).index_add_(1, r.target.to(flat.device), moved).reshape(probs.shape)

    def reflected_logits(self, logits: Tensor, reflection: Transfer | None = None) -> Tensor:
        """Logits (log bar probabilities, float64) over these bars of -Y, Y having `logits` (``... x K``); see
        :meth:`reflected_probs`."""
        logits = self._check_logits(logits)
        return self.reflected_probs(torch.softmax(logits.to(torch.float64), dim=-1), reflection).log()

    # -- Bayesian-optimisation acquisitions -------------------------------------------------------------------

    def ei(self, logits: Tensor, best_f: float | Tensor, maximize: bool = True) -> Tensor:
        """Expected improvement ``E[max(Y - best_f, 0)]``, or ``E[max(best_f - Y, 0)]`` when ``maximize=False``.

        Closed form bar by bar and in the tails (see ``_upper_expectation``); minimisation uses -Y.
        logits ``... x K``, best_f a finite float or tensor broadcastable to ``...`` -> broadcast shape.
        """
        logits = self._check_logits(logits)
        best_f = self._as_tensor("best_f", best_f, logits, finite=True)
        if maximize:
            return _upper_expectation(self._bars(logits), logits, best_f)
        return _upper_expectation(self._reflected_bars(logits), logits.flip(-1), -best_f)

    def log_ei(self, logits: Tensor, best_f: float | Tensor, maximize: bool = True) -> Tensor:
        """``log`` of :meth:`ei`, finite however small the improvement (see ``_log_upper_expectation``): the
        acquisition to optimise when the expected improvement underflows. Computed in float64.

        logits ``... x K``, best_f a finite float or tensor broadcastable to ``...`` -> broadcast shape (float64).
        """
        logits = self._check_logits(logits).to(torch.float64)
        best_f = self._as_tensor("best_f", best_f, logits, finite=True)
        if maximize:
            return _log_upper_expectation(self._bars(logits), logits, best_f)
        return _log_upper_expectation(self._reflected_bars(logits), logits.flip(-1), -best_f)

    def pi(self, logits: Tensor, best_f: float | Tensor, maximize: bool = True) -> Tensor:
        """Probability of improvement ``P(Y > best_f)``, or ``P(Y < best_f)`` when ``maximize=False``.

        logits ``... x K``, best_f a finite float or tensor broadcastable to ``...`` -> broadcast shape.
        """
        logits = self._check_logits(logits)
        best_f = self._as_tensor("best_f", best_f, logits, finite=True)
        if maximize:
            return _cdf(self._reflected_bars(logits), logits.flip(-1), -best_f)
        return _cdf(self._bars(logits), logits, best_f)
