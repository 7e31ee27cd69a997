"""A BoTorch ``Model`` whose posterior is the PFN's, so BoTorch's acquisitions and ``optimize_acqf`` run on it.

``PFNModel(train_X, train_Y)`` conditions the PFN on the data in one forward pass (no hyperparameter fitting);
``posterior(X)`` for ``X`` of shape ``batch x q x d`` returns a :class:`PFNPosterior`:

- ``mean`` and ``variance`` are the bar distribution's winsorised at ``TAIL_ALPHA`` on each side (as
  ``PFNRegressor``'s), differentiable in ``X``; BoTorch's analytic
  acquisitions (``LogExpectedImprovement``, ``UpperConfidenceBound``) read these, and so treat the predictive as
  Gaussian with those moments;
- ``rsample_from_base_samples`` maps BoTorch's normal base samples through the normal CDF and the bar
  distribution's inverse CDF (reparameterised, differentiable in ``X``). For ``q > 1`` the samples are joint:
  the PFN is conditioned on the observations plus the sample's own values at the earlier points of the
  q-batch (the chain rule). MC acquisitions (``qLogExpectedImprovement``) therefore see the PFN's joint
  posterior; each MC sample costs one more context encoding per point after the first, so keep the sample
  count and ``raw_samples`` modest for ``q > 1``.

BoTorch maximises; the PFN's prior is symmetric under ``y -> -y``, so nothing is negated here.
"""

from __future__ import annotations

import torch
from botorch.models.model import Model
from botorch.posteriors.posterior import Posterior
from botorch.sampling.get_sampler import GetSampler
from botorch.sampling.normal import SobolQMCNormalSampler
from torch import Tensor

from priorfit.bo.surrogate import PFNSurrogate
from priorfit.predictive.bar import TAIL_ALPHA

__all__ = ["PFNModel", "PFNPosterior"]


class PFNModel(Model):
    """The PFN conditioned on ``train_X`` (`n x d`) and ``train_Y`` (`n x 1`), as a single-output BoTorch model.

    Args:
        train_X, train_Y: the observations (any units; the PFN's estimator path normalises them).
        model: a shipped model's name or a checkpoint path (default "bo"; None: ``invariant_default``).
    """

    _num_outputs = 1

    def __init__(self, train_X: Tensor, train_Y: Tensor, model="bo") -> None:
        super().__init__()
        if train_X.ndim != 2 or train_Y.shape != (train_X.shape[0], 1):
            raise ValueError(f"train_X must be n x d and train_Y n x 1, got {tuple(train_X.shape)} and "
                             f"{tuple(train_Y.shape)}")
        self.train_inputs = (train_X,)
        self.train_targets = train_Y[:, 0]
        self.surrogate = PFNSurrogate(model, train_X.detach().double().numpy(),
                                      train_Y[:, 0].detach().double().numpy())

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def posterior(self, X: Tensor, output_indices=None, observation_noise=False, posterior_transform=None,
                  **kwargs) -> Posterior:
        if output_indices not in (None, [0]):
            raise ValueError(f"the PFN model has one output; output_indices must be None or [0], got "
                             f"{output_indices!r}")
        posterior = PFNPosterior(self.surrogate, X)
        return posterior if posterior_transform is None else posterior_transform(posterior)


class PFNPosterior(Posterior):
    """The PFN's posterior at ``X`` (`batch x q x d`): marginal moments and joint reparameterised samples."""

    def __init__(self, surrogate: PFNSurrogate, X: Tensor) -> None:
        if X.ndim < 2:
            raise ValueError(f"X must be ... x q x d, got shape {tuple(X.shape)}")
        self.surrogate = surrogate
        self.X = X
        self._loc, self._scale = surrogate.target_affine
        self._moments_cache: tuple[Tensor, Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return self.X.device

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    def _marginal_logits(self) -> Tensor:
        flat = self.X.reshape(-1, self.X.shape[-1]).to(torch.float64)
        return self.surrogate.logits(flat).to(torch.float64).reshape(*self.X.shape[:-1], -1)

    def _moments(self) -> tuple[Tensor, Tensor]:
        """The winsorised mean and variance of the bars (one forward pass for both, kept for this posterior)."""
        if self._moments_cache is None:
            self._moments_cache = self.surrogate.bars.winsorized_moments(self._marginal_logits(), TAIL_ALPHA)
        return self._moments_cache

    @property
    def mean(self) -> Tensor:
        return (self._loc + self._scale * self._moments()[0]).unsqueeze(-1).to(self.dtype)

    @property
    def variance(self) -> Tensor:
        return (self._scale**2 * self._moments()[1]).unsqueeze(-1).to(self.dtype)

    def _extended_shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:  # noqa: B008
        return torch.Size(sample_shape) + self.X.shape[:-1] + torch.Size([1])

    @property
    def base_sample_shape(self) -> torch.Size:
        return self.X.shape[:-1] + torch.Size([1])

    @property
    def batch_range(self) -> tuple[int, int]:
        return (0, -2)

    def rsample(self, sample_shape: torch.Size | None = None) -> Tensor:
        sample_shape = torch.Size([1]) if sample_shape is None else torch.Size(sample_shape)
        base = torch.randn(sample_shape + self.base_sample_shape, dtype=torch.float64, device=self.device)
        return self.rsample_from_base_samples(sample_shape, base)

    def rsample_from_base_samples(self, sample_shape: torch.Size, base_samples: Tensor) -> Tensor:
        """Joint samples ``sample_shape x batch x q x 1``: each point's uniform ``Phi(base)`` pushed through the
        inverse CDF of the PFN conditioned on the earlier points' sampled values."""
        s = self.surrogate
        shape = torch.Size(sample_shape) + self.X.shape[:-1]  # S... x batch... x q
        q, d = self.X.shape[-2], self.X.shape[-1]
        u = torch.special.ndtr(base_samples.expand(*shape, 1)[..., 0].to(torch.float64))
        u = u.clamp(1e-12, 1 - 1e-12).reshape(-1, q)  # B x q, B = every sample and batch
        x = s._to_model_inputs(self.X.to(torch.float64)).expand(*shape, d).reshape(-1, q, d)
        values, _ = s.chain(x, lambda logits, j: s.bars.icdf(logits.to(torch.float64), u[:, j]),
                            final_context=False)
        return values.reshape(*shape, 1).to(self.dtype)


@GetSampler.register(PFNPosterior)
def _pfn_sampler(posterior: PFNPosterior, sample_shape: torch.Size, *, seed: int | None = None):
    """BoTorch's default sampler for the PFN's posterior: quasi-MC normal base samples, fixed per acquisition
    (so its value is deterministic, as ``optimize_acqf``'s L-BFGS-B needs)."""
    return SobolQMCNormalSampler(sample_shape=sample_shape, seed=seed)
