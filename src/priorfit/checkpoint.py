"""Checkpoints: one safetensors file holding the weights, the bar borders and JSON metadata.

The metadata (format, model config, prior, training config, step, fidelity report, ...) lives in the
safetensors header under the key ``"priorfit"``; a sha256 over that JSON text and every tensor's bytes is stored
under ``"sha256"`` and verified by :func:`load_checkpoint`. Files are written atomically (temporary file in the
same folder, fsync, rename), so a kill never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from priorfit.atomic import atomic_write_bytes
from priorfit.config import from_dict, to_dict
from priorfit.exceptions import CheckpointError
from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.transformer import ModelConfig, PFNTransformer

FORMAT = "priorfit-checkpoint-v1"
_MODEL_PREFIX = "model."
_BORDERS_KEY = "bar_distribution.borders"


@dataclass
class Checkpoint:
    """A loaded PFN: the network, its output distribution, the prior it was trained on and its metadata."""

    model: PFNTransformer
    bar_distribution: BarDistribution | None  # None for a classifier (ModelConfig.n_classes)
    prior: Any
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def max_context(self) -> int | None:
        """The most context points the model was trained on (None when the metadata does not say)."""
        training = self.metadata.get("train_config")
        if not training:
            return None
        return training.get("max_context") or training["n_points"] - 1

    def weights_sha256(self) -> str:
        """A sha256 of the network's weights alone: equal for two checkpoints of the same weights whatever their
        metadata (a benchmark's results file names the weights it measured; shipping checks them)."""
        return _digest("", self.model.state_dict())


def _digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: PFNTransformer,
    bar_distribution: BarDistribution | None,
    prior: Any,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a PFN atomically. `metadata` must be JSON-serialisable; configs are added automatically. A classifier
    has no bar distribution (None)."""
    meta = dict(metadata or {})
    meta.update(format=FORMAT, model_config=to_dict(model.config), prior=to_dict(prior))
    meta_json = json.dumps(meta, sort_keys=True)
    tensors = {_MODEL_PREFIX + k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if (bar_distribution is None) != bool(model.config.n_classes):
        raise ValueError("a regression PFN's checkpoint needs its bar distribution; a classifier's has none")
    if bar_distribution is not None:
        tensors[_BORDERS_KEY] = bar_distribution.borders.detach().contiguous().cpu()
    header = {"priorfit": meta_json, "sha256": _digest(meta_json, tensors)}
    atomic_write_bytes(path, safetensors_save(tensors, metadata=header))
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and verify a checkpoint written by :func:`save_checkpoint`.

    Raises CheckpointError if the file is missing, not a priorfit checkpoint, or its sha256 does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a readable safetensors file: {exc}") from None
    meta_json, stored = header.get("priorfit"), header.get("sha256")
    if meta_json is None or stored is None:
        raise CheckpointError(f"checkpoint {str(path)!r} has no priorfit metadata")
    actual = _digest(meta_json, tensors)
    if actual != stored:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: sha256 {actual[:12]}… does not match the stored {stored[:12]}…"
        )
    meta = json.loads(meta_json)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    config = from_dict(meta["model_config"], expected=ModelConfig, where="model_config")
    prior = from_dict(meta["prior"], where="prior")
    model = PFNTransformer(config)
    state = {k[len(_MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)}
    model.load_state_dict(state)
    model.eval()
    bar = BarDistribution(tensors[_BORDERS_KEY]) if _BORDERS_KEY in tensors else None
    return Checkpoint(model=model, bar_distribution=bar, prior=prior, metadata=meta)
