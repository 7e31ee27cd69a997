"""benchmarks/weight_soup.py: the soup's weights are the members' mean, its metadata names every member, the file is
an ordinary checkpoint a user can fit with, and members that cannot be averaged are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import weight_soup  # noqa: E402

from priorfit import PFNClassifier  # noqa: E402
from priorfit.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from priorfit.model.transformer import ModelConfig, PFNTransformer  # noqa: E402

from conftest import tiny_label_prior  # noqa: E402


def member(folder: Path, seed: int, d_model: int = 16, principal_axes_rate: float = 0.0) -> Path:
    """A randomly initialised classifier checkpoint in FOLDER/model.safetensors."""
    torch.manual_seed(seed)
    model = PFNTransformer(ModelConfig(d_model=d_model, n_layers=1, n_heads=2, d_ff=16, max_features=2, n_classes=4,
                                       invariant=True))
    folder.mkdir()
    train_config = {"seed": seed, "n_points": 40, "max_context": 32, "principal_axes_rate": principal_axes_rate}
    return save_checkpoint(folder / "model.safetensors", model, None, tiny_label_prior(),
                           {"train_config": train_config, "step": 10 * seed})


def test_the_soup_is_the_members_mean_and_names_them(tmp_path):
    paths = [member(tmp_path / f"m{seed}", seed) for seed in (1, 2, 3)]
    written = weight_soup.soup([str(p.parent) for p in paths], str(tmp_path / "soup"))
    soup = load_checkpoint(written)
    members = [load_checkpoint(p) for p in paths]
    for name, value in soup.model.state_dict().items():
        expected = sum(m.model.state_dict()[name].double() for m in members) / 3
        torch.testing.assert_close(value.double(), expected, rtol=0, atol=1e-6)
    listed = soup.metadata["soup"]["members"]
    assert [entry["weights_sha256"] for entry in listed] == [m.weights_sha256() for m in members]
    assert [entry["seed"] for entry in listed] == [1, 2, 3] and [entry["steps"] for entry in listed] == [10, 20, 30]
    assert "step" not in soup.metadata  # the first member's step is not the soup's
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 2)), np.array(["a", "b", "c"] * 4)
    proba = PFNClassifier(model=str(tmp_path / "soup"), ensemble_size=1).fit(X, y).predict_proba(X[:3])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_members_that_cannot_be_averaged_are_refused(tmp_path):
    a, b = member(tmp_path / "a", 1), member(tmp_path / "b", 2, d_model=32)
    with pytest.raises(ValueError, match="another network configuration"):
        weight_soup.soup([str(a), str(b)], str(tmp_path / "soup"))
    with pytest.raises(ValueError, match="at least two"):
        weight_soup.soup([str(a)], str(tmp_path / "soup"))
    with pytest.raises(ValueError, match="named twice"):
        weight_soup.soup([str(a), str(a.parent)], str(tmp_path / "soup"))
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes(a.read_bytes())
    with pytest.raises(ValueError, match="same weights"):
        weight_soup.soup([str(a), str(copy)], str(tmp_path / "soup"))
    viewed = member(tmp_path / "viewed", 4, principal_axes_rate=0.5)
    with pytest.raises(ValueError, match="principal-axes view"):
        weight_soup.soup([str(a), str(viewed)], str(tmp_path / "soup"))
    c = member(tmp_path / "c", 3)
    with pytest.raises(ValueError, match="overwrite"):
        weight_soup.soup([str(a), str(c)], str(tmp_path / "c"))
    assert not (tmp_path / "soup").exists()


def test_the_command_line_reports_a_refusal_without_a_traceback(tmp_path, capsys):
    a = member(tmp_path / "a", 1)
    assert weight_soup.main([str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "soup")]) == 2
    assert "weight_soup.py: error:" in capsys.readouterr().err


def test_regressors_with_other_bar_borders_are_refused(tmp_path):
    from priorfit.model.bar_distribution import BarDistribution

    from conftest import tiny_prior

    paths = []
    for seed, top in ((1, 3.0), (2, 4.0)):
        torch.manual_seed(seed)
        model = PFNTransformer(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=2, n_bars=10))
        (tmp_path / str(seed)).mkdir()
        paths.append(save_checkpoint(tmp_path / str(seed) / "model.safetensors", model,
                                     BarDistribution(torch.linspace(-top, top, 11)), tiny_prior()))
    with pytest.raises(ValueError, match="bar borders"):
        weight_soup.soup([str(p) for p in paths], str(tmp_path / "soup"))
