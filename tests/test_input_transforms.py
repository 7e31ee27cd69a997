"""The input transforms fitted to a context (priorfit.preprocessing): the Yeo-Johnson PowerTransform against SciPy's
transform and its maximum-likelihood exponent, the RobustInputTransform against NumPy's median and quartiles, the
invariances of both, and models that use them in training and in the estimator alike."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats
import torch

from priorfit import PFNClassifier
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.model.categorical import masked_log_probs, relabel_by_context
from priorfit.preprocessing import POWER_GRID, ROBUST_LIMIT, PowerTransform, RobustInputTransform, yeo_johnson
from priorfit.training import TrainConfig, train
from conftest import tiny_label_prior


def _samples(seed: int = 0) -> np.ndarray:
    """Five features of 200 points: right-skewed (log-normal), left-skewed, normal, uniform, zero-inflated."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.lognormal(0.0, 0.8, 200), -rng.exponential(1.0, 200) ** 1.5, rng.normal(3.0, 2.0, 200),
                     rng.uniform(0.0, 1.0, 200), np.where(rng.uniform(size=200) < 0.4, 0.0, rng.gamma(2.0, 1.0, 200))],
                    axis=1)


@pytest.mark.parametrize("power", [-1.7, -0.3, 0.0, 0.4, 1.0, 2.0, 3.2])
def test_the_transform_is_scipys(power):
    x = np.linspace(-6.0, 9.0, 301)
    got = yeo_johnson(torch.as_tensor(x), torch.tensor(power, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, scipy.stats.yeojohnson(x, lmbda=power), rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(got) > 0)  # strictly increasing


def test_the_exponent_is_the_maximum_likelihood_one():
    """The grid-and-parabola exponent is SciPy's (Brent) maximiser of the same likelihood, on the standardised
    features, to within 0.02 where SciPy's lies inside the grid; its likelihood is never below SciPy's by 1e-3."""
    x = _samples()
    z = (x - x.mean(0)) / x.std(0)
    fitted = PowerTransform.fit(torch.as_tensor(x)[None])
    for j in range(x.shape[1]):
        best = scipy.stats.yeojohnson_normmax(z[:, j])
        ours = float(fitted.power[0, 0, j])
        assert scipy.stats.yeojohnson_llf(ours, z[:, j]) > scipy.stats.yeojohnson_llf(best, z[:, j]) - 1e-3
        if POWER_GRID[0] < best < POWER_GRID[-1]:
            assert ours == pytest.approx(best, abs=0.02), j
    assert float(fitted.power[0, 0, 0]) < 1.0 < float(fitted.power[0, 0, 1])  # right skew shrunk, left skew too


def test_units_and_reflections_do_not_matter():
    """A positive affine change of a feature's units leaves its transformed values as they were; a reflection
    reflects them (the exponent goes to 2 - lambda), at the context's points and at new ones alike."""
    x = torch.as_tensor(_samples(1))[None]
    ctx, qry = x[:, :150], x[:, 150:]
    base = PowerTransform.fit(ctx)
    scale = torch.tensor([1e-13, 1e160, -2.0, 7.0, -1e4], dtype=torch.float64)
    shift = torch.tensor([5e-13, -2e160, 1e3, 0.0, 3.0], dtype=torch.float64)  # no digits lost to the shift
    moved = PowerTransform.fit(ctx * scale + shift)
    sign = torch.sign(scale)
    for points in (ctx, qry):
        torch.testing.assert_close(moved(points * scale + shift), sign * base(points), rtol=1e-9, atol=1e-9)
    reflected = sign < 0
    torch.testing.assert_close(moved.power[..., reflected], 2.0 - base.power[..., reflected], rtol=0, atol=1e-9)


def test_the_grid_ends_are_kept_and_far_queries_stay_finite():
    """A feature skewed beyond the grid gets its end exponent (no refinement past it); a query a trillion context
    ranges away maps to a finite value, and one in float32 too."""
    rng = np.random.default_rng(2)
    x = torch.as_tensor(np.exp(np.exp(rng.normal(size=(1, 300, 1)))))  # a log-normal of a log-normal
    fitted = PowerTransform.fit(x)
    assert float(fitted.power) == float(POWER_GRID[0])
    flipped = PowerTransform.fit(-x)
    assert float(flipped.power) == float(POWER_GRID[-1])
    far = flipped(torch.tensor([[[-1e12 * float(x.max())]]], dtype=torch.float64))
    assert torch.isfinite(far).all() and torch.isfinite(far.float()).all()


def test_constant_features_and_single_points_pass_through():
    x = torch.tensor([[[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]]], dtype=torch.float64)
    fitted = PowerTransform.fit(x)
    assert float(fitted.power[0, 0, 1]) == 1.0 and float(fitted.spread[0, 0, 1]) == 1.0
    out = fitted(torch.tensor([[[3.0, 6.0]]], dtype=torch.float64))
    assert torch.isfinite(out).all() and float(out[0, 0, 1]) == 1.0
    single = PowerTransform.fit(x[:, :1])
    torch.testing.assert_close(single(x), x - x[:, :1])


def test_the_robust_transform_is_the_arcsinh_of_numpys_median_and_quartiles():
    x = _samples(3)
    x[:160, 4] = 0.0  # most points at one value: the interquartile range is 0, so the spread is the deviation
    fitted = RobustInputTransform.fit(torch.as_tensor(x)[None])
    q1, median, q3 = np.percentile(x, [25, 50, 75], axis=0)
    spread = np.where(q3 > q1, q3 - q1, x.std(0))
    assert q3[4] == q1[4] and spread[4] > 0
    queries = np.concatenate([x, [[1e6, -1e6, 0.0, 0.5, 1e300]]])
    np.testing.assert_allclose(fitted(torch.as_tensor(queries)[None])[0].numpy(),
                               np.arcsinh((queries - median) / spread), rtol=1e-9, atol=1e-9)
    z = (queries - median) / spread  # nearly linear over the bulk, logarithmic far out
    out = fitted(torch.as_tensor(queries)[None])[0].numpy()
    near, far = np.abs(z) < 0.25, np.abs(z) > 1e3
    assert near.sum() > 50 and far.sum() >= 3
    np.testing.assert_allclose(out[near], z[near], atol=0.003)
    np.testing.assert_allclose(out[far], np.sign(z[far]) * np.log(2 * np.abs(z[far])), rtol=1e-6)


def test_the_robust_transform_stays_finite_where_a_tiny_spread_meets_a_far_query():
    """A context of points 1e-10 apart and one at 1: its spread is ~5e-11, so a query at 1e299 is 2e309 spreads
    away, past float64; it maps to arcsinh(ROBUST_LIMIT) (about 691), not to infinity."""
    ctx = torch.cat([torch.linspace(0.0, 1e-10, 100, dtype=torch.float64), torch.ones(1, dtype=torch.float64)])
    fitted = RobustInputTransform.fit(ctx.view(1, -1, 1))
    out = fitted(torch.tensor([[[1e299], [-1e299]]], dtype=torch.float64))
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, -1.0], dtype=torch.float64) * np.arcsinh(ROBUST_LIMIT))
    with pytest.raises(ValueError, match="at least one point"):
        RobustInputTransform.fit(torch.zeros(1, 0, 2))
    with pytest.raises(ValueError, match="at least one point"):
        PowerTransform.fit(torch.zeros(1, 0, 2))


def test_the_robust_transform_ignores_units_and_commutes_with_reflections():
    x = torch.as_tensor(_samples(4))[None]
    ctx, qry = x[:, :151], x[:, 151:]  # an odd context: the median is a point
    base = RobustInputTransform.fit(ctx)
    scale = torch.tensor([1e-13, 1e160, -2.0, 7.0, -1e4], dtype=torch.float64)
    shift = torch.tensor([5e-13, -2e160, 1e3, 0.0, 3.0], dtype=torch.float64)
    moved = RobustInputTransform.fit(ctx * scale + shift)
    for points in (ctx, qry):
        torch.testing.assert_close(moved(points * scale + shift), torch.sign(scale) * base(points), rtol=1e-9,
                                   atol=1e-9)
    even = RobustInputTransform.fit(ctx[:, :150])  # an even one: quartiles interpolated, symmetrically
    torch.testing.assert_close(RobustInputTransform.fit(-ctx[:, :150])(-qry), -even(qry), rtol=1e-9, atol=1e-9)


def test_the_robust_transform_passes_constant_features_and_single_points():
    x = torch.tensor([[[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]]], dtype=torch.float64)
    fitted = RobustInputTransform.fit(x)
    assert float(fitted.spread[0, 0, 1]) == 1.0 and float(fitted.center[0, 0, 1]) == 5.0
    single = RobustInputTransform.fit(x[:, :1])
    torch.testing.assert_close(single(x), torch.asinh(x - x[:, :1]))
    far = fitted(torch.tensor([[[-1e300, 1e300]]], dtype=torch.float64))
    assert torch.isfinite(far).all() and torch.isfinite(far.float()).all()


def test_model_config_needs_an_invariant_model_and_one_transform():
    for name in ("power_transform", "robust_inputs"):
        with pytest.raises(ValueError, match=name):
            ModelConfig(**{name: True})
        with pytest.raises(ValueError, match=f"{name} must be a bool"):
            ModelConfig(invariant=True, **{name: 1})
    with pytest.raises(ValueError, match="set one"):
        ModelConfig(invariant=True, power_transform=True, robust_inputs=True)


@pytest.fixture(scope="module", params=["power_transform", "robust_inputs"])
def transform_checkpoint(request, tiny_classifier_checkpoint, tmp_path_factory):
    """The tiny classifier warm-started with an input transform (each in turn), trained 30 steps more."""
    out = tmp_path_factory.mktemp(request.param)
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=2, n_classes=4, invariant=True,
                        **{request.param: True})
    config = TrainConfig(steps=30, batch_size=32, n_points=40, min_context=2, max_context=32, lr=1e-3,
                         eval_every=30, eval_datasets=16, eval_context=(16,), checkpoint_every=30)
    return train(tiny_label_prior(), model, config, out, resume=False, progress=False,
                 init_from=str(tiny_classifier_checkpoint)).checkpoint


def test_training_and_the_estimator_transform_alike(transform_checkpoint):
    """Train what you serve: the estimator's probabilities, on skewed features in other units, are the network's
    on the raw prior data as training calls it, and the transform changed them (it is not a no-op)."""
    from priorfit.models import load_model

    checkpoint = load_model(str(transform_checkpoint))
    assert checkpoint.model_config.power_transform or checkpoint.model_config.robust_inputs
    batch = tiny_label_prior().sample(12, 40, torch.Generator().manual_seed(4), n_classes=3, n_context=24)
    x = batch.x.exp()  # skewed features: far from what either transform leaves as it is
    labels, k, _ = relabel_by_context(batch.y, 24)
    with torch.no_grad():
        network = masked_log_probs(checkpoint.model(x[:, :24].float(), labels[:, :24], x[:, 24:].float()), k).exp()
        plain = PFNTransformer(dataclasses.replace(checkpoint.model_config, power_transform=False,
                                                   robust_inputs=False))
        plain.load_state_dict(checkpoint.model.state_dict())
        untransformed = masked_log_probs(plain(x[:, :24].float(), labels[:, :24], x[:, 24:].float()), k).exp()
    assert float((network - untransformed).abs().max()) > 1e-3
    checked = 0
    for i in range(12):
        if k[i] < 2:
            continue
        X = x[i].numpy() * np.array([1e3, 0.01]) + np.array([-50.0, 7.0])
        clf = PFNClassifier(model=str(transform_checkpoint)).fit(X[:24], batch.y[i, :24].numpy())
        np.testing.assert_allclose(clf.predict_proba(X[24:]), network[i, :, :int(k[i])].numpy(), atol=2e-5)
        checked += 1
    assert checked >= 6


def test_a_cache_pickled_before_the_rename_keeps_its_transform():
    """A fitted estimator pickled when ContextCache's field was ``input_power`` unpickles with its transform."""
    import pickle

    from priorfit.model.transformer import ContextCache

    transform = PowerTransform.fit(torch.as_tensor(_samples())[None])
    cache = ContextCache((torch.zeros(1),), (torch.zeros(1),), torch.zeros(1, 1), torch.ones(1, 1),
                         input_transform=transform)
    old_state = dict(vars(cache))
    old_state["input_power"] = old_state.pop("input_transform")
    old = ContextCache.__new__(ContextCache)
    old.__setstate__(old_state)
    assert old.input_transform is transform and "input_power" not in vars(old)
    assert pickle.loads(pickle.dumps(cache)).input_transform.power.equal(transform.power)
