"""The normal prior: x ~ N(0, I), the baseline of standard ControlNet inference (section 3.1)."""

from __future__ import annotations

import torch

from .base import NoisePrior
from .registry import register


@register("normal")
class NormalPrior(NoisePrior):
    """Pure N(0, I). Noised to any step by Eq. 6 it stays N(0, I), so at every mu it is the baseline."""

    needs_fit = False

    def __init__(self, num_classes, latent_shape, **options):
        super().__init__(num_classes, latent_shape, **options)
        self._stats = {}

    def _accumulate(self, x, labels):
        pass  # nothing to learn

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.latent_shape, dtype=torch.float64)

    @property
    def var(self) -> torch.Tensor:
        return torch.ones(self.latent_shape, dtype=torch.float64)

    def token_stats(self, labels):
        B = labels.shape[0]
        shape = (B, *self.latent_shape)
        return torch.zeros(shape), torch.ones(shape)
