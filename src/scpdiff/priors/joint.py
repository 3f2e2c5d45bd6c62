"""The spatial-categorical joint prior N_joint,x,y,c (Eq. 8), SCP-Diff's prior.

One Gaussian per (class, channel, y, x). Fallbacks, in order:

- a cell seen fewer than ``min_count`` times takes its class's categorical statistics (Eq. 7),
  as the paper prescribes for cells whose "sample size is excessively small";
- a class never seen at all takes the spatial statistics (Eq. 5) at that position;
- a token with the ignore label takes the spatial statistics at its position.

Default ``min_count`` = 10: the population variance of n draws has a relative standard error of
about sqrt(2/n), i.e. above 45 % below 10 tokens, and a cell seen once would have zero variance and
collapse its samples to one point. With the paper's N = 10,000 reference images, cells below 10
tokens are the rare class-at-an-unusual-place cases the paper describes.
"""

from __future__ import annotations

import torch

from .fitted import FittedPrior
from .moments import mean_var
from .registry import register

DEFAULT_MIN_COUNT = 10


@register("joint")
class JointPrior(FittedPrior):
    joint_reference = True  # the protocol's joint_reference images (NoisePrior)

    def __init__(self, num_classes, latent_shape, *, min_count: int | None = DEFAULT_MIN_COUNT, **options):
        super().__init__(num_classes, latent_shape, min_count=DEFAULT_MIN_COUNT if min_count is None else min_count, **options)
        if self.min_count < 1:
            from ..errors import InputError

            raise InputError(f"min_count must be >= 1, got {self.min_count}")
        ch, h, w = self.latent_shape
        f64 = dict(dtype=torch.float64)
        self._stats.update(
            cell_count=torch.zeros(self.num_classes, h, w, **f64),
            cell_sum=torch.zeros(self.num_classes, ch, h, w, **f64),
            cell_sumsq=torch.zeros(self.num_classes, ch, h, w, **f64),
        )

    def _accumulate_classes(self, x, labels):
        count, total, total_sq = self._class_grouped_sums(x, labels)
        s = self._stats
        s["cell_count"] += count.to(torch.float64)
        s["cell_sum"] += total
        s["cell_sumsq"] += total_sq

    def fitted_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 ``[num_classes, channels, h, w]`` (Eq. 8) after the fallbacks."""
        s = self._stats
        count = s["cell_count"].unsqueeze(1)  # [C, 1, h, w]
        mean, var = mean_var(count, s["cell_sum"], s["cell_sumsq"])
        class_count = s["cell_count"].sum((1, 2))
        cmean, cvar = mean_var(
            class_count.view(-1, 1, 1, 1), s["cell_sum"].sum((2, 3), keepdim=True), s["cell_sumsq"].sum((2, 3), keepdim=True)
        )
        smean, svar = self.spatial_stats()
        rare = count < self.min_count
        unseen = (class_count == 0).view(-1, 1, 1, 1)
        mean = torch.where(unseen, smean.unsqueeze(0), torch.where(rare, cmean, mean))
        var = torch.where(unseen, svar.unsqueeze(0), torch.where(rare, cvar, var))
        return mean, var

    def token_stats(self, labels):
        mean, var = (t.float() for t in self.fitted_stats())
        C, ch, h, w = mean.shape
        B = labels.shape[0]
        idx = labels.clamp(0, C - 1).view(B, 1, h, w).expand(B, ch, h, w)
        # gather along the class axis: token (b, y, x) reads mean[label[b, y, x], :, y, x]
        tok_mean = torch.gather(mean.unsqueeze(0).expand(B, C, ch, h, w), 1, idx.unsqueeze(1)).squeeze(1)
        tok_var = torch.gather(var.unsqueeze(0).expand(B, C, ch, h, w), 1, idx.unsqueeze(1)).squeeze(1)
        return self._with_spatial_at_ignore(labels, tok_mean, tok_var)
