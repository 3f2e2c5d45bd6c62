"""The spatial prior N_spatial (Eq. 5): one Gaussian per latent position and channel."""

from __future__ import annotations

import torch

from .fitted import FittedPrior
from .registry import register


@register("spatial")
class SpatialPrior(FittedPrior):
    """Mean and population variance of the reference latents per (channel, y, x), masks unused."""

    @property
    def mean(self) -> torch.Tensor:
        return self.spatial_stats()[0]

    @property
    def var(self) -> torch.Tensor:
        return self.spatial_stats()[1]

    def token_stats(self, labels):
        mean, var = self.spatial_stats()
        shape = (labels.shape[0], *self.latent_shape)
        return mean.float().expand(shape), var.float().expand(shape)
