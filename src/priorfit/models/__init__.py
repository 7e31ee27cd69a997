"""The pretrained checkpoints that ship inside the package, and loading a checkpoint by name or path.

Kept apart from the estimators so that training (warm starts) and the command line load a model without the
scikit-learn stack.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from priorfit.checkpoint import Checkpoint, load_checkpoint
from priorfit.exceptions import CheckpointError

__all__ = ["MODELS_DIR", "DEFAULT_MODEL", "shipped_models", "resolve_model_path", "load_model"]

MODELS_DIR = Path(__file__).parent
DEFAULT_MODEL = "invariant_default"


def shipped_models() -> list[str]:
    """Names of the pretrained checkpoints that ship inside the package."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.safetensors"))


def resolve_model_path(model: str | Path | None) -> Path:
    """A checkpoint path from a shipped model's name, a path, a training run's folder (its ``model.safetensors``,
    what ``priorfit train --out DIR`` writes), or None (the default shipped model)."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.is_dir():
        return path / "model.safetensors"
    if path.suffix != ".safetensors" and not path.exists():
        shipped = MODELS_DIR / f"{model}.safetensors"
        if shipped.exists():
            return shipped
    return path


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Checkpoint:
    return load_checkpoint(path)


def load_model(model: str | Path | Checkpoint | None) -> Checkpoint:
    """Load (and cache) a checkpoint given as a shipped model's name, a path, a Checkpoint or None."""
    if isinstance(model, Checkpoint):
        return model
    path = resolve_model_path(model)
    if Path(str(model)).is_dir() and not path.is_file():
        raise CheckpointError(f"model={str(model)!r} is a folder without a model.safetensors (a training run's "
                              "folder holds one from its first checkpoint on)")
    if not path.is_file():
        raise CheckpointError(
            f"model={str(model)!r}: no such checkpoint file or shipped model (shipped: {shipped_models()})"
        )
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)
