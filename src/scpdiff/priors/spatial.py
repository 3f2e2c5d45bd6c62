"""The spatial prior N_spatial (Eq. 5): one Gaussian per latent position and channel."""

from __future__ import annotations

from .fitted import FittedPrior
from .registry import register


@register("spatial")
class SpatialPrior(FittedPrior):
    """Mean and population variance of the reference latents per (channel, y, x), masks unused."""

    def fitted_stats(self):
        """float64 ``[channels, h, w]`` (Eq. 5)."""
        return self.spatial_stats()

    def token_stats(self, labels):
        mean, var = self.spatial_stats()
        shape = (labels.shape[0], *self.latent_shape)
        return mean.float().expand(shape), var.float().expand(shape)
