"""Typed hyperparameter values: what a prior drew each dataset with, as a tree of frozen dataclasses.

A kernel's hyperparameters are a :class:`Params` of its own type (``LengthscaleParams(lengthscale=...)``,
``ScaleParams(outputscale=..., base=...)``, ``CompositeParams(parts=(...))``), a GP's are ``GPParams(kernel=...,
noise_std=..., mean=...)``. Every array has a leading batch dimension, one value per dataset. The same trees hold
torch tensors (sampling, the exact GP) or JAX arrays (inside the NUTS potential).

``flat()`` names every leaf by its path ("outputscale", "k0.lengthscale", "noise_std"): the names NUTS samples
under and reports its diagnostics by. A kernel rebuilds its tree from such names with ``Kernel.params_from``.
Trees compare by identity (``eq=False``): their arrays have no single truth value.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

__all__ = ["Params"]

P = TypeVar("P", bound="Params")


def _map(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, Params):
        return value.map(fn)
    if isinstance(value, tuple):
        return tuple(_map(v, fn) for v in value)
    return fn(value)


class Params:
    """Base of the hyperparameter trees (subclasses are frozen dataclasses; see the module docstring)."""

    def map(self: P, fn: Callable[[Any], Any]) -> P:
        """The same tree with ``fn`` applied to every array, e.g. ``params.map(lambda t: t[i:i + 1])`` for
        dataset i, or ``params.map(lambda t: t[None])`` to add a batch dimension."""
        return type(self)(**{f.name: _map(getattr(self, f.name), fn) for f in dataclasses.fields(self)})

    def flat(self) -> dict[str, Any]:
        """Every array by its path name (a leaf kernel's fields by their own names)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Params):
                out.update(value.flat())
            else:
                out[f.name] = value
        return out

    @property
    def batch_size(self) -> int:
        """The leading dimension of the arrays (the number of datasets)."""
        return next(iter(self.flat().values())).shape[0]
