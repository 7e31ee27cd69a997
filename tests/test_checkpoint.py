import os

import pytest
import torch

from priorfit.checkpoint import load_checkpoint, save_checkpoint
from priorfit.exceptions import CheckpointError
from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.transformer import ModelConfig, PFNTransformer

from conftest import tiny_prior


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = PFNTransformer(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=2, n_bars=20))
    bar = BarDistribution(torch.linspace(-3, 3, 21))
    path = save_checkpoint(tmp_path / "m.safetensors", model, bar, tiny_prior(), {"step": 7})
    return path, model, bar


def test_round_trip(saved):
    path, model, bar = saved
    ckpt = load_checkpoint(path)
    x, y, q = torch.rand(1, 5, 2), torch.randn(1, 5), torch.rand(1, 3, 2)
    torch.testing.assert_close(ckpt.model(x, y, q), model.eval()(x, y, q))
    torch.testing.assert_close(ckpt.bar_distribution.borders, bar.borders)
    assert ckpt.prior == tiny_prior() and ckpt.metadata["step"] == 7
    assert ckpt.model_config == model.config


def test_corruption_is_detected(saved):
    path = saved[0]
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(garbage)


def test_failed_write_leaves_old_file_and_no_temporary(saved, monkeypatch):
    path, model, bar = saved
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, bar, tiny_prior(), {"step": 8})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path) -> None:
    import os

    from priorfit.checkpoint import atomic_write_bytes

    atomic_write_bytes(tmp_path / "atomic.bin", b"abc")
    (tmp_path / "plain.bin").write_bytes(b"abc")
    assert (tmp_path / "atomic.bin").read_bytes() == b"abc"
    assert os.stat(tmp_path / "atomic.bin").st_mode == os.stat(tmp_path / "plain.bin").st_mode
