"""Inference precision: the argument checks, and bfloat16 runs only the forward passes in bfloat16."""

from __future__ import annotations

import contextlib

import pytest
import torch

from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.ensemble import SymmetryEnsemble, encode, predict
from priorfit.model.precision import PRECISIONS, check_precision, inference_precision, native_bfloat16
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.priors.base import Symmetries


@pytest.mark.parametrize("bad", ["bf16", "float16", None, 32])
def test_a_bad_precision_is_named(bad):
    with pytest.raises(ValueError, match="precision must be one of 'float32', 'bfloat16'"):
        check_precision("precision", bad)
    with pytest.raises(ValueError, match="precision"):
        inference_precision(bad)


def test_float32_changes_nothing_and_bfloat16_autocasts():
    assert PRECISIONS == ("float32", "bfloat16") and isinstance(native_bfloat16(), bool)
    assert isinstance(inference_precision("float32"), contextlib.nullcontext)
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with inference_precision("bfloat16"):
        assert (a @ b).dtype == torch.bfloat16
    with inference_precision("float32"):
        assert (a @ b).dtype == torch.float32


def test_bfloat16_logits_come_back_as_float32_and_the_ensemble_mixes_in_float64():
    torch.manual_seed(0)
    model = PFNTransformer(ModelConfig(d_model=32, n_heads=2, d_ff=64, n_layers=2, n_bars=20, max_features=2))
    bar = BarDistribution(torch.linspace(-3, 3, 21, dtype=torch.float64))
    x, y, xq = torch.rand(2, 10, 2), torch.randn(2, 10), torch.rand(2, 5, 2)
    ensemble = SymmetryEnsemble.create(Symmetries(reflect_inputs=True, negate_targets=True), bar, 2, 4)
    with torch.inference_mode():
        for members in (None, ensemble):
            ref = predict(model, encode(model, x, y, members), xq, members)
            fast = predict(model, encode(model, x, y, members, "bfloat16"), xq, members, "bfloat16")
            assert fast.dtype == ref.dtype == (torch.float32 if members is None else torch.float64)
            assert not torch.equal(fast, ref)
            kl = (ref.log_softmax(-1).exp() * (ref.log_softmax(-1) - fast.log_softmax(-1))).sum(-1)
            assert float(kl.max()) < 1e-2
