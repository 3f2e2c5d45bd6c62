"""The oracle prior N_{x0, muT} (Eq. 4): the paired real image's own latent, noised to mu*T.

It is the upper bound of the paper's Fig. 3 analysis: denoising from it isolates the error of score
matching from the error of the inference prior. ``sample`` returns the given latents unchanged;
the sampler applies Eq. 4 (= Eq. 6 with x = x0).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .base import NoisePrior
from .registry import register


@register("oracle")
class OraclePrior(NoisePrior):
    needs_fit = False
    requires_latents = True

    def __init__(self, num_classes, latent_shape, **options):
        super().__init__(num_classes, latent_shape, **options)
        self._stats = {}

    def _accumulate(self, x, labels):
        pass

    def sample(self, masks, generator=None, latents=None):
        lab = self.latent_labels(masks)
        if latents is None:
            raise InputError("the oracle prior needs the paired real latents: pass latents=x0")
        x0 = self._check_latents(latents, lab.shape[0])
        return x0.to(torch.as_tensor(masks).device, torch.float32)

    def token_stats(self, labels):
        raise InputError("the oracle prior has no per-token statistics; it returns the paired latents")
