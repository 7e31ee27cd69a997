import pytest
import torch

from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.ensemble import DatasetTransform, SymmetryEnsemble
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.priors import RBF, GPPrior, Linear, Matern, Normal, Periodic, Scale, SpectralMixture, Symmetries
from priorfit.priors.inputs import ClusteredInputs

ALL = Symmetries(reflect_inputs=True, permute_inputs=True, negate_targets=True)
INPUTS_ONLY = Symmetries(reflect_inputs=True, permute_inputs=True)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PFNTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=48, max_features=3, n_bars=40)).eval()


def _data(d=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 9, d, generator=g), torch.randn(2, 9, generator=g), torch.rand(2, 5, d, generator=g)


def _ensemble_logits(model, ensemble, x, y, q):
    with torch.no_grad():
        return ensemble.logits(model, ensemble.encode(model, x, y), q)


def test_transfer_matrix_moves_exact_bar_masses():
    torch.manual_seed(0)
    target = BarDistribution(torch.sort(torch.randn(31, dtype=torch.float64) * 2).values)
    source_borders = torch.sort(torch.randn(21, dtype=torch.float64) * 3).values
    source = BarDistribution(source_borders)
    transfer = target.transfer_matrix(source_borders)
    assert transfer.shape == (20, 30) and (transfer >= 0).all()
    torch.testing.assert_close(transfer.sum(1), torch.ones(20, dtype=torch.float64), rtol=0, atol=1e-12)
    logits = torch.randn(4, 20, dtype=torch.float64) * 2
    moved = torch.softmax(logits, -1) @ transfer
    # the source's probability of each target bar, from its own distribution function
    inner = target.borders[1:-1]
    cdf = torch.stack([source.cdf(logits, torch.full((4,), float(t), dtype=torch.float64)) for t in inner], -1)
    cdf = torch.cat([torch.zeros(4, 1, dtype=torch.float64), cdf, torch.ones(4, 1, dtype=torch.float64)], -1)
    torch.testing.assert_close(moved, cdf[:, 1:] - cdf[:, :-1], rtol=0, atol=1e-13)


def test_reflection_is_exact_on_symmetric_borders():
    bar = BarDistribution(torch.linspace(-3, 3, 41, dtype=torch.float64))
    logits = torch.randn(3, 40, dtype=torch.float64)
    torch.testing.assert_close(bar.reflected_logits(logits), torch.log_softmax(logits.flip(-1), -1))
    y = torch.randn(3, dtype=torch.float64) * 2
    torch.testing.assert_close(bar.log_prob(bar.reflected_logits(logits), y), bar.log_prob(logits, -y))


def test_reflected_logits_are_the_distribution_of_minus_y():
    torch.manual_seed(1)
    bar = BarDistribution(torch.sort(torch.randn(201, dtype=torch.float64)).values)
    logits = torch.randn(2, 200, dtype=torch.float64)
    reflected = bar.reflected_logits(logits)
    for q in (0.1, 0.5, 0.9):  # quantiles agree to within a bar: only the shape inside each bar changed
        got = bar.icdf(reflected, q)
        want = -bar.icdf(logits, 1 - q)
        assert (got - want).abs().max() < (bar.borders[1:] - bar.borders[:-1]).max()
    torch.testing.assert_close(bar.cdf(reflected, bar.borders[100].expand(2)),
                               bar.sf(logits, -bar.borders[100].expand(2)), rtol=0, atol=1e-12)


def test_members_are_distinct_identity_first_and_capped_by_the_group():
    bar = BarDistribution(torch.linspace(-3, 3, 11))
    for d, symmetries, size in [(1, ALL, 4), (2, ALL, 16), (3, INPUTS_ONLY, 48), (2, Symmetries(), 1)]:
        members = SymmetryEnsemble.create(symmetries, bar, d, 100).transforms
        assert len(members) == size and len(set(members)) == size and members[0].is_identity
    a = SymmetryEnsemble.create(ALL, bar, 3, 5, seed=0).transforms
    assert a == SymmetryEnsemble.create(ALL, bar, 3, 5, seed=0).transforms
    assert a != SymmetryEnsemble.create(ALL, bar, 3, 5, seed=1).transforms
    with pytest.raises(ValueError, match="ensemble_size"):
        SymmetryEnsemble.create(ALL, bar, 2, 0)
    with pytest.raises(ValueError, match="identity"):
        SymmetryEnsemble((DatasetTransform((1, 0), (False, False)),), bar)


def test_one_member_is_the_plain_model(model):
    x, y, q = _data()
    bar = BarDistribution(torch.linspace(-3, 3, 41))
    with torch.no_grad():
        plain = torch.log_softmax(model(x, y, q).double(), -1)
    torch.testing.assert_close(_ensemble_logits(model, SymmetryEnsemble.create(ALL, bar, 2, 1), x, y, q), plain)


@pytest.mark.parametrize("d", [1, 2])
def test_the_whole_group_is_invariant_as_the_exact_posterior_is(model, d):
    """Averaged over the whole group, transforming the data first changes nothing (negated targets give the
    reflected distribution), while the plain model does change."""
    x, y, q = _data(d)
    bar = BarDistribution(torch.linspace(-3, 3, 41, dtype=torch.float64))  # symmetric: reflection is exact
    ensemble = SymmetryEnsemble.create(ALL, bar, d, 1000)
    base = _ensemble_logits(model, ensemble, x, y, q)
    for t in ensemble.transforms[1:]:
        moved = _ensemble_logits(model, ensemble, t.inputs(x), t.targets(y), t.inputs(q))
        torch.testing.assert_close(bar.reflected_logits(moved) if t.negate else moved, base, atol=1e-5, rtol=0)
    t = DatasetTransform(tuple(range(d)), (True,) * d)
    with torch.no_grad():
        assert not torch.allclose(model(t.inputs(x), y, t.inputs(q)), model(x, y, q), atol=1e-3)


def test_transforms_act_on_features_and_targets():
    x = torch.tensor([[[0.1, 0.2, 0.7]]])
    t = DatasetTransform((2, 0, 1), (True, False, False), negate=True)
    torch.testing.assert_close(t.inputs(x), torch.tensor([[[0.3, 0.1, 0.2]]]))
    assert torch.equal(t.targets(torch.tensor([1.0, -2.0])), torch.tensor([-1.0, 2.0]))
    with pytest.raises(ValueError, match="features"):
        t.inputs(torch.rand(1, 2, 2))


def test_declared_symmetries_hold_for_the_kernels():
    """Reflecting inputs leaves a stationary kernel's matrix unchanged, and permuting features with the same
    permutation of ARD lengthscales does too; a linear kernel is not reflection-invariant."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 7, 3, generator=g, dtype=torch.float64)
    for kernel in (RBF(), Matern(nu=1.5), Periodic(ard=True), SpectralMixture(), Scale(RBF()) * Periodic(),
                   Linear(), RBF() + Linear()):
        params = kernel.sample_params(1, 3, g)
        k = kernel.forward(params, x, x)
        reflected = kernel.forward(params, 1 - x, 1 - x)
        assert torch.allclose(reflected, k, atol=1e-10) == kernel.stationary, kernel
    prior = GPPrior()
    assert prior.symmetries == ALL
    assert GPPrior(kernel=Scale(RBF()) + Linear()).symmetries.reflect_inputs is False
    assert GPPrior(mean=Normal(1.0, 1.0)).symmetries.negate_targets is False
    assert GPPrior(mean=Normal(0.0, 1.0), inputs=ClusteredInputs()).symmetries == ALL


def test_clustered_inputs_are_reflection_symmetric_in_distribution():
    sampler = ClusteredInputs()
    x = sampler.sample(4000, 8, 1, torch.Generator().manual_seed(0)).flatten()
    for q in (0.1, 0.25, 0.5):  # quantiles of x and of 1 - x agree within Monte-Carlo error
        assert abs(float(x.quantile(q) - (1 - x).quantile(q))) < 0.02
