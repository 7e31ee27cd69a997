"""GP prior: reproducible sampling, Monte-Carlo moments, validation, configs; input samplers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from priorfit.config import from_dict, to_dict
from priorfit.priors import (
    RBF,
    Batch,
    ClusteredInputs,
    MixedInputs,
    Fixed,
    GPParams,
    GPPrior,
    InputSampler,
    Linear,
    LogNormal,
    Matern,
    Normal,
    Periodic,
    Prior,
    Scale,
    UniformInputs,
    cholesky_with_jitter,
)

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_prior(max_features: int = 3) -> GPPrior:
    return GPPrior(
        kernel=Scale(Matern(nu=1.5)) + Periodic(),
        noise_std=LogNormal(-2.0, 0.5),
        mean=Normal(0.0, 1.0),
        inputs=ClusteredInputs(),
        max_features=max_features,
    )


@dataclass(frozen=True)
class FixedInputs(InputSampler):
    """Test helper: the same points in every dataset."""

    points: torch.Tensor

    def sample(self, batch_size, n_points, n_features, generator):
        assert self.points.shape == (n_points, n_features)
        return self.points.expand(batch_size, n_points, n_features).clone()


def test_sample_shapes_dtypes_and_params() -> None:
    prior = random_prior()
    batch = prior.sample(6, 9, gen(0), n_features=2)
    assert isinstance(batch, Batch) and isinstance(prior, Prior)
    assert batch.x.shape == (6, 9, 2) and batch.y.shape == (6, 9)
    assert batch.x.dtype == batch.y.dtype == F64
    assert isinstance(batch.params, GPParams) and batch.params.batch_size == 6
    shapes = prior.param_shapes(2)
    flat = batch.params.flat()
    assert set(flat) == set(shapes) and {"noise_std", "mean"} <= set(flat)
    assert set(prior.hyperpriors()) == set(shapes)
    assert set(batch.params.kernel.flat()) == set(prior.kernel.param_shapes(2))
    for name, shape in shapes.items():
        assert flat[name].shape == (6, *shape) and flat[name].dtype == F64
    rebuilt = prior.params_from(flat)  # params_from is flat()'s inverse
    assert isinstance(rebuilt, GPParams) and type(rebuilt.kernel) is type(batch.params.kernel)
    assert list(rebuilt.flat()) == list(flat) and all(torch.equal(rebuilt.flat()[n], flat[n]) for n in flat)
    assert ((batch.x >= 0) & (batch.x <= 1)).all()
    assert prior.sample(2, 3, gen(0)).n_features == 3  # default: max_features


def test_same_seed_same_batch_different_seed_different() -> None:
    prior = random_prior()
    a, b, c = (prior.sample(4, 8, gen(s)) for s in (1, 1, 2))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    pa, pb = a.params.flat(), b.params.flat()
    assert list(pa) == list(pb) and all(torch.equal(pa[n], pb[n]) for n in pa)
    assert not torch.equal(a.y, c.y) and not torch.equal(a.x, c.x)


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_device_changes_where_not_what(device: str) -> None:
    """The random draws come from the CPU generator, so any device gives the same datasets up to rounding."""
    prior = random_prior()
    reference = prior.sample(5, 12, gen(3), n_features=2)
    batch = prior.sample(5, 12, gen(3), n_features=2, device=device)
    assert batch.x.device.type == batch.y.device.type == device
    assert isinstance(batch.params, GPParams)
    assert all(value.device.type == device for value in batch.params.flat().values())
    torch.testing.assert_close(batch.x.cpu(), reference.x, rtol=0, atol=0)
    torch.testing.assert_close(batch.y.cpu(), reference.y, rtol=1e-10, atol=1e-10)
    if device == "cpu":
        assert torch.equal(batch.y, reference.y)


def test_monte_carlo_moments_match_covariance() -> None:
    """With fixed hyperparameters and fixed x: y ~ N(m, K + (noise^2 + jitter) I)."""
    x = torch.tensor([[0.1, 0.2], [0.15, 0.25], [0.5, 0.9], [0.8, 0.3], [0.95, 0.95]], dtype=F64)
    prior = GPPrior(
        kernel=Scale(Matern(nu=2.5, lengthscale=Fixed(0.4)), outputscale=Fixed(1.7)) + Linear(variance=Fixed(0.3)),
        noise_std=Fixed(0.3),
        mean=Fixed(0.7),
        inputs=FixedInputs(x),
        max_features=2,
        jitter=1e-4,
    )
    n_mc = 40_000
    batch = prior.sample(n_mc, 5, gen(3))
    params = batch.params.map(lambda t: t[:1])
    cov = prior.covariance(params, x[None], x[None])[0] + (0.3**2 + 1e-4) * torch.eye(5, dtype=F64)
    y = batch.y
    mean_hat = y.mean(0)
    cov_hat = torch.cov(y.T)
    mean_se = (torch.diagonal(cov) / n_mc).sqrt()
    assert ((mean_hat - 0.7).abs() < 5 * mean_se).all()
    # Var of a sample covariance entry (Gaussian): (S_ii S_jj + S_ij^2) / N
    cov_se = ((torch.diagonal(cov)[:, None] * torch.diagonal(cov)[None, :] + cov.square()) / n_mc).sqrt()
    assert ((cov_hat - cov).abs() < 5 * cov_se).all(), (cov_hat - cov) / cov_se


def test_hyperparameters_follow_hyperpriors() -> None:
    prior = GPPrior(kernel=Scale(RBF(lengthscale=LogNormal(-1.0, 0.5))), noise_std=LogNormal(-2.0, 0.25))
    batch = prior.sample(4000, 2, gen(4))
    log_ls = batch.params.flat()["lengthscale"].log()
    assert abs(log_ls.mean().item() + 1.0) < 5 * 0.5 / 4000**0.5
    assert abs(log_ls.std().item() - 0.5) < 0.05
    assert torch.equal(batch.params.mean, torch.zeros(4000, dtype=F64))


def test_log_prior_sums_kernel_and_gp_terms() -> None:
    prior = random_prior()
    params = prior.sample_params(5, 2, gen(5))
    expected = (
        prior.kernel.log_prior(params.kernel)
        + LogNormal(-2.0, 0.5).log_prob(params.noise_std)
        + Normal(0.0, 1.0).log_prob(params.mean)
    )
    torch.testing.assert_close(prior.log_prior(params), expected)
    assert prior.log_prior(params).shape == (5,)
    fixed = GPPrior.fixed_rbf()
    assert torch.equal(fixed.log_prior(fixed.sample_params(3, 1, gen())), torch.zeros(3, dtype=F64))


def test_fixed_rbf() -> None:
    prior = GPPrior.fixed_rbf(lengthscale=0.3, outputscale=2.0, noise_std=0.05)
    batch = prior.sample(3, 7, gen(6))
    assert batch.x.shape == (3, 7, 1)
    flat = batch.params.flat()
    assert list(flat) == ["outputscale", "lengthscale", "noise_std", "mean"]
    assert torch.equal(flat["lengthscale"], torch.full((3, 1), 0.3, dtype=F64))
    assert torch.equal(flat["outputscale"], torch.full((3,), 2.0, dtype=F64))
    assert torch.equal(flat["noise_std"], torch.full((3,), 0.05, dtype=F64))
    assert torch.equal(flat["mean"], torch.zeros(3, dtype=F64))
    assert prior.max_features == 1 and prior.inputs == UniformInputs()


@pytest.mark.parametrize("prior", [random_prior(), GPPrior.fixed_rbf(), GPPrior()])
def test_config_round_trip(prior: GPPrior) -> None:
    assert from_dict(to_dict(prior)) == prior


@pytest.mark.parametrize("n_features", [0, 4, -1, 2.0, True])
def test_n_features_out_of_range(n_features) -> None:
    with pytest.raises(ValueError, match="n_features"):
        random_prior(max_features=3).sample(2, 4, gen(), n_features=n_features)


def test_bad_fields_and_arguments() -> None:
    with pytest.raises(ValueError, match="jitter"):
        GPPrior(jitter=-1e-6)
    with pytest.raises(ValueError, match="jitter"):
        GPPrior(jitter=float("nan"))
    with pytest.raises(TypeError, match="kernel"):
        GPPrior(kernel="rbf")
    with pytest.raises(TypeError, match="noise_std"):
        GPPrior(noise_std=0.1)
    with pytest.raises(TypeError, match="mean"):
        GPPrior(mean=0.0)
    with pytest.raises(TypeError, match="inputs"):
        GPPrior(inputs="uniform")
    with pytest.raises(ValueError, match="max_features"):
        GPPrior(max_features=0)
    prior = GPPrior()
    with pytest.raises(ValueError, match="batch_size"):
        prior.sample(0, 4, gen())
    with pytest.raises(ValueError, match="n_points"):
        prior.sample(2, 0, gen())
    with pytest.raises(TypeError, match="generator"):
        prior.sample(2, 4, 0)
    # the kernel's tree alone (no noise_std, mean) or a flat dict is not a GPParams
    with pytest.raises(TypeError, match="params must be GPParams"):
        prior.log_prior(prior.kernel.sample_params(2, 1, gen()))
    with pytest.raises(TypeError, match="params must be GPParams"):
        prior.log_prior(prior.sample_params(2, 1, gen()).flat())


def test_cholesky_with_jitter_retries_only_failed_datasets() -> None:
    v = torch.tensor([[1.0], [1.0], [1.0]], dtype=F64)
    singular = v @ v.T  # rank 1, not positive definite
    good = torch.eye(3, dtype=F64) * 2.0
    chol = cholesky_with_jitter(torch.stack([good, singular]), 0.0)
    torch.testing.assert_close(chol[0], torch.linalg.cholesky(good))  # untouched
    rebuilt = chol[1] @ chol[1].T
    assert (rebuilt - singular).abs().max() < 1e-6
    with pytest.raises(torch.linalg.LinAlgError, match="not positive definite"):
        cholesky_with_jitter(-good[None], 0.0, max_tries=2)
    with pytest.raises(ValueError, match="jitter"):
        cholesky_with_jitter(good[None], -1.0)


# ---- input samplers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler", [UniformInputs(), ClusteredInputs(), ClusteredInputs(max_clusters=1, max_width=2.0), MixedInputs()]
)
def test_input_samplers_in_unit_cube_and_reproducible(sampler: InputSampler) -> None:
    x = sampler.sample(5, 50, 3, gen(7))
    assert x.shape == (5, 50, 3) and x.dtype == F64
    assert ((x >= 0) & (x <= 1)).all()
    assert torch.equal(x, sampler.sample(5, 50, 3, gen(7)))
    assert not torch.equal(x, sampler.sample(5, 50, 3, gen(8)))
    assert from_dict(to_dict(sampler)) == sampler


def test_uniform_inputs_moments() -> None:
    x = UniformInputs().sample(100, 100, 2, gen(9))
    assert abs(x.mean().item() - 0.5) < 5 * (1 / 12 / x.numel()) ** 0.5
    assert abs(x.var().item() - 1 / 12) < 0.002


def test_clustered_inputs_are_clustered() -> None:
    """Within-dataset spread is far below the uniform's 1/12 when clusters are narrow and single."""
    x = ClusteredInputs(max_clusters=1, min_width=0.01, max_width=0.05).sample(200, 40, 2, gen(10))
    assert x.var(1).mean().item() < 0.01
    # across datasets the centres still cover the cube
    assert abs(x.mean().item() - 0.5) < 0.05


def test_mixed_inputs_lie_between_uniform_and_clustered() -> None:
    """All-uniform at min_uniform = 1; with narrow single clusters and min_uniform = 0 the within-dataset spread
    lies between the clustered sampler's and the uniform's 1/12."""
    narrow = ClusteredInputs(max_clusters=1, min_width=0.01, max_width=0.05)
    assert abs(MixedInputs(narrow, 1.0).sample(400, 40, 2, gen(3)).var(1).mean().item() - 1 / 12) < 0.002
    spread = MixedInputs(narrow, 0.0).sample(400, 40, 2, gen(11)).var(1).mean().item()
    assert narrow.sample(400, 40, 2, gen(12)).var(1).mean().item() < spread < 1 / 12
    with pytest.raises(ValueError, match="min_uniform"):
        MixedInputs(min_uniform=1.5)


def test_clustered_inputs_bad_fields() -> None:
    with pytest.raises(ValueError, match="max_clusters"):
        ClusteredInputs(max_clusters=0)
    with pytest.raises(ValueError, match="min_width"):
        ClusteredInputs(min_width=-0.1)
    with pytest.raises(ValueError, match="max_width"):
        ClusteredInputs(min_width=0.3, max_width=0.2)
    with pytest.raises(ValueError, match="n_points"):
        UniformInputs().sample(2, -1, 1, gen())
