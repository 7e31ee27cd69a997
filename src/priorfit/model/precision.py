"""The arithmetic a PFN's inference runs in: float32, or bfloat16 matrix products for speed.

``"bfloat16"`` runs the forward pass under :func:`torch.autocast`: matrix products and attention take bfloat16
inputs (accumulating in float32), while layer norms, softmaxes and everything downstream of the logits (the bar
distribution, means, quantiles) stay in float32 or float64. GPU training already runs this way. On a CPU with
native bfloat16 instructions (AVX-512 BF16, AMX) the 1000-query forward pass of the shipped model takes about
40% less time; on one without them (AVX2) it is slower than float32, which :func:`native_bfloat16` tells.
Measured on the shipped model: KL(float32 || bfloat16) of 0.0001-0.0005 nats per query, held-out NLL changed by
less than 0.001 nats in every cell of its fidelity report (docs/ensembles_and_precision.md). float32 is the default everywhere.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

__all__ = ["PRECISIONS", "check_precision", "inference_precision", "native_bfloat16"]

#: The inference precisions priorfit accepts.
PRECISIONS = ("float32", "bfloat16")


def check_precision(name: str, value: object) -> str:
    """`value` if it is one of :data:`PRECISIONS`, else a ValueError naming the argument `name`."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, PRECISIONS))}, got {value!r}")
    return value


def inference_precision(precision: str, device: torch.device | str = "cpu") -> ContextManager:
    """A context in which a PFN's forward pass runs at `precision` on `device`."""
    check_precision("precision", precision)
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions that oneDNN uses (without them bfloat16 is emulated, and slow)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or a torch that dropped the private probe
        return False
