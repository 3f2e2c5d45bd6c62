"""The categorical prior N_categorical,c (Eq. 7): one Gaussian per class and channel.

A class never seen among the reference tokens takes the pooled statistics of all tokens; a token with
the ignore label takes the spatial statistics (Eq. 5) at its position.
"""

from __future__ import annotations

import torch

from .fitted import FittedPrior
from .moments import mean_var
from .registry import register


@register("categorical")
class CategoricalPrior(FittedPrior):
    def __init__(self, num_classes, latent_shape, **options):
        super().__init__(num_classes, latent_shape, **options)
        ch = self.latent_shape[0]
        f64 = dict(dtype=torch.float64)
        self._stats.update(
            class_count=torch.zeros(self.num_classes, **f64),
            class_sum=torch.zeros(self.num_classes, ch, **f64),
            class_sumsq=torch.zeros(self.num_classes, ch, **f64),
        )

    def _accumulate_classes(self, x, labels):
        B, ch, h, w = x.shape
        # Tokens as a [tokens, channels, 1, 1] batch: the grouped sums then run over classes alone.
        tokens = x.permute(0, 2, 3, 1).reshape(B * h * w, ch, 1, 1)
        count, total, total_sq = self._class_grouped_sums(tokens, labels.reshape(B * h * w, 1, 1))
        s = self._stats
        s["class_count"] += count.view(-1).to(torch.float64)
        s["class_sum"] += total.view(self.num_classes, ch)
        s["class_sumsq"] += total_sq.view(self.num_classes, ch)

    def fitted_stats(self):
        """float64 ``[num_classes, channels]`` (Eq. 7; unseen classes: pooled statistics)."""
        s = self._stats
        mean, var = mean_var(s["class_count"].unsqueeze(1), s["class_sum"], s["class_sumsq"])
        unseen = (s["class_count"] == 0).unsqueeze(1)
        pmean, pvar = self.pooled_stats()
        return torch.where(unseen, pmean, mean), torch.where(unseen, pvar, var)

    def token_stats(self, labels):
        mean, var = (t.float() for t in self.fitted_stats())
        idx = labels.clamp(0, self.num_classes - 1)  # ignore tokens are replaced below
        tok_mean = mean[idx].permute(0, 3, 1, 2)
        tok_var = var[idx].permute(0, 3, 1, 2)
        return self._with_spatial_at_ignore(labels, tok_mean, tok_var)
