"""Training a PFN on a prior: ``train(prior, model_config, train_config, out_dir)``.

Each step draws `batch_size` datasets of `n_points` points from the prior, splits every dataset of the batch at
the same random context size, and minimises the bar distribution's NLL of the held-out targets, or, where the
prior declares each held-out target's exact normal given the dataset's latent values and context
(:mod:`priorfit.priors.conditional`), its expectation under that normal in closed form: the same objective with
less gradient noise (a Rao-Blackwellised target). A prior of class labels (``target_kind == "categorical"``)
trains a classifier (``ModelConfig.n_classes``) the same way: labels renumbered by the context's classes in a
random order per dataset, the cross-entropy against each query's exact class probabilities (else the NLL of its
label), on the datasets whose context holds every class they were drawn with (:mod:`priorfit.model.categorical`).
AdamW with linear warm-up and cosine decay, gradient clipping. Every `checkpoint_every` steps the run saves
``model.safetensors`` (the deliverable) and ``train_state.pt`` (optimiser, step, generator states), both
atomically, so that a killed run resumes exactly where its last checkpoint left it. Under ``torchrun`` the run is
data-parallel (DDP; gloo on CPU, NCCL on GPU): the global batch is split over the ranks, each rank draws from its
own generator.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from priorfit.atomic import atomic_write_bytes
from priorfit.checkpoint import save_checkpoint
from priorfit.config import from_dict, register, to_dict
from priorfit.exceptions import CheckpointError, ConfigError
from priorfit.model.bar_distribution import BarDistribution
from priorfit.model.categorical import (categorical_expected_nll, categorical_nll, complete_contexts, context_targets,
                                        relabel_by_context)
from priorfit.model.loss import pfn_expected_nll, pfn_nll, pfn_predict
from priorfit.model.precision import PRECISIONS
from priorfit.principal_axes import rotate_some
from priorfit.priors.conditional import query_conditional
from priorfit.seeding import derive_seed
from priorfit.validation import check_int
from priorfit.model.transformer import ModelConfig, PFNTransformer, context_standardization

# the random streams a run draws (priorfit.seeding.derive_seed keys): bar borders, held-out sets, training data
_BORDER_STREAM, _HELD_OUT_STREAM, _DATA_STREAM = 1, 2, 3

#: How a step's context size is drawn (TrainConfig.context_sampling).
CONTEXT_SAMPLING = ("uniform", "log_uniform")

STATE_FILE = "train_state.pt"
MODEL_FILE = "model.safetensors"


@register
@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        steps: optimiser steps; the learning-rate schedule spans exactly these.
        batch_size: datasets per step (global, split over DDP ranks). 8 by default: with Rao-Blackwellised targets,
            more steps on fewer datasets each reach a held-out gap on 3-4x fewer datasets than the sampled
            trainer at 32, at about the same seconds per dataset on a CPU (``benchmarks/train_efficiency.py``,
            docs/training.md). On a GPU, larger batches buy throughput: set it.
        n_points: points per dataset, context and queries together (with `n_queries`, the most points).
        min_context, max_context: the context size of each step is uniform on [min_context, max_context]
            (max_context 0 means n_points - 1).
        min_features, max_features: the number of input features of each step is uniform on [min_features,
            max_features] (max_features 0, the default, means the prior's); the defaults train every count the
            model accepts, a narrower range trains only those counts (e.g. to probe or fine-tune a model where its
            inputs have many features, or a given number). The held-out evaluation and a fresh run's bar borders
            still draw every feature count.
        context_sampling: how the context size of a step is drawn on [min_context, max_context]: "uniform", or
            "log_uniform" (its log uniform, so that each doubling of n gets the same share of steps: small
            contexts, where the posterior is widest, are learned as well as large ones, and cost less).
        context_curriculum: fraction of the steps over which the largest context size grows linearly from
            min_context to max_context (0: the full range from the first step). Small contexts are cheap, so
            early steps run faster, and the model first learns what small contexts teach.
        n_queries: 0: every dataset has `n_points` points, the queries being those beyond the context; > 0:
            every dataset has (context size + n_queries) points, so that small contexts cost less.
        lr, weight_decay, warmup_fraction, grad_clip: AdamW, linear warm-up over `warmup_fraction` of the
            steps then cosine decay to 0, gradient-norm clipping.
        seed: seeds the prior's generator and the weights' initialisation.
        border_datasets: datasets drawn (with their own seed) to place the equal-mass bar borders.
        tail_bars, tail_reach: for heavy-tailed targets (an invariant model's, a Cauchy at n = 2), so many bars on
            each side grow geometrically out to tail_reach times the equal-mass bars' span
            (:meth:`~priorfit.model.bar_distribution.BarDistribution.from_samples`); 0: equal-mass bars only.
        eval_every, eval_datasets, eval_context, eval_queries: held-out NLL against the exact posterior
            (when the prior has one) every `eval_every` steps, on fixed datasets with these context sizes.
        checkpoint_every: steps between checkpoints (and at the end).
        rao_blackwell: score each held-out target by the bars' cross-entropy against its exact normal given the
            dataset's latent values and context, where the prior declares one (``prior.conditional``), instead of
            by the NLL of the sampled target. Its expectation is the same, so the optimum is too; only the
            gradient's noise falls (``benchmarks/train_efficiency.py`` measures what that buys). False: always the
            sampled target.
        principal_axes_rate: a classifier's only: the probability that a training dataset's inputs are shown on
            its context's principal axes (:mod:`priorfit.principal_axes`) instead of as they are. A model trained
            with it states so in its metadata, and ``PFNClassifier``'s ensemble then averages over that view.
        num_threads: torch CPU threads (0: leave torch's default).
        device: "auto" (CUDA when available), "cpu" or "cuda".
        precision: the forward pass's arithmetic: "auto" (bfloat16 autocast on a GPU, float32 on a CPU),
            "bfloat16" (autocast on either; on a CPU it pays only with AVX-512 BF16 or AMX instructions, see
            :func:`priorfit.model.precision.native_bfloat16`) or "float32". The loss, the bars and the optimiser
            stay float32 either way.
    """

    steps: int = 2000
    batch_size: int = 8
    n_points: int = 64
    min_context: int = 1
    max_context: int = 0
    min_features: int = 1
    max_features: int = 0
    n_queries: int = 0
    context_curriculum: float = 0.0
    context_sampling: str = "uniform"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    border_datasets: int = 2000
    tail_bars: int = 0
    tail_reach: float = 1e4
    eval_every: int = 500
    eval_datasets: int = 128
    eval_context: tuple[int, ...] = (8, 32)
    eval_queries: int = 32
    checkpoint_every: int = 500
    rao_blackwell: bool = True
    principal_axes_rate: float = 0.0
    num_threads: int = 0
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "n_points", "min_context", "min_features", "border_datasets",
                    "eval_every", "eval_datasets", "eval_queries", "checkpoint_every")
        for name in positive:
            check_int(name, getattr(self, name), minimum=1)
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {self.precision!r}")
        check_int("n_queries", self.n_queries, minimum=0)
        check_int("max_features", self.max_features, minimum=0)
        if self.max_features and self.max_features < self.min_features:
            raise ValueError(f"max_features ({self.max_features}) must be 0 (the prior's) or at least min_features "
                             f"({self.min_features})")
        if not isinstance(self.rao_blackwell, bool):
            raise ValueError(f"rao_blackwell must be true or false, got {self.rao_blackwell!r}")
        check_int("tail_bars", self.tail_bars, minimum=0)
        if not (isinstance(self.tail_reach, (int, float)) and math.isfinite(self.tail_reach) and self.tail_reach > 1):
            raise ValueError(f"tail_reach must be a finite number > 1, got {self.tail_reach!r}")
        if self.n_queries and self.context_range[1] + self.n_queries > self.n_points:
            raise ValueError(
                f"max_context + n_queries ({self.context_range[1]} + {self.n_queries}) must not exceed "
                f"n_points ({self.n_points})"
            )
        if self.n_points < 2:
            raise ValueError(f"n_points must be at least 2, got {self.n_points}")
        if not (self.min_context <= self.context_range[1] < self.n_points):
            raise ValueError(
                f"need 1 <= min_context <= max_context < n_points, got min_context={self.min_context}, "
                f"max_context={self.max_context}, n_points={self.n_points}"
            )
        if not (isinstance(self.principal_axes_rate, (int, float)) and not isinstance(self.principal_axes_rate, bool)
                and 0 <= self.principal_axes_rate <= 1):
            raise ValueError(f"principal_axes_rate must lie in [0, 1], got {self.principal_axes_rate!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.context_curriculum <= 1:
            raise ValueError(f"context_curriculum must lie in [0, 1], got {self.context_curriculum!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction!r}")
        if self.context_sampling not in CONTEXT_SAMPLING:
            raise ValueError(f"context_sampling must be one of {CONTEXT_SAMPLING}, got {self.context_sampling!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    @property
    def context_range(self) -> tuple[int, int]:
        return self.min_context, (self.max_context or self.n_points - 1)

    def largest_context(self, step: int) -> int:
        """The largest context size drawn at `step` (0-based), under the context curriculum."""
        lo, hi = self.context_range
        ramp = self.context_curriculum * self.steps
        if step >= ramp:
            return hi
        return lo + int((hi - lo) * (step + 1) / ramp)

    def learning_rate(self, step: int) -> float:
        """Learning rate at `step` (0-based): linear warm-up, then cosine decay to zero."""
        warmup = max(1, int(self.warmup_fraction * self.steps))
        if step < warmup:
            return self.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, self.steps - warmup)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@register
@dataclass(frozen=True)
class TrainJob:
    """What ``priorfit train CONFIG`` reads: a prior, a model configuration and a training configuration."""

    prior: Any
    model: ModelConfig = ModelConfig()
    training: TrainConfig = TrainConfig()


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    datasets_per_second: float = float("nan")


def draw_context_size(lo: int, hi: int, sampling: str, generator: torch.Generator) -> int:
    """A context size on [lo, hi]: uniform, or log-uniform (``floor(exp(U(log lo, log(hi + 1))))``)."""
    if sampling == "uniform":
        return int(torch.randint(lo, hi + 1, (), generator=generator))
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return min(hi, int(math.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo)))))


def make_bar_distribution(prior: Any, n_bars: int, n_points: int, n_datasets: int, seed: int,
                          standardize_context: tuple[int, int] | None = None,
                          target_affine: Any = None, tail_bars: int = 0, tail_reach: float = 1e4,
                          context_sampling: str = "uniform") -> BarDistribution:
    """Equal-mass bar borders from the targets of `n_datasets` prior datasets (a seed of their own).

    With `standardize_context` (the smallest and largest context size, for a model that standardises targets)
    the borders are those of query targets standardised by the statistics of a context of random size, which is
    what such a model predicts: by ``target_affine`` (a model's, for an invariant model, whose prior is then told
    the context size) or else by :func:`~priorfit.model.transformer.context_standardization`.
    """
    generator = torch.Generator().manual_seed(derive_seed(seed, _BORDER_STREAM))
    ys = []
    # an invariant model's targets depend on the context size far more (a Cauchy at n = 2): a size per 8 datasets
    chunk = 8 if target_affine is not None else 256
    for start in range(0, n_datasets, chunk):
        count = min(chunk, n_datasets - start)
        if target_affine is not None and standardize_context is not None:
            lo, hi = standardize_context
            n_ctx = draw_context_size(lo, min(hi, n_points - 1), context_sampling, generator)
            y = prior.sample(count, n_points, generator, n_context=n_ctx).y
            loc, scale = target_affine(y[:, :n_ctx])
            y = (y[:, n_ctx:] - loc.to(y.dtype)) / scale.to(y.dtype)
        else:
            y = prior.sample(count, n_points, generator).y
            if standardize_context is not None:
                lo, hi = standardize_context
                n_ctx = draw_context_size(lo, min(hi, n_points - 1), context_sampling, generator)
                loc, scale = context_standardization(y[:, :n_ctx])
                y = (y[:, n_ctx:] - loc) / scale
        ys.append(y.flatten())
    return BarDistribution.from_samples(torch.cat(ys), n_bars, tail_bars=tail_bars, tail_reach=tail_reach)


def exact_nll(prior: Any, x_ctx, y_ctx, x_qry, y_qry, params) -> torch.Tensor | None:
    """Mean NLL per query point of the prior's oracle reference (the exact posterior with the true
    hyperparameters) on a batch of datasets, if the prior declares one (:meth:`Prior.references`)."""
    from priorfit.exact.reference import ReferenceKind, Task

    oracle = next((r for r in prior.references() if r.kind is ReferenceKind.ORACLE), None)
    if oracle is None:
        return None
    nll = []
    for i in range(x_ctx.shape[0]):
        task = Task(x_ctx=x_ctx[i], y_ctx=y_ctx[i], x_qry=x_qry[i], truth=params.map(lambda t: t[i:i + 1]))
        nll.append(-oracle.predict(task, 0).predictive._log_prob(y_qry[i].double()).mean())
    return torch.stack(nll).mean()


def _held_out_labels(prior: Any, n_datasets: int, n_ctx: int, n_queries: int, generator: torch.Generator) -> Any:
    """Held-out datasets of a prior of labels, drawn 8 at a time so that they span its numbers of classes; those
    whose context misses one of their classes are left out, as training leaves them out."""
    from priorfit.priors.base import Batch

    xs, ys = [], []
    for start in range(0, n_datasets, 8):
        batch = prior.sample(min(8, n_datasets - start), n_ctx + n_queries, generator, n_context=n_ctx)
        _, n_seen, _ = relabel_by_context(batch.y, n_ctx)
        keep = complete_contexts(n_seen, _classes_drawn(prior, query_conditional(prior, batch, n_ctx)))
        xs.append(batch.x[keep])
        ys.append(batch.y[keep])
    return Batch(x=torch.cat(xs), y=torch.cat(ys))


def _classes_drawn(prior: Any, target: Any) -> int:
    """How many classes a batch of a prior of labels was drawn with: the width of its exact conditional
    (``target``, what ``prior.conditional`` returned)."""
    if target is None:
        raise ConfigError(f"{type(prior).__name__} draws labels but declares no conditional(batch, n_context): "
                          "training needs its class probabilities (their number is the dataset's classes)")
    return target.probs.shape[-1]


class _Evaluator:
    """Fixed held-out datasets; NLL of the PFN and of the exact posterior per context size."""

    def __init__(self, prior: Any, config: TrainConfig, categorical: bool = False,
                 n_features: int | None = None) -> None:
        """`n_features`: every held-out dataset's feature count (None: the prior's own draw; regression only)."""
        if categorical and n_features is not None:
            raise ValueError("n_features is for a regression prior's held-out sets; a prior of labels draws its own")
        self.sets = []
        fixed = {} if n_features is None else {"n_features": n_features}
        self.categorical = categorical
        for n_ctx in config.eval_context:
            generator = torch.Generator().manual_seed(derive_seed(config.seed, _HELD_OUT_STREAM, n_ctx))
            if categorical:  # a prior of labels draws a number of classes per call: many calls, many numbers
                batch = _held_out_labels(prior, config.eval_datasets, n_ctx, config.eval_queries, generator)
            else:
                batch = prior.sample(config.eval_datasets, n_ctx + config.eval_queries, generator, n_context=n_ctx,
                                     **fixed)
            exact = None if categorical else exact_nll(prior, batch.x[:, :n_ctx], batch.y[:, :n_ctx],
                                                       batch.x[:, n_ctx:], batch.y[:, n_ctx:], batch.params)
            self.sets.append((n_ctx, batch, None if exact is None else float(exact)))

    def _nll(self, model: PFNTransformer, bar: BarDistribution | None, batch: Any, n_ctx: int,
             device: torch.device) -> float:
        if not self.categorical:
            x, y = batch.x.float().to(device), batch.y.float().to(device)
            return float(pfn_nll(bar, *pfn_predict(model, x, y, n_ctx), y[:, n_ctx:]).mean())
        if batch.y.shape[0] == 0:  # no held-out context held all its classes
            return math.nan
        labels, n_seen, _ = relabel_by_context(batch.y, n_ctx)  # sorted, as the classifier numbers classes
        x, labels = batch.x.float().to(device), labels.to(device)
        with torch.inference_mode():
            logits = model(x[:, :n_ctx], labels[:, :n_ctx], x[:, n_ctx:])
        return float(categorical_nll(logits, n_seen.to(device), labels[:, n_ctx:]).mean())

    def __call__(self, model: PFNTransformer, bar: BarDistribution | None, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        out: dict[str, float] = {}
        for n_ctx, batch, exact in self.sets:
            pfn = self._nll(model, bar, batch, n_ctx, device)
            out[f"nll@{n_ctx}"] = pfn
            if exact is not None:
                out[f"exact@{n_ctx}"] = exact
                out[f"gap@{n_ctx}"] = pfn - exact
        model.train(was_training)
        return out


def _to_invariant(source: ModelConfig, target: ModelConfig) -> bool:
    """Whether a model of config ``source`` may warm-start one of config ``target``: the same architecture, from a
    model shown raw or standardised targets (its statistics' embedding, if any, left behind) to an invariant
    model."""
    return (not source.invariant and target.invariant
            and dataclasses.replace(source, standardize_targets=False, invariant=True) == target)


def _narrowed(state: dict, source: ModelConfig, max_features: int) -> dict:
    """The weights of a model of config ``source`` for ``max_features`` < its own, computing on inputs with at
    most that many features exactly what ``source`` computes on them zero-padded: each input embedding (the
    features', and the principal axes' where the model reads them) keeps the first ``max_features`` columns, and
    the dropped features' constant contribution at x = 0 (their Fourier features' cosines are 1) moves into its
    bias."""
    state = dict(state)
    keep, freqs = max_features, source.n_frequencies
    for encoder in _input_encoders(state):
        state[f"{encoder}.linear.weight"] = state[f"{encoder}.linear.weight"][:, :keep].clone()
        if freqs:
            weight = state[f"{encoder}.fourier.weight"]  # d_model x (2 * max_features * freqs): sin, cos blocks
            sin, cos = weight.chunk(2, dim=1)
            state[f"{encoder}.linear.bias"] = state[f"{encoder}.linear.bias"] + cos[:, keep * freqs:].sum(1)
            state[f"{encoder}.fourier.weight"] = torch.cat([sin[:, :keep * freqs], cos[:, :keep * freqs]], 1).clone()
    return state


def _input_encoders(state: dict) -> list[str]:
    """The input embeddings a model's weights hold: ``x_encoder``, and ``axes_encoder`` for ``principal_axes``."""
    return [name for name in ("x_encoder", "axes_encoder") if f"{name}.linear.weight" in state]


def _widened(state: dict, source: ModelConfig, max_features: int) -> dict:
    """The weights of a model of config ``source`` for ``max_features`` > its own, computing on inputs with at
    most ``source.max_features`` features exactly what ``source`` computes: the added features' columns of each
    input embedding start at zero (their zero padding then adds nothing, the Fourier cosines included), so the
    wider model starts as the narrow one that ignores the new features, and learns them from there."""
    state = dict(state)
    add, freqs = max_features - source.max_features, source.n_frequencies
    for encoder in _input_encoders(state):
        linear = state[f"{encoder}.linear.weight"]
        state[f"{encoder}.linear.weight"] = torch.cat([linear, linear.new_zeros(linear.shape[0], add)], 1)
        if freqs:
            sin, cos = state[f"{encoder}.fourier.weight"].chunk(2, dim=1)
            zeros = sin.new_zeros(sin.shape[0], add * freqs)
            state[f"{encoder}.fourier.weight"] = torch.cat([sin, zeros, cos, zeros], 1)
    return state


def _deepened(state: dict, source: ModelConfig, n_layers: int, fresh: dict) -> dict:
    """The weights of a model of config ``source`` with ``n_layers`` > its own layers, computing exactly what
    ``source`` computes: the old layers keep their order, spread evenly (old layer i at position
    floor(i * n_layers / source.n_layers)), and each new layer takes its weights from ``fresh`` (the new model's
    own initialisation) except its two residual branches' output projections, which start at zero. A pre-norm
    layer whose branches add zero is the identity, on the context's tokens and the queries' alike; the zeroed
    projections still get gradients (their inputs are not zero), so the new layers learn from the first step."""
    old = source.n_layers
    placed = {i * n_layers // old: i for i in range(old)}
    out = {k: v for k, v in state.items() if not k.startswith("layers.")}
    for position in range(n_layers):
        prefix = f"layers.{position}."
        if position in placed:
            src = f"layers.{placed[position]}."
            out.update({prefix + k[len(src):]: v for k, v in state.items() if k.startswith(src)})
            continue
        layer = {k: v.clone() for k, v in fresh.items() if k.startswith(prefix)}
        for name in ("out_proj.weight", "out_proj.bias", "ff.2.weight", "ff.2.bias"):
            layer[prefix + name] = torch.zeros_like(layer[prefix + name])
        out.update(layer)
    return out


def _with_axes_encoder(state: dict, fresh: dict) -> dict:
    """The weights of a model that reads only its inputs for one that reads their principal axes too
    (``ModelConfig.principal_axes``), computing exactly what it computed: the second view's encoder starts at
    zero (it adds nothing until it learns; its gradients are not zero, as its inputs are not)."""
    out = dict(state)
    out.update({k: torch.zeros_like(v) for k, v in fresh.items() if k.startswith("axes_encoder.")})
    return out


def _warm_start_weights(source: Any, target: ModelConfig, fresh: dict) -> dict:
    """``source``'s (a loaded checkpoint's) weights for a model of config ``target``: the same configuration; a
    non-invariant model's for an invariant one (:func:`_to_invariant`); a model for fewer input features,
    narrowed exactly (:func:`_narrowed`), or for more, widened exactly (:func:`_widened`); or a deeper model,
    deepened exactly (:func:`_deepened`, its new layers from ``fresh``, the target model's own initial weights);
    or an invariant model's with or without an input transform (power or robust: neither has weights, and the
    network goes on learning from the inputs it now sees); or a model that reads its inputs' principal axes too,
    exactly (:func:`_with_axes_encoder`)."""
    config, state = source.model_config, source.model.state_dict()
    if config.max_features > target.max_features:
        state = _narrowed(state, config, target.max_features)
        config = dataclasses.replace(config, max_features=target.max_features)
    elif config.max_features < target.max_features:
        state = _widened(state, config, target.max_features)
        config = dataclasses.replace(config, max_features=target.max_features)
    if config.n_layers < target.n_layers:
        state = _deepened(state, config, target.n_layers, fresh)
        config = dataclasses.replace(config, n_layers=target.n_layers)
    if target.principal_axes and not config.principal_axes:
        if not config.invariant:
            raise ConfigError("init_from is not an invariant model; a model that reads principal axes can start only "
                              "from an invariant one (train an invariant stage first)")
        state = _with_axes_encoder(state, fresh)
        config = dataclasses.replace(config, principal_axes=True)
    target = dataclasses.replace(target, power_transform=config.power_transform and target.invariant,
                                 robust_inputs=config.robust_inputs and target.invariant)  # transforms: no weights
    if to_dict(config) == to_dict(target):
        return state
    if _to_invariant(config, target):
        return {k: v for k, v in state.items() if not k.startswith("stats_encoder.")}
    raise ConfigError("init_from has another model configuration than model_config (it may differ only in "
                      "being non-invariant for an invariant model, in how many features it accepts, in having "
                      "fewer layers, in its input transform, or in not reading principal axes)")


def _is_classifier(prior: Any, model_config: ModelConfig) -> bool:
    """Whether `prior` draws class labels, for a classifier `model_config` (checked to fit each other)."""
    kind = getattr(prior, "target_kind", "continuous")
    if kind == "categorical":
        if model_config.n_classes < prior.max_classes:
            raise ConfigError(f"{type(prior).__name__} draws up to {prior.max_classes} classes; model_config.n_classes "
                              f"must be at least that for a classifier, got {model_config.n_classes}")
        return True
    if kind != "continuous":
        raise ConfigError(f"{type(prior).__name__} draws {kind} targets, which train() cannot fit")
    if model_config.n_classes:
        raise ConfigError(f"model_config.n_classes = {model_config.n_classes} makes a classifier, but "
                          f"{type(prior).__name__} draws continuous targets; set n_classes to 0")
    return False


def _classifier_loss(model: Any, batch: Any, n_ctx: int, rao_blackwell: bool, prior: Any,
                     generator: torch.Generator, device: torch.device, autocast: Any,
                     principal_axes_rate: float = 0.0) -> torch.Tensor:
    """A classifier's mean loss on a batch: labels renumbered by each context's classes in a random order, then
    the cross-entropy against the query labels' exact probabilities (or, without ``rao_blackwell``, the NLL of
    the labels), over the datasets whose context holds every class they were drawn with (0, with no gradient,
    when none does). With `principal_axes_rate`, that share of the datasets is shown on its context's principal
    axes (:func:`priorfit.principal_axes.rotate_some`)."""
    labels, n_seen, mapping = relabel_by_context(batch.y, n_ctx, generator)
    target = query_conditional(prior, batch, n_ctx)
    keep = complete_contexts(n_seen, _classes_drawn(prior, target)).to(device)
    x = rotate_some(batch.x, n_ctx, principal_axes_rate, generator)
    x, labels, n_seen = x.float().to(device), labels.to(device), n_seen.to(device)
    with autocast:
        logits = model(x[:, :n_ctx], labels[:, :n_ctx], x[:, n_ctx:])
    if rao_blackwell:
        probs = context_targets(target.probs.to(device), mapping.to(device))
        per_query = categorical_expected_nll(logits.float(), n_seen, probs)
    else:
        per_query = categorical_nll(logits.float(), n_seen, labels[:, n_ctx:])
    per_dataset = torch.where(keep[:, None], per_query, torch.zeros_like(per_query)).mean(-1)
    return per_dataset.sum() / keep.sum().clamp_min(1)


def _regression_loss(ddp: Any, model: PFNTransformer, bar: BarDistribution, batch: Any, n_ctx: int,
                     rao_blackwell: bool, prior: Any, device: torch.device, autocast: Any) -> torch.Tensor:
    """A regression PFN's mean loss on a batch: the bars' cross-entropy against each query target's exact normal
    where the prior declares it, else the NLL of the sampled targets."""
    target = query_conditional(prior, batch, n_ctx) if rao_blackwell else None
    x, y = batch.x.float().to(device), batch.y.float().to(device)
    with autocast:
        logits = ddp(x[:, :n_ctx], y[:, :n_ctx], x[:, n_ctx:])
    affine = model.target_affine(y[:, :n_ctx])
    if target is None:
        return pfn_nll(bar, logits.float(), *affine, y[:, n_ctx:]).mean()
    return pfn_expected_nll(bar, logits.float(), *affine, target.mean.to(device), target.std.to(device)).mean()


def _all_finite(loss: torch.Tensor, world: int, device: torch.device) -> bool:
    """Whether this step's loss is finite on every rank (all ranks must agree to skip a step together)."""
    finite = torch.isfinite(loss.detach()).to(device=device, dtype=torch.float32)
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _resume_key(config: TrainConfig | str, reschedule: bool = False) -> str:
    """What must match for a run to resume: the configuration (a TrainConfig, or the JSON a training state stores,
    in which fields added since take their defaults) less how it runs (threads, device, precision), and less the step count
    when the run is rescheduled. A state written before ``rao_blackwell`` existed trained on sampled targets, so it
    counts as ``rao_blackwell=False``: such a run resumes only under that setting, never silently on another loss."""
    if isinstance(config, str):
        stored = json.loads(config)
        stored.setdefault("rao_blackwell", False)
        config = from_dict(stored, TrainConfig)
    config = dataclasses.replace(config, num_threads=0, device="auto", precision="auto",
                                 steps=1 if reschedule else config.steps)
    return json.dumps(to_dict(config), sort_keys=True)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def train(
    prior: Any,
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
    reschedule: bool = False,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a PFN on `prior` and write ``out_dir/model.safetensors``.

    With `resume` (default) a run continues from ``out_dir/train_state.pt`` when one exists, with the same
    weights, optimiser state, schedule position and generator states, so an interrupted run ends with the same
    model as an uninterrupted one. `stop_after` ends this call after that many steps (counting from 0, the
    schedule still spans `train_config.steps`), e.g. to split a long run over sessions. `reschedule` lets a
    resumed run change `train_config.steps` (to shorten or extend it): the learning rate then follows the new
    schedule from the step reached; every other field must still match.

    `init_from` (a checkpoint path or shipped-model name) warm-starts a new run: its weights and bar borders
    replace the fresh ones, the optimiser and schedule start afresh. Its model configuration must equal
    `model_config`, except that a non-invariant model may warm-start an invariant one of the same architecture
    (a standardising model's statistics' embedding is left behind), a model for more input features may
    warm-start one for fewer (its input embedding narrowed exactly) and the reverse, and a model may warm-start a
    deeper one (its new layers start as the identity). The bars carry over when the prior is the
    source's own; for another prior they are placed afresh, since its targets are other ones. A resumed run ignores `init_from` (the training state
    already holds the weights).
    """
    classifier = _is_classifier(prior, model_config)
    if train_config.principal_axes_rate and not classifier:
        raise ConfigError("principal_axes_rate is a classifier's view of its inputs; a regression PFN serves no "
                          "such view, so it must train with 0")
    if train_config.principal_axes_rate and model_config.principal_axes:
        raise ConfigError("principal_axes_rate and model_config.principal_axes both show the principal axes: the "
                          "model already reads them, and the axes of a rotated dataset are noise; set one")
    if getattr(prior, "max_features", None) != model_config.max_features:
        raise ConfigError(
            f"model_config.max_features ({model_config.max_features}) must equal the prior's max_features "
            f"({getattr(prior, 'max_features', None)})"
        )
    if train_config.min_features > model_config.max_features:
        raise ConfigError(f"train_config.min_features ({train_config.min_features}) must be at most the model's "
                          f"max_features ({model_config.max_features})")
    if train_config.max_features > model_config.max_features:
        raise ConfigError(f"train_config.max_features ({train_config.max_features}) must be at most the model's "
                          f"max_features ({model_config.max_features})")
    most_features = train_config.max_features or model_config.max_features
    out_dir = Path(out_dir)
    rank, world = _distributed()
    if train_config.batch_size % world:
        raise ConfigError(f"batch_size ({train_config.batch_size}) must be divisible by the {world} DDP ranks")
    if train_config.num_threads:
        torch.set_num_threads(train_config.num_threads)
    if train_config.device == "cuda" or (train_config.device == "auto" and torch.cuda.is_available()):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = torch.device("cpu")

    torch.manual_seed(train_config.seed)
    model = PFNTransformer(model_config).to(device)
    init_meta = None
    source = None
    if init_from is not None:
        from priorfit.models import load_model

        source = load_model(init_from)
        try:
            model.load_state_dict(_warm_start_weights(source, model_config, model.state_dict()))
        except ConfigError as err:
            raise ConfigError(f"init_from {str(init_from)!r}: {err}") from None
        init_meta = dict(source=str(init_from), step=source.metadata.get("step"),
                         train_seconds=source.metadata.get("train_seconds"),
                         init_from=source.metadata.get("init_from"))
    if classifier:
        bar = None
    elif (source is None or source.model_config.invariant != model_config.invariant
            or to_dict(source.prior) != to_dict(prior)):
        standardized = model_config.standardize_targets or model_config.invariant
        bar = make_bar_distribution(
            prior, model_config.n_bars, train_config.n_points, train_config.border_datasets, train_config.seed,
            standardize_context=train_config.context_range if standardized else None,
            target_affine=model.target_affine if model_config.invariant else None,
            tail_bars=train_config.tail_bars, tail_reach=train_config.tail_reach,
            context_sampling=train_config.context_sampling,
        ).to(device)
    else:
        bar = source.bar_distribution.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay, betas=(0.9, 0.99)
    )
    generator = torch.Generator().manual_seed(derive_seed(train_config.seed, _DATA_STREAM, rank))
    step, history, seconds, skipped = 0, [], 0.0, 0

    state_path = out_dir / STATE_FILE
    resumed = resume and state_path.exists()
    if resumed:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if _resume_key(state["train_config"], reschedule) != _resume_key(train_config, reschedule):
            raise CheckpointError(f"{state_path} was written with another train_config; use resume=False")
        if len(state["generators"]) != world:
            raise CheckpointError(f"{state_path} was written by {len(state['generators'])} ranks, not {world}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "borders" in state:  # the run's own borders (a warm-started run's came from its source)
            bar = BarDistribution(state["borders"]).to(device)
        init_meta = state.get("init_from", init_meta)
        generator.set_state(state["generators"][rank])
        step, history, seconds = state["step"], json.loads(state["history"]), state["seconds"]
        skipped = state.get("skipped", 0)

    ddp = DistributedDataParallel(model) if world > 1 else model
    evaluator = _Evaluator(prior, train_config, classifier) if rank == 0 else None
    local_batch = train_config.batch_size // world
    lo = train_config.context_range[0]
    bfloat16 = train_config.precision == "bfloat16" or (train_config.precision == "auto" and device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16)
    last = train_config.steps if stop_after is None else min(train_config.steps, stop_after)
    bar_iter = tqdm(total=train_config.steps, initial=step, disable=not progress or rank != 0,
                    desc="train", dynamic_ncols=True)
    loss_ema, t_start, steps_timed = None, time.perf_counter(), 0

    def save() -> None:
        states = [generator.get_state()]
        if world > 1:
            states = [None] * world
            dist.all_gather_object(states, generator.get_state())
        if rank != 0:
            return
        elapsed = seconds + time.perf_counter() - t_start
        meta = dict(train_config=to_dict(train_config), step=step, history=history, skipped_steps=skipped,
                    train_seconds=elapsed, world_size=world)
        if init_meta is not None:
            meta["init_from"] = init_meta
        save_checkpoint(out_dir / MODEL_FILE, model, bar, prior, meta)
        state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(), generators=states, step=step,
                     history=json.dumps(history), seconds=elapsed, skipped=skipped, init_from=init_meta,
                     train_config=_resume_key(train_config))
        if bar is not None:
            state["borders"] = bar.borders.detach().cpu()
        _atomic_torch_save(state, state_path)

    # Priors build their batches on the training device; a prior written before `sample` took a device still
    # trains on a CPU.
    on_device = {} if device.type == "cpu" else {"device": device}
    model.train()
    while step < last:
        for group in optimizer.param_groups:
            group["lr"] = train_config.learning_rate(step)
        n_ctx = draw_context_size(lo, train_config.largest_context(step), train_config.context_sampling, generator)
        n_features = int(torch.randint(train_config.min_features, most_features + 1, (), generator=generator))
        n_points = n_ctx + train_config.n_queries if train_config.n_queries else train_config.n_points
        batch = prior.sample(local_batch, n_points, generator, n_features=n_features, n_context=n_ctx, **on_device)
        if classifier:
            loss = _classifier_loss(ddp, batch, n_ctx, train_config.rao_blackwell, prior, generator, device,
                                    autocast, train_config.principal_axes_rate)
        else:
            loss = _regression_loss(ddp, model, bar, batch, n_ctx, train_config.rao_blackwell, prior, device,
                                    autocast)
        optimizer.zero_grad(set_to_none=True)
        taken = _all_finite(loss, world, device)
        if taken:
            loss.backward()
            # a finite loss can still have gradients that overflow (inputs far out of a tiny context): the norm
            # is the same on every rank after DDP's all-reduce, so all ranks skip such a step together
            taken = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)))
        if taken:
            optimizer.step()
            value = float(loss.detach())
            loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
        else:  # a batch whose targets or gradients overflow float32: no step, counted
            skipped += 1
        step += 1
        steps_timed += 1
        rate = steps_timed * train_config.batch_size / (time.perf_counter() - t_start)
        if step % train_config.eval_every == 0 or step == train_config.steps:
            if evaluator is not None:
                record = dict(step=step, loss=loss_ema, datasets_per_second=rate, skipped_steps=skipped,
                              **evaluator(model, bar, device))
                history.append(record)
                bar_iter.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in record.items()))
        if step % train_config.checkpoint_every == 0 or step == last:
            save()
        bar_iter.update(1)
        bar_iter.set_postfix(loss="-" if loss_ema is None else f"{loss_ema:.4f}", datasets_per_s=f"{rate:.0f}",
                             refresh=False)
    bar_iter.close()
    if resumed and steps_timed == 0 and step >= train_config.steps:  # a finished state: write the weights it holds
        save()
    elapsed = time.perf_counter() - t_start
    return TrainResult(out_dir / MODEL_FILE, step, history,
                       steps_timed * train_config.batch_size / elapsed if steps_timed else float("nan"))
