r"""Classes from sums of random decision trees on features of mixed kinds.

Real tables hold features that no smooth prior here draws often: zero for a third of the rows and log-normal
otherwise (a trace element in glass), a few levels (a count), a long right tail (an income); and classes that
change where such a feature crosses a value (is it zero or not), which a random forest finds at once and a model
trained on smooth functions of standardised inputs does not. This prior draws such datasets, as the forest-based
generators of TabForestPFN (den Breejen et al., 2024) do.

For a dataset with :math:`d` features and :math:`C` classes:

1. **Features**, each of a kind drawn per feature: standard normal, uniform, log-normal
   (:math:`e^{s z}`, :math:`s` uniform on 0.5 ... 1.5), zero-inflated (zero with a probability uniform on
   0.2 ... 0.7, else log-normal), or discrete (a normal rounded to one to three levels per standard deviation);
   and, where their weights are set, heavy-tailed (Student-t with 1 to 4 degrees of freedom: a few points far out,
   as a glass's calcium or refractive index has) or bimodal (two normal clusters 3 to 10 standard deviations
   apart, the second holding 15 to 85% of the points, as magnesium in glass is near zero or near 3.5).
2. **Trees.** :math:`T` trees of depth :math:`D` (uniform on 1 ... ``max_trees`` and 1 ... ``max_depth``, both drawn
   once per batch), each internal node splitting on one of the dataset's relevant features (a random non-empty
   subset, its size uniform on 1 ... d) at the value of a random context point: a threshold inside the data,
   which for a zero-inflated feature is zero as often as the feature is.
3. **Label.** Each internal node holds a standard normal effect per class, added on its right branch and
   subtracted on its left; a leaf's value is the sum of the effects on its path divided by :math:`\sqrt{D}`
   (standard normal per class, and leaves that share more of their path have closer values, as a boosted tree's
   do: a split moves every leaf below it the same way). The classes' logits are
   :math:`s \sum_t v_t(x) / \sqrt{T} + b_c`, with a sharpness :math:`s` (log-normal) and class biases
   :math:`b_c \sim N(0, \text{class\_bias\_std}^2)`; labels are drawn from their softmax mixed with the uniform
   distribution by a label-noise level (zero for half of the datasets).

Each feature is then negated with probability 1/2. A tree compares a feature with a value of the same feature, so
the labels move with no positive affine (or any increasing) change of a feature's units; the prior is invariant
to reflecting and to reordering features and to relabelling classes.

Every dataset states its classes' probabilities at each point (:class:`LabelProbabilities`), so training scores
the network against them (:meth:`TreeClassificationPrior.conditional`). Like the SCM and factor priors it is a
component of the tabular prior for real data; ``references()`` is empty (nothing here computes the posterior over
random trees).
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

__all__ = ["TreeClassificationParams", "TreeClassificationPrior", "tree_logits"]

#: The kinds of feature, in the order of ``TreeClassificationPrior.kind_weights``.
FEATURE_KINDS = ("normal", "uniform", "lognormal", "zero_inflated", "discrete")
#: Kinds weighed by their own fields (``heavy_tailed_weight``, ``bimodal_weight``), zero by default, so that a
#: prior stated before they existed draws exactly what it drew then.
EXTRA_KINDS = ("heavy_tailed", "bimodal")


def tree_logits(x: Tensor, features: Tensor, thresholds: Tensor, leaves: Tensor) -> Tensor:
    """The sum over trees of each point's leaf values: x `batch x n x d`; per tree, the internal nodes' features
    (`batch x T x nodes`, int64) and thresholds (`batch x T x nodes`), in heap order (node i's children are
    2i + 1, left for x <= threshold, and 2i + 2); leaves `batch x T x 2^D x C`. Returns `batch x n x C`."""
    b, n, _ = x.shape
    trees, nodes = features.shape[1], features.shape[2]
    depth = int(round(math.log2(nodes + 1)))
    node = torch.zeros(b, trees, n, dtype=torch.int64)
    values = x.unsqueeze(1).expand(b, trees, n, x.shape[-1])
    for _ in range(depth):
        feature = features.gather(2, node)  # b x T x n
        value = values.gather(3, feature.unsqueeze(-1)).squeeze(-1)
        right = value > thresholds.gather(2, node)
        node = 2 * node + 1 + right.long()
    leaf = node - nodes  # b x T x n, in 0 ... 2^D - 1
    picked = leaves.gather(2, leaf.unsqueeze(-1).expand(b, trees, n, leaves.shape[-1]))  # b x T x n x C
    return picked.sum(dim=1)


def _path_signs(depth: int) -> Tensor:
    """`2^depth x (2^depth - 1)`: +1 where an internal node (heap order) is passed on the way to a leaf by its
    right branch, -1 by its left, 0 where it is off the path."""
    nodes = 2 ** depth - 1
    signs = torch.zeros(nodes + 1, nodes, dtype=torch.float64)
    for leaf in range(nodes + 1):
        node = nodes + leaf
        while node > 0:
            parent = (node - 1) // 2
            signs[leaf, parent] = 1.0 if node == 2 * parent + 2 else -1.0
            node = parent
    return signs


@dataclass(frozen=True, eq=False)
class TreeClassificationParams(LabelProbabilities):
    """What a dataset was drawn with: each point's class probabilities (``probs``, `batch x n x C`), the trees'
    split features and thresholds (`batch x T x nodes`, in the features' units before any reflection) and leaf
    values (`batch x T x 2^D x C`), the sharpness (`batch`), the class biases (`batch x C`), and each feature's
    sign (`batch x d`: -1 where it was reflected after the labels were drawn)."""

    features: Tensor
    thresholds: Tensor
    leaves: Tensor
    sharpness: Tensor
    biases: Tensor
    signs: Tensor


@register
@dataclass(frozen=True)
class TreeClassificationPrior(TabularLabelPrior):
    """Datasets of mixed-kind features and classes from sums of random trees (see the module docstring).

    Fields:
        max_features: the most input features.
        max_trees: the number of trees is uniform on 1 ... max_trees (one per batch).
        max_depth: the trees' depth is uniform on 1 ... max_depth (one per batch).
        kind_weights: relative probabilities of a feature being normal, uniform, log-normal, zero-inflated or
            discrete.
        heavy_tailed_weight, bimodal_weight: relative probabilities, on kind_weights' scale, of a heavy-tailed or
            a bimodal feature (default 0: neither is drawn).
        sharpness_loc, sharpness_scale: log of the sharpness is normal with these (mean in [-5, 5], standard
            deviation at most 2).
        class_bias_std: standard deviation of each class's bias (class imbalance).
        max_label_noise: a noisy dataset's label-noise level is uniform below this.
        min_classes, max_classes: the number of classes of a batch is uniform on this range, and at most the
            context's size.
    """

    max_features: int = 8
    max_trees: int = 4
    max_depth: int = 4
    kind_weights: tuple[float, ...] = (0.3, 0.15, 0.2, 0.2, 0.15)
    heavy_tailed_weight: float = 0.0
    bimodal_weight: float = 0.0
    sharpness_loc: float = 1.0
    sharpness_scale: float = 0.7
    class_bias_std: float = 0.5
    max_label_noise: float = 0.05
    min_classes: int = 2
    max_classes: int = 10

    def __post_init__(self) -> None:
        check_int("max_features", self.max_features, minimum=1)
        check_int("max_trees", self.max_trees, minimum=1)
        check_int("max_depth", self.max_depth, minimum=1, maximum=8)
        for name in ("heavy_tailed_weight", "bimodal_weight"):
            object.__setattr__(self, name, float(check_float(name, getattr(self, name), minimum=0.0)))
        weights = tuple(self.kind_weights) if isinstance(self.kind_weights, (tuple, list)) else ()
        if (len(weights) != len(FEATURE_KINDS) or not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0
                                                          for w in weights)
                or not sum(weights) + self.heavy_tailed_weight + self.bimodal_weight > 0):
            raise ValueError(f"kind_weights must be {len(FEATURE_KINDS)} finite non-negative weights for "
                             f"{', '.join(FEATURE_KINDS)}, not all zero unless heavy_tailed_weight or bimodal_weight "
                             f"is set; got {self.kind_weights!r}")
        object.__setattr__(self, "kind_weights", tuple(float(w) for w in weights))
        check_float("sharpness_loc", self.sharpness_loc, minimum=-5.0, maximum=5.0)
        check_float("sharpness_scale", self.sharpness_scale, minimum=0.0, maximum=2.0)
        check_float("class_bias_std", self.class_bias_std, minimum=0.0, maximum=10.0)
        check_float("max_label_noise", self.max_label_noise, minimum=0.0, maximum=1.0)
        check_int("min_classes", self.min_classes, minimum=2)
        check_int("max_classes", self.max_classes, minimum=self.min_classes)

    def sample(self, batch_size: int, n_points: int, generator: torch.Generator, n_features: int | None = None,
               device: torch.device | str | None = None, n_context: int | None = None,
               n_classes: int | None = None) -> Batch:
        """``batch_size`` datasets of ``n_points`` points with ``n_features`` features (default: all) and
        ``n_classes`` classes (default: drawn, at most n_context); thresholds are values of the first
        ``n_context`` points (default: all). x `batch x n x d`, y `batch x n` labels, float64; ``device`` is
        accepted for the prior protocol and not used."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        d, n_context = sample_arguments(batch_size, n_points, n_features, n_context, self.max_features)
        n_classes = number_of_classes(self, n_context, generator, n_classes)
        g, b, n, f64 = generator, batch_size, n_points, torch.float64

        def uniform(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=g, dtype=f64)

        x = self._features(b, n, d, uniform, g)
        trees = int(torch.randint(1, self.max_trees + 1, (1,), generator=g))
        depth = int(torch.randint(1, self.max_depth + 1, (1,), generator=g))
        nodes = 2 ** depth - 1
        relevant = uniform(b, d).argsort(dim=1)  # the first k of a random order of the features
        count = torch.randint(1, d + 1, (b, 1), generator=g)
        slot = (uniform(b, trees, nodes) * count[:, :, None]).long()  # uniform on 0 ... count - 1
        features = relevant.gather(1, slot.flatten(1)).view(b, trees, nodes)
        point = torch.randint(0, n_context, (b, trees, nodes), generator=g)
        thresholds = x[:, :n_context].gather(1, point.flatten(1).unsqueeze(-1).expand(b, -1, d)).view(
            b, trees, nodes, d).gather(3, features.unsqueeze(-1)).squeeze(-1)
        effects = torch.randn(b, trees, nodes, n_classes, generator=g, dtype=f64)
        leaves = torch.einsum("lk,btkc->btlc", _path_signs(depth), effects) / math.sqrt(depth)
        sharpness = torch.exp(self.sharpness_loc + self.sharpness_scale * torch.randn(b, generator=g, dtype=f64))
        biases = self.class_bias_std * torch.randn(b, n_classes, generator=g, dtype=f64)
        logits = sharpness[:, None, None] * tree_logits(x, features, thresholds, leaves) / math.sqrt(trees)
        probs = torch.softmax(logits + biases[:, None], dim=-1)
        noise = torch.where(uniform(b, 1, 1) < 0.5, torch.zeros(b, 1, 1, dtype=f64),
                            self.max_label_noise * uniform(b, 1, 1))
        probs = (1.0 - noise) * probs + noise / n_classes
        signs = torch.where(uniform(b, d) < 0.5, -1.0, 1.0).to(f64)
        params = TreeClassificationParams(probs=probs, features=features, thresholds=thresholds, leaves=leaves,
                                          sharpness=sharpness, biases=biases, signs=signs)
        return Batch(x=x * signs[:, None], y=draw_labels(probs, g), params=params)

    def _features(self, b: int, n: int, d: int, uniform, g: torch.Generator) -> Tensor:
        """`b x n x d` features, each of a kind drawn by ``kind_weights`` and the extra kinds' weights (module
        docstring); the extra kinds draw nothing from the generator while their weights are zero."""
        f64 = torch.float64
        z = torch.randn(b, n, d, generator=g, dtype=f64)
        spread = 0.5 + uniform(b, 1, d)
        lognormal = torch.exp(spread * z)
        zero = uniform(b, 1, d) * 0.5 + 0.2
        levels = torch.randint(1, 4, (b, 1, d), generator=g).to(f64)
        candidates = [
            z,
            (uniform(b, n, d) - 0.5) * math.sqrt(12.0),
            lognormal,
            torch.where(uniform(b, n, d) < zero, torch.zeros_like(z), torch.exp(spread * torch.randn(
                b, n, d, generator=g, dtype=f64))),
            torch.round(torch.randn(b, n, d, generator=g, dtype=f64) * levels) / levels,
        ]  # b x n x d each
        weights = list(self.kind_weights)
        if self.heavy_tailed_weight > 0 or self.bimodal_weight > 0:
            dof = torch.randint(1, 5, (b, 1, d, 1), generator=g)  # Student-t: z / sqrt(chi2_dof / dof)
            squares = torch.randn(b, n, d, 4, generator=g, dtype=f64).square()
            chi2 = (squares * (torch.arange(4) < dof)).sum(-1)
            student = torch.randn(b, n, d, generator=g, dtype=f64) / torch.sqrt(chi2 / dof.squeeze(-1))
            share = 0.15 + 0.7 * uniform(b, 1, d)
            apart = 3.0 + 7.0 * uniform(b, 1, d)
            bimodal = torch.randn(b, n, d, generator=g, dtype=f64) + apart * (uniform(b, n, d) < share)
            candidates += [student, bimodal]
            weights += [self.heavy_tailed_weight, self.bimodal_weight]
        candidates = torch.stack(candidates, dim=-1)  # b x n x d x kinds
        weights = torch.tensor(weights, dtype=f64)
        kind = torch.multinomial(weights / weights.sum(), b * d, replacement=True, generator=g).view(b, 1, d, 1)
        return candidates.gather(3, kind.expand(b, n, d, 1)).squeeze(-1)
