"""BarDistribution against slow, obvious references: scipy quadrature, Monte Carlo and closed forms (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from priorfit.model.bar_distribution import BarDistribution

F64 = torch.float64
Z75 = stats.norm.ppf(0.75)

# uneven widths, from 0.05 to 1.6
UNEVEN = torch.tensor([-3.0, -1.7, -1.1, -0.2, 0.05, 0.9, 1.0, 2.4, 4.0], dtype=F64)
TWO_BARS = torch.tensor([-1.0, 0.5, 2.5], dtype=F64)  # K = 2: nothing but the two tails


@pytest.fixture(autouse=True)
def single_thread():
    """Quadrature calls the distribution once per node on tiny tensors; on a busy 2-core machine torch's
    intra-op thread pool makes each such call ~1000x slower (thread wake-ups), so these tests run on one thread."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def random_logits(n_bars: int, rows: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.5 * torch.randn(rows, n_bars, generator=g, dtype=F64)


def scalar(fn, bd: BarDistribution, logits: torch.Tensor):
    """A float -> numpy function ``y -> fn(bd, logits, y)`` (one value per row of logits), for scipy."""
    return lambda y: fn(bd, logits, torch.tensor(y, dtype=F64)).numpy()


def quad_pieces(fn, borders: torch.Tensor, lo: float = -math.inf, hi: float = math.inf, extra=()) -> np.ndarray:
    """int_lo^hi fn (vector-valued), split at the inner borders and the `extra` points, where fn may jump.

    scipy.integrate.quad_vec: one adaptive Gauss-Kronrod integration of every component at once.
    """
    cuts = sorted({float(b) for b in borders[1:-1]} | {float(e) for e in extra})
    cuts = [c for c in cuts if lo < c < hi]
    value, err = integrate.quad_vec(fn, lo, hi, points=cuts or None, epsabs=1e-13, epsrel=1e-11, limit=2000)
    assert err < 1e-9
    return np.asarray(value)


# -- construction and validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "borders, match",
    [
        (torch.tensor([0.0, 1.0, 1.0, 2.0]), "strictly increasing"),
        (torch.tensor([0.0, 2.0, 1.0, 3.0]), "strictly increasing"),
        (torch.tensor([0.0, float("nan"), 2.0]), "finite"),
        (torch.tensor([0.0, 1.0, float("inf")]), "finite"),
        (torch.tensor([0.0, 1.0]), "at least 3"),
        (torch.zeros(2, 3), "1-D"),
    ],
)
def test_bad_borders_raise(borders, match):
    with pytest.raises(ValueError, match=f"borders.*{match}|{match}.*borders|borders must"):
        BarDistribution(borders)


def test_bad_arguments_raise():
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars)
    with pytest.raises(ValueError, match="logits"):
        bd.log_prob(torch.zeros(3, bd.n_bars + 1, dtype=F64), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="logits"):
        bd.mean(torch.zeros(bd.n_bars - 1, dtype=F64))
    with pytest.raises(ValueError, match="logits"):
        bd.mean(torch.zeros(bd.n_bars, dtype=torch.long))
    for bad_q in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="q must lie in the open interval"):
            bd.icdf(logits, bad_q)
    with pytest.raises(ValueError, match="qs must lie in the open interval"):
        bd.quantile(logits, [0.5, 1.0])
    with pytest.raises(ValueError, match="qs must be a 1-D"):
        bd.quantile(logits, [[0.5]])
    with pytest.raises(ValueError, match="best_f"):
        bd.ei(logits, float("nan"))
    with pytest.raises(ValueError, match="best_f"):
        bd.pi(logits, torch.tensor([0.0, math.inf], dtype=F64).unsqueeze(-1))
    with pytest.raises(ValueError, match="n_bars"):
        BarDistribution.from_samples(torch.randn(100), n_bars=1)
    with pytest.raises(ValueError, match="n_bars"):
        BarDistribution.from_samples(torch.randn(100), n_bars=10.0)
    with pytest.raises(ValueError, match="y must hold at least 2 distinct"):
        BarDistribution.from_samples(torch.ones(100), n_bars=10)
    with pytest.raises(ValueError, match="y must be finite"):
        BarDistribution.from_samples(torch.tensor([0.0, 1.0, float("nan")]), n_bars=2)


def test_borders_are_a_buffer():
    bd = BarDistribution(UNEVEN)
    assert bd.n_bars == len(UNEVEN) - 1
    assert torch.equal(bd.state_dict()["borders"], UNEVEN)
    other = BarDistribution(UNEVEN + 1.0)
    logits = random_logits(bd.n_bars)
    shifted_mean = other.mean(logits)  # computes and caches other's per-bar constants
    other.load_state_dict(bd.state_dict())
    assert torch.equal(other.borders, UNEVEN)
    assert torch.allclose(other.mean(logits), shifted_mean - 1.0)  # the cache followed the new borders
    with torch.inference_mode():  # inference tensors carry no version counter: computed afresh
        inference_bd = BarDistribution(UNEVEN)
    assert torch.equal(inference_bd.mean(logits), bd.mean(logits))
    # constants cached under inference_mode do not leak into autograd afterwards
    with torch.inference_mode():
        bd.mean(logits)
    bd.mean(logits.clone().requires_grad_(True)).sum().backward()
    assert bd.to(torch.float32).borders.dtype == torch.float32


# -- density, cdf, quantiles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("borders", [UNEVEN, TWO_BARS], ids=["uneven", "two_bars"])
def test_density_integrates_to_one(borders):
    bd = BarDistribution(borders)
    logits = random_logits(bd.n_bars)  # 3 x K
    total = quad_pieces(scalar(BarDistribution.pdf, bd, logits), borders)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-10)
    # positive everywhere, including far beyond the outer borders
    far = torch.tensor([borders[0] - 5.0, borders[-1] + 5.0], dtype=F64)
    assert (bd.pdf(logits.unsqueeze(1), far) > 0).all()


def test_tail_scale_rule():
    """Half of each tail's mass lies within its original bar's width."""
    bd = BarDistribution(UNEVEN)
    row = random_logits(bd.n_bars)[0]
    p = torch.softmax(row, -1)
    b = UNEVEN
    assert bd.cdf(row, b[0]).item() == pytest.approx(0.5 * p[0].item(), rel=1e-12)
    assert bd.sf(row, b[-1]).item() == pytest.approx(0.5 * p[-1].item(), rel=1e-12)
    # the left tail is p_0 times a half-normal density with sigma = w_0 / Phi^{-1}(3/4)
    sigma = (b[1] - b[0]).item() / Z75
    y = b[1].item() - 0.7
    expected = p[0].item() * 2.0 * stats.norm.pdf(0.7 / sigma) / sigma
    assert bd.pdf(row, torch.tensor(y, dtype=F64)).item() == pytest.approx(expected, rel=1e-12)
    # a point on an inner border belongs to the bar on its right: log f(b_k) = log p_k - log w_k
    k = torch.arange(1, bd.n_bars - 1)
    expected_lp = torch.log_softmax(row, -1)[k] - torch.log(b[k + 1] - b[k])
    assert torch.allclose(bd.log_prob(row, b[k]), expected_lp, rtol=1e-14)


@pytest.mark.parametrize("borders", [UNEVEN, TWO_BARS], ids=["uneven", "two_bars"])
def test_cdf_is_the_integral_of_the_pdf(borders):
    bd = BarDistribution(borders)
    b = borders.tolist()
    points = [b[0] - 4.0, b[0] - 0.3, 0.5 * (b[0] + b[1]), b[1], b[-2] + 0.2, b[-1], b[-1] + 3.0]
    points += [0.5 * (lo + hi) for lo, hi in zip(b[1:-2], b[2:-1])] + b[1:-1]
    logits = random_logits(bd.n_bars)  # 3 x K
    pdf = scalar(BarDistribution.pdf, bd, logits)
    t = np.array(points)
    # F(t_j) = int 1{y <= t_j} pdf(y) dy, for every row and every t_j at once: 3 x n_points
    expected = quad_pieces(lambda y: pdf(y)[:, None] * (y <= t), borders, extra=points)
    tt = torch.tensor(points, dtype=F64)
    np.testing.assert_allclose(bd.cdf(logits.unsqueeze(1), tt).numpy(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(bd.sf(logits.unsqueeze(1), tt).numpy(), 1.0 - expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("borders", [UNEVEN, TWO_BARS], ids=["uneven", "two_bars"])
def test_crps_is_the_integral_of_the_squared_cdf_error(borders):
    bd = BarDistribution(borders)
    b = borders.tolist()
    points = [b[0] - 4.0, b[1] - 0.1, 0.5 * (b[1] + b[2]), b[-2], b[-2] + 0.3, b[-1] + 3.0, 0.0]
    logits = random_logits(bd.n_bars)  # 3 x K
    cdf = scalar(BarDistribution.cdf, bd, logits)
    t = np.array(points)
    # CRPS(F, t_j) = int (F(y) - 1{y >= t_j})^2 dy, every row and every t_j at once: 3 x n_points
    expected = quad_pieces(lambda y: (cdf(y)[:, None] - (y >= t)) ** 2, borders, extra=points)
    got = bd.crps(logits.unsqueeze(1), torch.tensor(points, dtype=F64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-9)


def test_crps_of_a_fine_bar_fit_to_a_normal_matches_the_closed_form():
    # CRPS(N(0,1), y) = y (2 Phi(y) - 1) + 2 phi(y) - 1/sqrt(pi); bars with masses of N(0,1) come close
    borders = torch.linspace(-6.0, 6.0, 1201, dtype=F64)
    logits = torch.log(torch.diff(torch.special.ndtr(borders)))
    y = torch.tensor([-2.0, -0.5, 0.0, 1.3, 3.0], dtype=F64)
    pdf = torch.exp(-0.5 * y**2) / math.sqrt(2 * math.pi)
    closed = y * (2 * torch.special.ndtr(y) - 1) + 2 * pdf - 1 / math.sqrt(math.pi)
    np.testing.assert_allclose(BarDistribution(borders).crps(logits, y).numpy(), closed.numpy(), atol=1e-4)


def test_cdf_monotone_with_limits():
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars)
    grid = torch.linspace(-20.0, 20.0, 20_001, dtype=F64)
    cdf = bd.cdf(logits.unsqueeze(1), grid)  # 3 x 20001
    assert (cdf.diff(dim=-1) >= 0).all()
    assert (cdf[:, 0] < 1e-12).all() and (cdf[:, -1] > 1 - 1e-12).all()
    ends = torch.tensor([-math.inf, math.inf], dtype=F64)
    assert torch.equal(bd.cdf(logits.unsqueeze(1), ends), torch.tensor([[0.0, 1.0]] * 3, dtype=F64))
    # the far upper tail is resolved by sf, where 1 - cdf has rounded to 0
    assert (bd.sf(logits, 30.0) > 0).all()


def test_icdf_inverts_cdf_including_tails():
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars)
    q = torch.cat(
        [
            torch.tensor([1e-6, 1e-4, 1e-2], dtype=F64),
            torch.linspace(0.02, 0.98, 49, dtype=F64),
            torch.tensor([0.99, 1 - 1e-4, 1 - 1e-6], dtype=F64),
        ]
    )
    y = bd.quantile(logits, q)  # 3 x Q
    assert y.shape == (3, len(q))
    assert torch.allclose(bd.cdf(logits.unsqueeze(1), y), q.expand(3, -1), rtol=1e-10, atol=1e-13)
    assert (y.diff(dim=-1) > 0).all()
    # extreme quantiles lie far beyond the outer borders: the tails are not clamped
    assert (y[:, 0] < UNEVEN[0]).all() and (y[:, -1] > UNEVEN[-1]).all()
    # closed form in the left tail: y = b_1 + sigma_L Phi^{-1}(q / (2 p_0))
    p0 = torch.softmax(logits, -1)[:, 0]
    sigma = (UNEVEN[1] - UNEVEN[0]) / Z75
    expected = UNEVEN[1] + sigma * torch.from_numpy(stats.norm.ppf(1e-6 / (2 * p0.numpy())))
    assert torch.allclose(y[:, 0], expected, rtol=1e-12)
    # icdf is the elementwise form of quantile, broadcasting q against the batch
    assert torch.allclose(bd.icdf(logits, q[10]), y[:, 10], rtol=0, atol=0)
    assert torch.allclose(bd.icdf(logits, q[:, None]), y.T)


# -- moments and information ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("borders", [UNEVEN, TWO_BARS], ids=["uneven", "two_bars"])
def test_mean_variance_entropy_equal_integrals(borders):
    bd = BarDistribution(borders)
    logits = random_logits(bd.n_bars)
    mean, var, ent = bd.mean(logits), bd.variance(logits), bd.entropy(logits)
    log_prob = scalar(BarDistribution.log_prob, bd, logits)

    def moments(y: float) -> np.ndarray:  # 3 x 3: (y f, y^2 f, -f log f) per row
        lp = log_prob(y)
        f = np.exp(lp)
        return np.stack([y * f, y * y * f, -f * lp], axis=-1)

    integrals = quad_pieces(moments, borders)
    m = integrals[:, 0]
    np.testing.assert_allclose(mean.numpy(), m, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(var.numpy(), integrals[:, 1] - m**2, rtol=1e-9)
    np.testing.assert_allclose(ent.numpy(), integrals[:, 2], rtol=1e-9, atol=1e-11)
    assert torch.allclose(bd.stddev(logits), var.sqrt())


def test_sample_matches_moments_and_cdf():
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars)
    n = 200_000
    g = torch.Generator().manual_seed(1)
    y = bd.sample(logits, (n,), generator=g)  # n x 3
    assert y.shape == (n, 3) and y.dtype == F64 and torch.isfinite(y).all()
    mean, var = bd.mean(logits), bd.variance(logits)

    def within(estimates: torch.Tensor, exact: torch.Tensor) -> None:
        se = estimates.std(dim=0) / math.sqrt(n)
        assert ((estimates.mean(dim=0) - exact).abs() < 4 * se).all()

    within(y, mean)
    within((y - mean) ** 2, var)
    within(-bd.log_prob(logits, y), bd.entropy(logits))
    for point in (UNEVEN[0] - 0.5, UNEVEN[1], 0.3, UNEVEN[-2] + 0.1, UNEVEN[-1] + 0.5):
        within((y <= point).to(F64), bd.cdf(logits, point))
    # the same generator seed gives the same samples; shapes follow sample_shape x batch
    again = bd.sample(logits, (n,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, again)
    assert bd.sample(logits, (2, 5), generator=g).shape == (2, 5, 3)
    assert bd.sample(logits[0], generator=g).shape == ()


# -- acquisitions --------------------------------------------------------------------------------------------------

BEST_F = {
    "inside_bars": [-1.4, -0.6, 0.05, 0.5, 1.7],
    "in_tails": [-2.5, -1.8, 2.6, 3.5],
    "outside_borders": [-4.5, 6.0],
}


@pytest.mark.parametrize("where", list(BEST_F))
@pytest.mark.parametrize("maximize", [True, False])
def test_ei_pi_equal_integrals(where, maximize):
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars, rows=2, seed=3)
    f = torch.tensor(BEST_F[where], dtype=F64)
    ei = bd.ei(logits.unsqueeze(1), f, maximize=maximize)  # 2 x n_f
    pi = bd.pi(logits.unsqueeze(1), f, maximize=maximize)
    sign = 1.0 if maximize else -1.0
    pdf = scalar(BarDistribution.pdf, bd, logits)
    fs = f.numpy()

    def gain_and_improves(y: float) -> np.ndarray:  # 2 x n_f x 2: max(+-(y - f), 0) pdf, 1{+-(y - f) > 0} pdf
        gain = sign * (y - fs)
        return pdf(y)[:, None, None] * np.stack([np.maximum(gain, 0.0), (gain > 0).astype(float)], axis=-1)

    integrals = quad_pieces(gain_and_improves, UNEVEN, extra=BEST_F[where])
    np.testing.assert_allclose(ei.numpy(), integrals[..., 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pi.numpy(), integrals[..., 1], rtol=1e-9, atol=1e-12)


def test_ei_identities():
    """EI(max) - EI(min) = E[Y] - best_f; PI(max) + PI(min) = 1; a float best_f broadcasts."""
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars)
    f = torch.linspace(-6.0, 7.0, 27, dtype=F64)[:, None]
    diff = bd.ei(logits, f) - bd.ei(logits, f, maximize=False)
    assert torch.allclose(diff, bd.mean(logits) - f, atol=1e-12)
    assert torch.allclose(bd.pi(logits, f) + bd.pi(logits, f, maximize=False), torch.ones(27, 3, dtype=F64))
    assert torch.allclose(bd.ei(logits, 0.3), bd.ei(logits, torch.full((3,), 0.3, dtype=F64)))


# -- training loss -------------------------------------------------------------------------------------------------


def test_log_prob_is_differentiable_and_nll_is_its_negative():
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars, rows=6).requires_grad_(True)
    y = torch.tensor([-5.0, -2.0, -0.5, 0.95, 3.0, 9.0], dtype=F64)  # tails, inner bars, beyond the borders
    assert torch.equal(bd.nll(logits, y), -bd.log_prob(logits, y))
    assert torch.autograd.gradcheck(lambda lg: bd.log_prob(lg, y), (logits,))
    # d nll / d logits = softmax(logits) - onehot(bar of y)
    bd.nll(logits, y).sum().backward()
    bar = torch.tensor([0, 0, 2, 5, 7, 7])
    expected = torch.softmax(logits.detach(), -1) - torch.nn.functional.one_hot(bar, bd.n_bars)
    assert torch.allclose(logits.grad, expected)


def test_batching_and_float32():
    bd = BarDistribution(UNEVEN)
    logits = random_logits(bd.n_bars, rows=6).reshape(2, 3, -1)
    y = torch.tensor([-2.5, 0.3, 3.1], dtype=F64)
    lp = bd.log_prob(logits, y)  # y broadcasts over the leading batch dim
    assert lp.shape == (2, 3)
    loop = torch.stack([torch.stack([bd.log_prob(logits[a, b], y[b]) for b in range(3)]) for a in range(2)])
    assert torch.equal(lp, loop)
    lg32, y32 = logits.float(), y.float()
    checks = {
        "log_prob": (bd.log_prob(lg32, y32), lp),
        "cdf": (bd.cdf(lg32, y32), bd.cdf(logits, y)),
        "icdf": (bd.icdf(lg32, 0.3), bd.icdf(logits, 0.3)),
        "mean": (bd.mean(lg32), bd.mean(logits)),
        "variance": (bd.variance(lg32), bd.variance(logits)),
        "entropy": (bd.entropy(lg32), bd.entropy(logits)),
        "ei": (bd.ei(lg32, 0.5), bd.ei(logits, 0.5)),
        "pi": (bd.pi(lg32, 0.5, maximize=False), bd.pi(logits, 0.5, maximize=False)),
    }
    for name, (got, expected) in checks.items():
        assert got.dtype == torch.float32, name
        assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-6), name
    assert bd.sample(lg32, 4, generator=torch.Generator().manual_seed(0)).dtype == torch.float32


# -- borders from samples ------------------------------------------------------------------------------------------


def test_from_samples_equal_mass_on_normal_samples():
    g = torch.Generator().manual_seed(0)
    n, k = 100_000, 50
    y = torch.randn(n, generator=g, dtype=F64)
    bd = BarDistribution.from_samples(y, n_bars=k)
    b = bd.borders
    assert b.shape == (k + 1,) and b.dtype == F64 and (b.diff() > 0).all()
    assert b[0] == y.min() and b[-1] == y.max()
    counts = torch.bincount(torch.searchsorted(b[1:-1], y, right=True), minlength=k)
    assert (counts - n / k).abs().max() <= 2  # the samples themselves: equal counts up to interpolation
    fresh = torch.randn(n, generator=g, dtype=F64)
    frac = torch.bincount(torch.searchsorted(b[1:-1], fresh, right=True), minlength=k) / n
    se = math.sqrt(2 * (1 / k) * (1 - 1 / k) / n)  # fresh-sample noise plus the borders' own noise
    assert ((frac - 1 / k).abs() < 5 * se).all()


def test_from_samples_with_many_ties():
    g = torch.Generator().manual_seed(0)
    rounded = torch.round(2 * torch.randn(20_000, generator=g, dtype=F64)) / 2  # ~20 distinct values
    atom = torch.cat([torch.zeros(10_000, dtype=F64), torch.randn(10_000, generator=g, dtype=F64)])
    for y in (rounded, atom, rounded.float(), torch.randint(0, 3, (1000,), generator=g)):
        bd = BarDistribution.from_samples(y, n_bars=200)
        b = bd.borders
        expected_dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        assert b.shape == (201,) and b.dtype == expected_dtype
        assert torch.isfinite(b).all() and (b.diff() > 0).all()
        span = (y.max() - y.min()).item()
        assert b[0].item() == y.min().item() and b[-1].item() <= y.max().item() + span / 1000 * 1.0001
        logits = torch.zeros(200, dtype=b.dtype)
        assert torch.isfinite(bd.log_prob(logits, y.to(b.dtype))).all()


# -- discretisation cost -------------------------------------------------------------------------------------------


def test_thousand_equal_mass_bars_cost_under_5_millinats_on_a_standard_normal():
    """Expected NLL under N(0, 1) of its 1000-bar approximation, against the exact entropy 0.5 log(2 pi e).

    Inner borders Phi^{-1}(i / K); outer borders Phi^{-1}(1 / (2K)) and its mirror, so the half-normal tails put
    half their mass inside the outer bars, as the normal does. Logits are the log of the exact bar masses (1 / K
    each). Within an inner bar log_prob is constant, so its expectation is exact; the tails use quadrature.
    """
    k = 1000
    inner = stats.norm.ppf(np.arange(1, k) / k)
    outer = stats.norm.ppf(0.5 / k)
    borders = torch.tensor([outer, *inner, -outer], dtype=F64)
    bd = BarDistribution(borders)
    logits = torch.full((k,), -math.log(k), dtype=F64)
    b = borders.numpy()
    mids = torch.tensor(0.5 * (b[1:-2] + b[2:-1]), dtype=F64)
    inner_mass = np.diff(stats.norm.cdf(b[1:-1]))
    nll_inner = float(np.sum(inner_mass * -bd.log_prob(logits, mids).numpy()))
    nll = scalar(BarDistribution.nll, bd, logits)

    def normal_times_nll(y: float) -> float:
        return math.exp(-0.5 * y * y) / math.sqrt(2 * math.pi) * float(nll(y))

    nll_tails = integrate.quad(normal_times_nll, -math.inf, b[1], epsabs=1e-13)[0]
    nll_tails += integrate.quad(normal_times_nll, b[-2], math.inf, epsabs=1e-13)[0]
    gap = nll_inner + nll_tails - 0.5 * math.log(2 * math.pi * math.e)
    assert 0.0 < gap < 0.001  # measured: 3.0e-4 nats (100 such bars: 2.4e-3), most of it from the two tails


# -- a normal moved onto the bars -----------------------------------------------------------------------------------


def test_project_normal_gives_the_normals_mass_on_every_bar():
    bd = BarDistribution(UNEVEN)
    mean = torch.tensor([0.3, -2.5, 3.7, 0.95], dtype=F64)
    std = torch.tensor([0.7, 0.2, 1.5, 0.01], dtype=F64)
    p = torch.softmax(bd.project_normal(mean, std), -1).numpy()
    edges = np.concatenate([[-np.inf], UNEVEN[1:-1].numpy(), [np.inf]])
    for row, (m, s) in enumerate(zip(mean.tolist(), std.tolist())):
        expected = np.diff(stats.norm.cdf(edges, loc=m, scale=s))
        np.testing.assert_allclose(p[row], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)


def test_project_normal_keeps_precision_far_above_the_mean():
    """Bars 8-9 standard deviations above the mean: a difference of CDFs would round their mass to 0."""
    bd = BarDistribution(torch.tensor([-20.0, 7.0, 8.0, 8.5, 9.0, 20.0], dtype=F64))
    p = torch.softmax(bd.project_normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)), -1).numpy()
    expected = -np.diff(stats.norm.sf([8.0, 8.5, 9.0]))
    np.testing.assert_allclose(p[2:4], expected, rtol=1e-10)


def test_project_normal_is_the_bars_closest_distribution_to_the_normal():
    """Expected NLL under N(m, s^2), by quadrature: the projection's is at least the normal's entropy (the floor is
    >= 0) and no perturbation of its masses does better (it is the KL projection)."""
    bd = BarDistribution(UNEVEN)
    m, s = 0.4, 0.6
    logits = bd.project_normal(torch.tensor(m, dtype=F64), torch.tensor(s, dtype=F64))
    g = torch.Generator().manual_seed(3)
    candidates = torch.stack([logits] + [logits + 0.05 * torch.randn(logits.shape, generator=g, dtype=F64)
                                         for _ in range(5)])

    def expected_nll(y):
        return stats.norm.pdf(y, m, s) * bd.nll(candidates, torch.full((6,), y, dtype=F64)).numpy()

    nll = quad_pieces(expected_nll, UNEVEN, m - 12 * s, m + 12 * s)
    entropy = 0.5 * math.log(2 * math.pi * math.e * s * s)
    assert nll[0] >= entropy
    assert (nll[1:] > nll[0]).all()


def test_project_normal_rejects_a_non_positive_std():
    with pytest.raises(ValueError, match="std must be positive"):
        BarDistribution(UNEVEN).project_normal(torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64))


def test_tail_bars_follow_a_heavy_tail():
    """With tail bars, the inner bars are equal-mass between the tail quantiles, each tail's bars widen
    geometrically out to tail_reach times the inner span, and a Cauchy's far tail lands in bars, not in the
    half-normal beyond them: its NLL under the projected Cauchy is close to the Cauchy's own entropy."""
    from scipy import stats

    y = torch.from_numpy(stats.cauchy.rvs(size=200_000, random_state=0))
    bd = BarDistribution.from_samples(y, 200, tail_bars=20, tail_reach=1e4)
    b = bd.borders
    assert b.shape == (201,) and (b[1:] > b[:-1]).all()
    inner = b[20:181]
    levels = torch.linspace(0.1, 0.9, 161, dtype=torch.float64)
    torch.testing.assert_close(inner, torch.quantile(y, levels), rtol=0, atol=1e-9)
    left = (inner[0] - b[:20]).flip(0)  # distances below the inner bars, nearest first
    ratios = left[1:] / left[:-1]
    torch.testing.assert_close(ratios, ratios[0].expand_as(ratios))
    assert float(inner[0] - b[0]) == pytest.approx(1e4 * float(inner[-1] - inner[0]))
    # the projected Cauchy: its excess NLL over the Cauchy's own is small with tail bars, large without
    z = torch.from_numpy(stats.cauchy.rvs(size=20_000, random_state=1))
    for bars, bound in ((bd, 0.02), (BarDistribution.from_samples(y, 200), None)):
        inner_b = bars.borders[1:-1]
        logits = bars.project(torch.from_numpy(stats.cauchy.cdf(inner_b.numpy())),
                              torch.from_numpy(stats.cauchy.sf(inner_b.numpy())))
        excess = float(bars.nll(logits.expand(len(z), -1), z).mean() + stats.cauchy.logpdf(z.numpy()).mean())
        if bound is not None:
            assert 0 <= excess < bound
        else:
            assert excess > 0.1  # equal-mass bars alone leave the far tail to a half-normal (0.14 measured)
    with pytest.raises(ValueError, match="tail_bars"):
        BarDistribution.from_samples(y, 10, tail_bars=5)
    with pytest.raises(ValueError, match="tail_reach"):
        BarDistribution.from_samples(y, 10, tail_bars=2, tail_reach=0.5)


def test_winsorized_moments_tend_to_the_raw_ones_and_ignore_far_tail_mass():
    """As alpha -> 0 the winsorised moments are the raw ones (tails included); a 1e-5 mass moved to the outer
    bar of bars reaching 10^4 spreads shifts the raw mean by about 0.1 spreads and the winsorised one by nothing
    that matters."""
    bd = BarDistribution.from_samples(torch.randn(50_000, dtype=F64, generator=torch.Generator().manual_seed(0)),
                                      200, tail_bars=16, tail_reach=1e4)
    logits = bd.project_normal(torch.tensor([0.0, 0.4], dtype=F64), torch.tensor([1.0, 0.3], dtype=F64))
    mean, var = bd.winsorized_moments(logits, 1e-12)
    torch.testing.assert_close(mean, bd.mean(logits), rtol=0, atol=1e-9)
    torch.testing.assert_close(var, bd.variance(logits), rtol=1e-9, atol=1e-9)
    p = torch.softmax(logits, -1)
    p[:, -1] += 1e-5
    far = (p / p.sum(-1, keepdim=True)).log()
    assert (bd.mean(far) - bd.mean(logits)).abs().min() > 0.05
    w_mean, w_var = bd.winsorized_moments(far, 1e-3)
    torch.testing.assert_close(w_mean, bd.winsorized_moments(logits, 1e-3)[0], rtol=0, atol=1e-3)
    assert ((w_var / bd.winsorized_moments(logits, 1e-3)[1]) - 1).abs().max() < 0.01
    with pytest.raises(ValueError, match="alpha"):
        bd.winsorized_moments(logits, 0.5)
