r"""Tabular classification data from random structural causal models (as in the PFN and TabPFN papers).

Each dataset is drawn from its own random causal graph, built in layers:

1. **Causes.** ``h`` root variables per point, each standard normal or uniform with the same variance.
2. **Mechanisms.** One to ``max_layers`` layers, each node a sparse random linear function of the layer before
   (a fraction of its parents kept, gains log-normal), passed through an activation drawn per node (tanh, ReLU,
   identity, sine, absolute value), plus its own Gaussian noise; every node is then standardised by the
   context's points, so that no layer dies or explodes.
3. **Features.** ``d`` distinct nodes of any layer: causes, effects and intermediate variables alike. Some are
   made irrelevant (replaced by independent noise), discrete (rounded to a few levels) or skewed
   (exponentiated), and each is negated with probability 1/2, so that the prior is invariant to reflecting a
   feature, as to reordering the features.
4. **Label.** A random linear read-out of one to ``max_label_parents`` nodes (with probability
   ``label_reads_features`` only feature nodes, else any node, hidden ones included), standardised, times a
   sharpness, plus a bias per class (class imbalance): the logits of the ``C`` classes. The label is drawn from
   their softmax mixed with the uniform distribution by a label-noise level (zero for half of the datasets).

The defaults were set so that a logistic regression explains about as much of a drawn dataset's labels as it does
of real tabular sets (``benchmarks/tabular_prior_signal.py``): sharp labels, read mostly from features.

Every dataset states its classes' probabilities at each point (:class:`LabelProbabilities`), so training scores
the network against them (:meth:`SCMClassificationPrior.conditional`) instead of against the sampled labels. The
graph is not identifiable from data and the prior has no exact posterior that anything here computes:
``references()`` is empty; a model trained on a mixture with the GP classification prior is checked against
exact Bayes on that component's data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from priorfit.config import register
from priorfit.priors.base import Batch, sample_arguments
from priorfit.priors.classification import LabelProbabilities, TabularLabelPrior, draw_labels, number_of_classes
from priorfit.validation import check_float, check_int

__all__ = ["SCMClassificationPrior"]

_ACTIVATIONS = (torch.tanh, torch.relu, lambda t: t, torch.sin, torch.abs)


def _probability(name: str, value: float) -> float:
    value = check_float(name, value, minimum=0.0)
    if value > 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return value


@register
@dataclass(frozen=True)
class SCMClassificationPrior(TabularLabelPrior):
    """Labelled datasets from random layered causal graphs (see the module docstring).

    Fields:
        max_features: the most features a dataset has.
        min_classes, max_classes: the number of classes of a batch is uniform on this range, and at most the
            context's size.
        max_layers: mechanism layers above the causes: uniform on 1 ... max_layers per batch.
        extra_width: nodes per layer beyond the dataset's features: uniform on 1 ... extra_width per batch.
        irrelevant, discrete, skewed: the probability of each feature being made pure noise, rounded to one to
            three levels per standard deviation, or exponentiated.
        label_reads_features: the probability that the label is read from feature nodes only.
        max_label_parents: the label reads 1 ... this many nodes.
        sharpness_loc, sharpness_scale: the logits' scale is log-normal with these parameters (log scale).
        class_bias_std: the standard deviation of the classes' biases.
        max_label_noise: a noisy dataset's label-noise level is uniform below this.
    """

    max_features: int = 8
    min_classes: int = 2
    max_classes: int = 10
    max_layers: int = 3
    extra_width: int = 8
    irrelevant: float = 0.1
    discrete: float = 0.15
    skewed: float = 0.15
    label_reads_features: float = 0.9
    max_label_parents: int = 4
    sharpness_loc: float = 2.5
    sharpness_scale: float = 1.0
    class_bias_std: float = 0.5
    max_label_noise: float = 0.05

    def __post_init__(self) -> None:
        check_int("max_features", self.max_features, minimum=1)
        check_int("min_classes", self.min_classes, minimum=2)
        check_int("max_classes", self.max_classes, minimum=self.min_classes)
        check_int("max_layers", self.max_layers, minimum=1)
        check_int("extra_width", self.extra_width, minimum=1)
        check_int("max_label_parents", self.max_label_parents, minimum=1)
        for name in ("irrelevant", "discrete", "skewed", "label_reads_features", "max_label_noise"):
            _probability(name, getattr(self, name))
        check_float("sharpness_loc", self.sharpness_loc)
        check_float("sharpness_scale", self.sharpness_scale, minimum=0.0)
        check_float("class_bias_std", self.class_bias_std, minimum=0.0)

    def sample(self, batch_size: int, n_points: int, generator: torch.Generator, n_features: int | None = None,
               device: torch.device | str | None = None, n_context: int | None = None,
               n_classes: int | None = None) -> Batch:
        """``batch_size`` datasets of ``n_points`` points with ``n_features`` features (default: all) and
        ``n_classes`` classes (default: drawn as the GP classification prior draws it); nodes are standardised
        by the first ``n_context`` points (default: all). x `batch x n x d`, y `batch x n` labels, float64;
        ``device`` is accepted for the prior protocol and not used."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        d, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        n_classes = number_of_classes(self, n_context, generator, n_classes)
        g, b, n, f64 = generator, batch_size, n_points, torch.float64

        def uniform(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=g, dtype=f64)

        def integer(low: int, high: int, *shape: int) -> Tensor:
            return torch.randint(low, high + 1, shape or (1,), generator=g)

        layers = int(integer(1, self.max_layers))
        width = d + int(integer(1, self.extra_width))
        roots = torch.randn(b, n, width, generator=g, dtype=f64)
        uniform_roots = uniform(b, 1, width) < 0.5
        roots = torch.where(uniform_roots, (uniform(b, n, width) - 0.5) * math.sqrt(12.0), roots)
        nodes = [roots]
        for _ in range(layers):
            keep = uniform(b, width, width) < 0.3 + 0.7 * uniform(b, 1, 1)
            gain = torch.exp(0.5 * torch.randn(b, 1, 1, generator=g, dtype=f64))
            weights = torch.randn(b, width, width, generator=g, dtype=f64) * keep * gain / math.sqrt(width)
            bias = 0.5 * torch.randn(b, 1, width, generator=g, dtype=f64)
            pre = nodes[-1] @ weights + bias
            which = integer(0, len(_ACTIVATIONS) - 1, b, 1, width)
            out = torch.zeros_like(pre)
            for k, act in enumerate(_ACTIVATIONS):
                out = torch.where(which == k, act(pre), out)
            noise = torch.exp(math.log(0.01) + uniform(b, 1, 1) * math.log(50.0))  # 0.01 ... 0.5
            nodes.append(_standardised(out + noise * torch.randn(b, n, width, generator=g, dtype=f64), n_context))
        pool = torch.cat(nodes, dim=-1)  # b x n x P
        size = pool.shape[-1]

        chosen = uniform(b, size).argsort(dim=1)[:, :d]  # the feature nodes
        x = pool.gather(2, chosen[:, None, :].expand(b, n, d))

        is_feature = torch.zeros(b, size, dtype=torch.bool).scatter_(1, chosen, True)
        from_features = uniform(b, 1) < self.label_reads_features
        allowed = torch.where(from_features, is_feature, torch.ones_like(is_feature))
        keys = torch.where(allowed, uniform(b, size), torch.full((b, size), math.inf, dtype=f64))
        most = min(self.max_label_parents, size)
        parents = keys.argsort(dim=1)[:, :most]
        count = torch.minimum(integer(1, most, b, 1), allowed.sum(1, keepdim=True))
        used = torch.arange(most)[None, :] < count  # b x most
        readout = torch.randn(b, most, n_classes, generator=g, dtype=f64) * used[..., None]
        logits = pool.gather(2, parents[:, None, :].expand(b, n, most)) @ readout
        spread = logits[:, :n_context].std(dim=(1, 2), keepdim=True) if n_context > 1 else torch.ones(b, 1, 1)
        logits = logits / torch.where(spread > 0, spread, torch.ones_like(spread))
        sharpness = torch.exp(self.sharpness_loc + self.sharpness_scale * torch.randn(b, 1, 1, generator=g, dtype=f64))
        bias = self.class_bias_std * torch.randn(b, 1, n_classes, generator=g, dtype=f64)
        probs = torch.softmax(sharpness * logits + bias, dim=-1)
        noise = torch.where(uniform(b, 1, 1) < 0.5, torch.zeros(b, 1, 1, dtype=f64),
                            self.max_label_noise * uniform(b, 1, 1))
        probs = (1.0 - noise) * probs + noise / n_classes

        x = self._feature_kinds(x, n_context, uniform, g)
        return Batch(x=x, y=draw_labels(probs, g), params=LabelProbabilities(probs=probs))

    def _feature_kinds(self, x: Tensor, n_context: int, uniform, g: torch.Generator) -> Tensor:
        """Irrelevant, discrete and skewed features, and random signs (module docstring)."""
        b, n, d = x.shape
        x = torch.where(uniform(b, 1, d) < self.irrelevant, torch.randn(b, n, d, generator=g, dtype=x.dtype), x)
        levels = torch.randint(1, 4, (b, 1, d), generator=g).to(x.dtype)
        x = torch.where(uniform(b, 1, d) < self.discrete, torch.round(x * levels) / levels, x)
        rate = 0.5 + uniform(b, 1, d)
        x = torch.where(uniform(b, 1, d) < self.skewed, torch.exp((rate * x).clamp(max=20.0)), x)
        sign = torch.where(uniform(b, 1, d) < 0.5, -1.0, 1.0).to(x.dtype)
        return x * sign


def _standardised(nodes: Tensor, n_context: int) -> Tensor:
    """Each node (`batch x n x width`) shifted and scaled to mean 0 and standard deviation 1 over the context's
    points (a constant node is only shifted)."""
    ctx = nodes[:, :n_context]
    mean = ctx.mean(dim=1, keepdim=True)
    std = ctx.std(dim=1, keepdim=True) if n_context > 1 else torch.ones_like(mean)
    return (nodes - mean) / torch.where(std > 1e-12, std, torch.ones_like(std))
