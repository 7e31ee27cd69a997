"""JSON (de)serialisation of the typed frozen dataclasses used as configurations.

Every configuration object in priorfit (priors, kernels, hyperpriors, model and training configs) is a frozen
dataclass registered with :func:`register`. :func:`to_dict` turns it into plain JSON data tagged with its type
name; :func:`from_dict` rebuilds it and raises :class:`~priorfit.exceptions.ConfigError` naming any unknown
or missing field, so a checkpoint is self-describing and a typo in a config file never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from priorfit.exceptions import ConfigError

_REGISTRY: dict[str, type] = {}
T = TypeVar("T")
TYPE_KEY = "type"


def register(cls: type[T]) -> type[T]:
    """Class decorator: make a frozen dataclass (de)serialisable under its class name."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"register expects a dataclass, got {cls!r}")
    name = cls.__name__
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"two configuration classes are both named {name!r}")
    _REGISTRY[name] = cls
    return cls


def to_dict(obj: Any) -> Any:
    """Plain JSON-compatible data for a registered dataclass (recursively), tagged with its type."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if _REGISTRY.get(name) is not type(obj):
            raise ConfigError(f"{name} is not a registered configuration class")
        out: dict[str, Any] = {TYPE_KEY: name}
        for f in dataclasses.fields(obj):
            out[f.name] = to_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"cannot serialise a value of type {type(obj).__name__}: {obj!r}")


def from_dict(data: Any, expected: type | None = None, where: str = "config") -> Any:
    """Rebuild what :func:`to_dict` produced. Lists become tuples (configs are immutable).

    Raises ConfigError naming the path (``where``) of an unknown type, unknown field or missing field.
    """
    if isinstance(data, dict) and TYPE_KEY in data:
        name = data[TYPE_KEY]
        cls = _REGISTRY.get(name)
        if cls is None:
            raise ConfigError(f"{where}: unknown configuration type {name!r}; known: {sorted(_REGISTRY)}")
        if expected is not None and not issubclass(cls, expected):
            raise ConfigError(f"{where}: expected a {expected.__name__}, got a {name}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - set(fields) - {TYPE_KEY})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown} for {name}; expected some of {sorted(fields)}")
        kwargs = {k: from_dict(v, where=f"{where}.{k}") for k, v in data.items() if k != TYPE_KEY}
        missing = [
            k
            for k, f in fields.items()
            if k not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{where}: missing field(s) {missing} for {name}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: invalid {name}: {exc}") from exc
    if isinstance(data, dict):
        return {k: from_dict(v, where=f"{where}.{k}") for k, v in data.items()}
    if isinstance(data, list):
        return tuple(from_dict(v, where=f"{where}[{i}]") for i, v in enumerate(data))
    return data


def dumps(obj: Any) -> str:
    """JSON text of a configuration."""
    return json.dumps(to_dict(obj), indent=2, sort_keys=True)


def _merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``: objects merge key by key (recursively), anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in override.items()}}
    return override


def read_config_json(path: str | Path, seen: tuple[Path, ...] = ()) -> Any:
    """A JSON file's data, with ``"extends": "OTHER.json"`` (a path relative to the file) resolved: the file's
    other keys are laid over OTHER's, so a training stage states only what differs from the job it continues."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
    if not (isinstance(data, dict) and "extends" in data):
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str):
        raise ConfigError(f"{path.name}: 'extends' must be a path to another JSON file, got {parent!r}")
    parent_path = (path.parent / parent).resolve()
    if parent_path in seen or parent_path == path.resolve():
        raise ConfigError(f"{path.name}: 'extends' makes a cycle through {parent!r}")
    return _merge(read_config_json(parent_path, (*seen, path.resolve())), data)


def load_json(path: str | Path, expected: type | None = None) -> Any:
    """Read a configuration from a JSON file (following ``"extends"``, see :func:`read_config_json`); errors name the
    file."""
    path = Path(path)
    return from_dict(read_config_json(path), expected=expected, where=path.name)
