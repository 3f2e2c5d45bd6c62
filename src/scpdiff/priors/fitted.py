"""What the fitted priors share: the spatial moments every one of them keeps.

Every fitted variant accumulates the spatial statistics of Eq. 5 (per channel and position, over all
images, whatever the mask says) because they are the documented fallback: tokens with the ignore
label, and (joint prior) classes never seen, take the spatial statistics at their position.
"""

from __future__ import annotations

import torch

from .base import NoisePrior
from .moments import grouped_sums, mean_var


class FittedPrior(NoisePrior):
    def __init__(self, num_classes, latent_shape, **options):
        super().__init__(num_classes, latent_shape, **options)
        f64 = dict(dtype=torch.float64)
        self._stats = {
            "spatial_count": torch.zeros((), **f64),
            "spatial_sum": torch.zeros(self.latent_shape, **f64),
            "spatial_sumsq": torch.zeros(self.latent_shape, **f64),
        }

    def _accumulate(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        s = self._stats
        s["spatial_count"] += x.shape[0]
        s["spatial_sum"] += x.sum(0)
        s["spatial_sumsq"] += (x * x).sum(0)
        self._accumulate_classes(x, labels)

    def _accumulate_classes(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        pass

    def _class_groups(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels as group ids with the ignore label mapped to the dropped group ``num_classes``."""
        return torch.where(labels == self.ignore_index, self.num_classes, labels)

    def _class_grouped_sums(self, x: torch.Tensor, labels: torch.Tensor):
        return grouped_sums(x, self._class_groups(labels), self.num_classes)

    def fitted_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The variant's mean and variance after its fallbacks (float64); see ``mean``/``var``."""
        raise NotImplementedError

    @property
    def mean(self) -> torch.Tensor:
        return self.fitted_stats()[0]

    @property
    def var(self) -> torch.Tensor:
        return self.fitted_stats()[1]

    def spatial_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 5: mean and population variance per (channel, y, x), float64 ``[channels, h, w]``."""
        s = self._stats
        return mean_var(s["spatial_count"], s["spatial_sum"], s["spatial_sumsq"])

    def pooled_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance per channel over every token of every image, float64 ``[channels]``."""
        s = self._stats
        hw = self.latent_shape[1] * self.latent_shape[2]
        return mean_var(s["spatial_count"] * hw, s["spatial_sum"].sum((1, 2)), s["spatial_sumsq"].sum((1, 2)))

    def _with_spatial_at_ignore(self, labels, mean, var):
        """Replace the statistics of ignore-label tokens by the spatial ones at their position."""
        ignore = (labels == self.ignore_index).unsqueeze(1)
        if bool(ignore.any()):
            smean, svar = (t.float().unsqueeze(0) for t in self.spatial_stats())
            mean = torch.where(ignore, smean, mean)
            var = torch.where(ignore, svar, var)
        return mean, var
