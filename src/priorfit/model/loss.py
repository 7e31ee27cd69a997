"""What a PFN predicts for a batch of datasets, and its loss: the code training and evaluation share.

Training minimises :func:`pfn_nll` on prior datasets; evaluation scores the same quantity against exact references,
so both import it from here, next to the model, and neither imports the other.
"""

from __future__ import annotations

import torch
from torch import Tensor

from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.ensemble import SymmetryEnsemble, encode, predict
from priorfit.model.transformer import PFNTransformer

__all__ = ["pfn_predict", "pfn_nll", "pfn_expected_nll"]


@torch.inference_mode()
def pfn_predict(model: PFNTransformer, x: Tensor, y: Tensor, n_ctx: int, chunk: int = 64,
                ensemble: SymmetryEnsemble | None = None,
                precision: str = "float32") -> tuple[Tensor, Tensor, Tensor]:
    """The PFN's predictions at the points after the first `n_ctx` of each dataset (x `B x N x d`, y `B x N`),
    `chunk` datasets per forward pass: logits `B x (N - n_ctx) x K` over the bars of ``(y - loc) / scale``, and
    `loc`, `scale` (`B x 1`; 0 and 1 unless the model standardises targets). With an `ensemble`, the logits
    (float64) are those of its members' average; without, the model's own (float32). The forward passes run at
    `precision` (:mod:`priorfit.model.precision`)."""
    xf, yf = x.float(), y.float()
    logits, locs, scales = [], [], []
    for i in range(0, x.shape[0], chunk):
        cache = encode(model, xf[i:i + chunk, :n_ctx], yf[i:i + chunk, :n_ctx], ensemble, precision)
        logits.append(predict(model, cache, xf[i:i + chunk, n_ctx:], ensemble, precision))
        locs.append(cache.target_loc)
        scales.append(cache.target_scale)
    return torch.cat(logits), torch.cat(locs), torch.cat(scales)


def pfn_nll(bar: BarDistribution, logits: Tensor, loc: Tensor, scale: Tensor, y: Tensor) -> Tensor:
    """NLL of targets `y` (`B x m`) in their own units under the PFN's predictions (see :func:`pfn_predict`):
    the bar NLL of the standardised targets plus the log of the Jacobian."""
    loc, scale = loc.to(logits.dtype), scale.to(logits.dtype)
    return bar.nll(logits, (y.to(logits.dtype) - loc) / scale) + scale.log()


def pfn_expected_nll(bar: BarDistribution, logits: Tensor, loc: Tensor, scale: Tensor, mean: Tensor,
                     std: Tensor) -> Tensor:
    """The expectation of :func:`pfn_nll` over targets ``y ~ N(mean, std^2)`` (each `B x m`, in the targets' own
    units), in closed form (:meth:`BarDistribution.expected_nll` of the standardised normal, plus the log of the
    Jacobian): the training loss against a prior's exact conditional (:mod:`priorfit.priors.conditional`)."""
    loc, scale = loc.to(torch.float64), scale.to(torch.float64)  # b x 1: standardise in float64, then cast
    return bar.expected_nll(logits, (mean.to(torch.float64) - loc) / scale, std.to(torch.float64) / scale) \
        + scale.log().to(logits.dtype)
