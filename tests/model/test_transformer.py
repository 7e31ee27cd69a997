import dataclasses

import pytest
import torch

from priorfit.model.transformer import MIN_TARGET_SCALE, ModelConfig, PFNTransformer

CONFIG = ModelConfig(d_model=32, n_layers=3, n_heads=4, d_ff=48, max_features=3, n_bars=50)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return PFNTransformer(CONFIG).eval()


def _data(b=2, n=7, m=5, d=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, d, generator=g), torch.randn(b, n, generator=g), torch.rand(b, m, d, generator=g)


def test_output_shape(model):
    x, y, q = _data()
    assert model(x, y, q).shape == (2, 5, CONFIG.n_bars)


def test_queries_are_independent_of_each_other(model):
    x, y, q = _data(m=6)
    together = model(x, y, q)
    for j in range(q.shape[1]):
        alone = model(x, y, q[:, j:j + 1])
        torch.testing.assert_close(alone[:, 0], together[:, j], atol=1e-5, rtol=1e-5)


def test_context_order_does_not_matter(model):
    x, y, q = _data()
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model(x, y, q), model(x[:, perm], y[:, perm], q), atol=1e-5, rtol=1e-5)


def test_cache_reuse_equals_forward(model):
    x, y, q = _data(m=9)
    cache = model.encode_context(x, y)
    assert cache.n_context == 7 and len(cache.keys) == CONFIG.n_layers
    torch.testing.assert_close(
        torch.cat([model.predict_logits(cache, q[:, :4]), model.predict_logits(cache, q[:, 4:])], 1), model(x, y, q)
    )


def test_context_changes_predictions(model):
    x, y, q = _data()
    assert not torch.allclose(model(x, y, q), model(x, y + 1.0, q))


def test_fewer_features_are_zero_padded(model):
    x, y, q = _data(d=2)
    pad = lambda t: torch.nn.functional.pad(t, (0, 1))  # noqa: E731
    torch.testing.assert_close(model(x, y, q), model(pad(x), y, pad(q)))


@pytest.mark.parametrize("standardize", [False, True])
def test_every_parameter_gets_a_gradient(standardize):
    torch.manual_seed(0)
    model = PFNTransformer(dataclasses.replace(CONFIG, standardize_targets=standardize))
    x, y, q = _data()
    model(x, y, q).logsumexp(-1).sum().backward()
    # the last layer's context tokens are used as keys/values only; every weight still learns
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_bad_shapes_raise(model):
    x, y, q = _data()
    with pytest.raises(ValueError, match="at most 3"):
        model(torch.rand(2, 7, 4), y, torch.rand(2, 5, 4))
    with pytest.raises(ValueError, match="x_ctx"):
        model(x, y[:, :3], q)
    with pytest.raises(ValueError, match="batch size"):
        model(x, y, q[:1])


@pytest.mark.parametrize("field,value", [("d_model", 0), ("n_heads", 3), ("n_bars", 2), ("max_features", -1)])
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field if field != "n_heads" else "n_heads"):
        ModelConfig(**{field: value})


def test_default_model_predicts_raw_targets(model):
    x, y, _ = _data()
    cache = model.encode_context(x, y)
    assert torch.equal(cache.target_loc, torch.zeros(2, 1)) and torch.equal(cache.target_scale, torch.ones(2, 1))
    assert cache.conditioning is None and model.stats_encoder is None


def test_standardized_targets_reach_the_model_only_through_their_statistics():
    torch.manual_seed(0)
    model = PFNTransformer(dataclasses.replace(CONFIG, standardize_targets=True)).eval()
    x, y, q = _data()
    cache = model.encode_context(x, y)
    torch.testing.assert_close(cache.target_loc, y.mean(-1, keepdim=True))
    torch.testing.assert_close(cache.target_scale, y.std(-1, unbiased=False, keepdim=True))
    a, b = 3.0, -2.0
    moved = model.encode_context(x, a * y + b)
    torch.testing.assert_close(moved.target_loc, a * cache.target_loc + b)
    torch.testing.assert_close(moved.target_scale, a * cache.target_scale)
    # the statistics enter through their embedding; an affine map of y changes the logits only through it
    assert not torch.allclose(model(x, a * y + b, q), model(x, y, q), atol=1e-3)
    with torch.no_grad():
        model.stats_encoder.weight.zero_()
    torch.testing.assert_close(model(x, a * y + b, q), model(x, y, q), atol=1e-5, rtol=1e-5)


def test_a_constant_context_is_divided_by_the_smallest_scale():
    model = PFNTransformer(dataclasses.replace(CONFIG, standardize_targets=True)).eval()
    x, _, q = _data()
    cache = model.encode_context(x, torch.full((2, 7), 4.0))
    assert torch.equal(cache.target_scale, torch.full((2, 1), MIN_TARGET_SCALE))
    assert torch.isfinite(model.predict_logits(cache, q)).all()
