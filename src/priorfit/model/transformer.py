"""The PFN transformer.

Context points attend to each other; query points attend to the context only, never to each other, so a
query's prediction does not depend on which other queries are asked (DESIGN decision 1). Keys and values come
from the context alone: the context is encoded once into a per-layer key/value cache
(:meth:`PFNTransformer.encode_context`) and any number of queries are answered from it
(:meth:`PFNTransformer.predict_logits`) in O(n m) attention work. The last layer's context tokens are only
needed as keys and values, so their attention output and feed-forward are skipped. There is no positional
encoding, so the model is invariant to the order of the context points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from priorfit.config import register
from priorfit.preprocessing import PowerTransform, RobustInputTransform, context_input_scaling, scale_inputs
from priorfit.preprocessing import context_standardization as _standardization
from priorfit.principal_axes import PrincipalAxes
from priorfit.validation import check_int


@register
@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a PFN.

    Attributes:
        d_model: width of the token embeddings.
        n_layers: number of transformer layers.
        n_heads: attention heads (must divide d_model).
        d_ff: hidden width of each feed-forward block.
        max_features: input features the model accepts; fewer are zero-padded.
        n_bars: bars of the output distribution (DESIGN decision 2: at least 1000 for shipped models).
        n_frequencies: each input feature is also encoded by ``sin`` and ``cos`` of ``2 pi f x`` at this many
            frequencies, geometric from 0.5 to `max_frequency` cycles per unit (0: a linear encoding only).
            Dot products of such features are stationary functions of ``x - x'``, so attention can measure
            closeness of inputs from the first layer on.
        max_frequency: the highest of those frequencies.
        standardize_targets: shift and scale each context's targets to mean 0 and standard deviation 1 before
            the model sees them (per-dataset normalisation). The context's mean and log standard deviation
            enter every token through an embedding of their own, so the model still knows the data's scale; its
            logits then describe the standardised query targets, which :meth:`PFNTransformer.target_affine` and
            :attr:`ContextCache.target_loc` / :attr:`ContextCache.target_scale` map back.
        invariant: show the network only the context's own units (:mod:`priorfit.preprocessing`): inputs scaled
            by the context's range per feature, targets standardised, and no embedding of the statistics. Its
            predictions then move exactly with a positive affine change of units of the targets or of any
            feature; its prior must be stated in those units (e.g. ``InvariantGPPrior``). A classifier's labels
            have no units: only its inputs are scaled.
        n_classes: 0 for regression (a bar distribution over a continuous target); else a classifier for up to
            this many classes: context labels ``0 ... K - 1`` enter through an embedding per class, the head gives
            one logit per class (those of classes beyond a context's K are masked by
            :func:`priorfit.model.categorical.masked_log_probs`), and ``n_bars`` is unused.
        power_transform: for an invariant model, pass each input feature through a Yeo-Johnson transform fitted
            to the context (:class:`priorfit.preprocessing.PowerTransform`) before scaling it by the context's
            range, in training and prediction alike: a skewed feature's points then spread over its range
            instead of crowding into one end of it. Predictions stay invariant to each feature's units, and
            the transform commutes with reflecting a feature.
        robust_inputs: for an invariant model, pass each input feature through ``arcsinh((x - median) / IQR)``
            with the context's median and interquartile range (:class:`priorfit.preprocessing.RobustInputTransform`)
            before scaling it by the context's range, in training and prediction alike: a few far points then
            no longer squeeze the others into a sliver of the range. Invariant to units and to reflections, as
            ``power_transform`` is; at most one of the two.
        principal_axes: for an invariant model, show it each dataset twice in one pass: as it is, and on its
            context's principal axes (:class:`priorfit.principal_axes.PrincipalAxes`, through the same input
            transform and scaling), each embedded by an encoder of its own and the two embeddings added. A contrast
            of correlated features is then a feature of the second view, and the network reads either view as the
            dataset calls for. Invariant to each feature's units, as the view is.
    """

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_features: int = 1
    n_bars: int = 1000
    n_frequencies: int = 0
    max_frequency: float = 16.0
    standardize_targets: bool = False
    invariant: bool = False
    n_classes: int = 0
    power_transform: bool = False
    robust_inputs: bool = False
    principal_axes: bool = False

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_ff", "max_features"):
            check_int(name, getattr(self, name), minimum=1)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must divide d_model ({self.d_model})")
        check_int("n_frequencies", self.n_frequencies, minimum=0)
        if not self.max_frequency > 0.5:
            raise ValueError(f"max_frequency must exceed 0.5, got {self.max_frequency!r}")
        check_int("n_bars", self.n_bars, minimum=3)
        if not isinstance(self.standardize_targets, bool):
            raise ValueError(f"standardize_targets must be a bool, got {self.standardize_targets!r}")
        if not isinstance(self.invariant, bool):
            raise ValueError(f"invariant must be a bool, got {self.invariant!r}")
        if not (self.n_classes == 0 or (isinstance(self.n_classes, int) and self.n_classes >= 2)):
            raise ValueError(f"n_classes must be 0 (regression) or an int >= 2 (a classifier), got {self.n_classes!r}")
        if self.n_classes and self.standardize_targets:
            raise ValueError("a classifier's labels cannot be standardised; set standardize_targets=False")
        if self.invariant and self.standardize_targets:
            raise ValueError("invariant already standardises targets (without the statistics' embedding that "
                             "standardize_targets adds); set one of them")
        for name in ("power_transform", "robust_inputs", "principal_axes"):  # the input transforms
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
            if getattr(self, name) and not self.invariant:
                raise ValueError(f"{name} acts on the context's own units; it needs invariant=True")
        if self.robust_inputs and self.power_transform:
            raise ValueError("robust_inputs and power_transform are two transforms of the same inputs; set one")


#: The smallest standard deviation a context's targets are divided by (a constant context has none).
MIN_TARGET_SCALE = 1e-2


def context_standardization(y_ctx: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation (at least ``MIN_TARGET_SCALE``), each `batch x 1`, of contexts' targets
    `y_ctx` (`batch x n`): what a model with ``standardize_targets`` divides them by."""
    return _standardization(y_ctx, MIN_TARGET_SCALE)


@dataclass(frozen=True)
class InputMap:
    """What an invariant model does to inputs, fitted to a context: the input transform (if any), then the
    context's scaling to [0, 1]; queries go through the same map."""

    transform: PowerTransform | RobustInputTransform | None
    lo: Tensor
    width: Tensor

    @classmethod
    def fit(cls, x_ctx: Tensor, config: ModelConfig) -> tuple["InputMap", Tensor]:
        """The map fitted to contexts' inputs `x_ctx`, and those inputs mapped (each transformed once)."""
        transform = None
        if config.power_transform:
            transform = PowerTransform.fit(x_ctx)
        elif config.robust_inputs:
            transform = RobustInputTransform.fit(x_ctx)
        transformed = x_ctx if transform is None else transform(x_ctx)
        lo, width = context_input_scaling(transformed)
        return cls(transform, lo, width), scale_inputs(transformed, lo, width)

    def __call__(self, x: Tensor) -> Tensor:
        return scale_inputs(x if self.transform is None else self.transform(x), self.lo, self.width)


@dataclass(frozen=True)
class AxesView:
    """A ``principal_axes`` model's second view of inputs: the context's principal axes, then their own
    :class:`InputMap`."""

    axes: PrincipalAxes
    inputs: InputMap

    @classmethod
    def fit(cls, x_ctx: Tensor, config: ModelConfig) -> tuple["AxesView", Tensor]:
        """The view fitted to contexts' inputs `x_ctx`, and the context on it."""
        axes = PrincipalAxes.fit(x_ctx)
        inputs, viewed = InputMap.fit(axes(x_ctx), config)
        return cls(axes, inputs), viewed

    def __call__(self, x: Tensor) -> Tensor:
        return self.inputs(self.axes(x))


@dataclass(frozen=True)
class ContextCache:
    """An encoded context: per-layer attention keys and values, each `batch x heads x n x d_head`.

    The query logits describe ``(y - target_loc) / target_scale`` (each `batch x 1`; 0 and 1 unless the model
    standardises targets); `conditioning` (`batch x 1 x d_model`) is the embedding of the context's target
    statistics that queries also receive.
    """

    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    target_loc: Tensor
    target_scale: Tensor
    conditioning: Tensor | None = None
    input_loc: Tensor | None = None  # batch x 1 x d: an invariant model's context scaling of the inputs
    input_scale: Tensor | None = None
    input_transform: PowerTransform | RobustInputTransform | None = None  # applied before the scaling, if any
    axes_view: AxesView | None = None  # a principal_axes model's map of queries onto its second view

    def __setstate__(self, state: dict) -> None:
        """Unpickle a cache pickled before ``input_power`` was renamed ``input_transform`` (a fitted estimator
        of a power-transforming model), keeping its transform."""
        state = dict(state)
        if "input_power" in state:
            state["input_transform"] = state.pop("input_power")
        state.setdefault("axes_view", None)
        self.__dict__.update(state)

    @property
    def n_context(self) -> int:
        return self.keys[0].shape[-2]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]


class InputEncoder(nn.Module):
    """Embeds `... x max_features` inputs: a linear map of x plus, optionally, of its Fourier features."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(config.max_features, config.d_model)
        if config.n_frequencies:
            freqs = torch.logspace(math.log10(0.5), math.log10(config.max_frequency), config.n_frequencies)
            self.register_buffer("angular", 2 * math.pi * freqs, persistent=False)
            self.fourier = nn.Linear(2 * config.n_frequencies * config.max_features, config.d_model, bias=False)
        else:
            self.fourier = None

    def forward(self, x: Tensor) -> Tensor:
        h = self.linear(x)
        if self.fourier is not None:
            phase = (x.unsqueeze(-1) * self.angular).flatten(-2)  # ... x (max_features * n_frequencies)
            h = h + self.fourier(torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1))
        return h


class PFNLayer(nn.Module):
    """Pre-norm transformer layer whose attention reads keys/values from the context only."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm_attn = nn.LayerNorm(d_model)
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def _heads(self, t: Tensor) -> Tensor:
        # batch x n x d_model -> batch x heads x n x d_head
        b, n, d = t.shape
        return t.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)

    def keys_values(self, normed_ctx: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv_proj(normed_ctx).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def attend(self, h: Tensor, normed: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Residual attention of tokens `h` (`batch x t x d_model`) to the context keys/values, then FF."""
        q = self._heads(self.q_proj(normed))
        a = F.scaled_dot_product_attention(q, k, v)  # batch x heads x t x d_head
        b, _, t, _ = a.shape
        h = h + self.out_proj(a.transpose(1, 2).reshape(b, t, -1))
        return h + self.ff(self.norm_ff(h))


class PFNTransformer(nn.Module):
    """Maps a context `(x_ctx, y_ctx)` and queries `x_qry` to logits over the bars of the output distribution.

    Shapes: x_ctx `batch x n x d`, y_ctx `batch x n`, x_qry `batch x m x d` with d <= max_features;
    logits `batch x m x n_bars`, or `batch x m x n_classes` for a classifier (``ModelConfig.n_classes``), whose
    y_ctx holds class indices.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.x_encoder = InputEncoder(config)
        self.axes_encoder = InputEncoder(config) if config.principal_axes else None
        self.y_encoder = nn.Embedding(config.n_classes, d) if config.n_classes else nn.Linear(1, d)
        self.stats_encoder = nn.Linear(2, d) if config.standardize_targets else None
        self.layers = nn.ModuleList(PFNLayer(d, config.n_heads, config.d_ff) for _ in range(config.n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.n_classes or config.n_bars)

    def _pad(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        if d > self.config.max_features:
            raise ValueError(f"x has {d} features but the model accepts at most {self.config.max_features}")
        x = x.to(self.head.weight.dtype)
        if d < self.config.max_features:
            x = F.pad(x, (0, self.config.max_features - d))
        return x

    def _labels(self, y_ctx: Tensor) -> Tensor:
        """A classifier's context labels as indices, checked to be whole numbers 0 ... n_classes - 1."""
        labels = y_ctx.long()
        if labels.numel() and (bool((labels != y_ctx).any()) or int(labels.min()) < 0
                               or int(labels.max()) >= self.config.n_classes):
            raise ValueError(f"a classifier's context labels must be class indices 0 ... {self.config.n_classes - 1}")
        return labels

    def target_affine(self, y_ctx: Tensor) -> tuple[Tensor, Tensor]:
        """`(loc, scale)`, each `batch x 1`, of contexts' targets `y_ctx` (`batch x n`): the logits describe
        ``(y - loc) / scale``. The mean and the standard deviation (at least ``MIN_TARGET_SCALE``) when the model
        standardises targets, else 0 and 1 (always for a classifier)."""
        if self.config.invariant and not self.config.n_classes:
            # in the targets' own precision: float64 data keeps its digits
            return _standardization(y_ctx if y_ctx.is_floating_point() else y_ctx.double())
        y = y_ctx.to(self.head.weight.dtype)
        if not self.config.standardize_targets:  # a classifier's too
            return torch.zeros_like(y[:, :1]), torch.ones_like(y[:, :1])
        return context_standardization(y)

    def encode_context(self, x_ctx: Tensor, y_ctx: Tensor) -> ContextCache:
        """Run the context through every layer and keep each layer's keys and values."""
        if x_ctx.shape[:2] != y_ctx.shape:
            raise ValueError(f"x_ctx {tuple(x_ctx.shape)} and y_ctx {tuple(y_ctx.shape)} disagree on batch x n")
        if x_ctx.shape[1] < 1:
            raise ValueError("the context must hold at least one point")
        loc, scale = self.target_affine(y_ctx)
        if self.config.n_classes:
            y_embedded = self.y_encoder(self._labels(y_ctx))
        elif self.config.invariant:
            y_embedded = self.y_encoder(((y_ctx - loc) / scale).to(self.head.weight.dtype).unsqueeze(-1))
        else:
            y_embedded = self.y_encoder(((y_ctx.to(self.head.weight.dtype) - loc) / scale).unsqueeze(-1))
        x_lo = x_width = transform = view = None
        raw = x_ctx
        if self.config.invariant:
            inputs, x_ctx = InputMap.fit(x_ctx, self.config)
            transform, x_lo, x_width = inputs.transform, inputs.lo, inputs.width
        h = self.x_encoder(self._pad(x_ctx)) + y_embedded
        if self.axes_encoder is not None:
            view, viewed = AxesView.fit(raw, self.config)
            h = h + self.axes_encoder(self._pad(viewed))
        conditioning = None
        if self.stats_encoder is not None:
            conditioning = self.stats_encoder(torch.cat([loc, scale.log()], dim=-1)).unsqueeze(1)
            h = h + conditioning
        keys, values = [], []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            normed = layer.norm_attn(h)
            k, v = layer.keys_values(normed)
            keys.append(k)
            values.append(v)
            if i < last:  # the last layer's context outputs are never read
                h = layer.attend(h, normed, k, v)
        return ContextCache(tuple(keys), tuple(values), loc, scale, conditioning, x_lo, x_width, transform, view)

    def predict_logits(self, cache: ContextCache, x_qry: Tensor) -> Tensor:
        """Logits `batch x m x n_bars` for queries `batch x m x d`, from an encoded context."""
        if x_qry.shape[0] != cache.batch_size:
            raise ValueError(f"x_qry has batch size {x_qry.shape[0]}, the context {cache.batch_size}")
        raw = x_qry
        if cache.input_transform is not None:
            x_qry = cache.input_transform(x_qry)
        if cache.input_loc is not None:
            x_qry = scale_inputs(x_qry, cache.input_loc, cache.input_scale)
        h = self.x_encoder(self._pad(x_qry))
        if self.axes_encoder is not None:
            if cache.axes_view is None:
                raise ValueError("this model reads a second view of the inputs; the context was encoded without it")
            h = h + self.axes_encoder(self._pad(cache.axes_view(raw)))
        if cache.conditioning is not None:
            h = h + cache.conditioning
        for layer, k, v in zip(self.layers, cache.keys, cache.values):
            h = layer.attend(h, layer.norm_attn(h), k, v)
        return self.head(self.norm_out(h))

    def forward(self, x_ctx: Tensor, y_ctx: Tensor, x_qry: Tensor) -> Tensor:
        """Logits over the bars of ``(y - loc) / scale`` with ``loc, scale = self.target_affine(y_ctx)``."""
        return self.predict_logits(self.encode_context(x_ctx, y_ctx), x_qry)

