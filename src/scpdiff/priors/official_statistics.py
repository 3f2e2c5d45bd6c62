"""The categorical and joint priors as the official code reduces them (protocol knobs
``categorical_statistic: one_token_per_image`` and ``joint_fallback: spatial_if_empty``).

AIR-DISCOVER/SCP-Diff-Toolkit @ 859f671 differs from the paper's text (sections 4.2-4.3) in two
statistics, which these two registered variants reproduce; the benchmark's protocol decides which
implementation its ``categorical`` and ``joint`` priors use (:func:`scpdiff.priors.for_benchmark.protocol_variant`).

- ``categorical_one_token`` (noise_prior.py:56-91, 107-110): each reference image contributes ONE
  token per class present in its (downsampled) mask, at a uniformly random position of that class,
  and the class's spread is ``torch.std``, the unbiased (n - 1) estimate. The official draw uses
  Python's ``random`` in image order; here the position comes from a generator seeded by the
  image's latent bytes, so the fit is the same whatever the sharding or batching. (The official cap
  of N tokens per class never binds: N images give at most N tokens.) A class seen once has std NaN
  in the official code; here its variance is 0.
- ``joint_empty_to_spatial`` (noise_prior_inference.py:99-116 with ``fallback="spatial"``): only a
  (class, position) cell seen 0 times takes the spatial prior (Eq. 5) at its position; a cell seen
  once keeps its single value with variance 0; ``prior_options.min_count`` is not used.
"""

from __future__ import annotations

import hashlib

import torch

from .categorical import CategoricalPrior
from .joint import JointPrior
from .moments import mean_var
from .registry import register


def _image_generator(latent: torch.Tensor) -> torch.Generator:
    digest = hashlib.sha256(latent.detach().cpu().contiguous().numpy().tobytes()).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


@register("categorical_one_token")
class OneTokenCategoricalPrior(CategoricalPrior):
    """Eq. 7 on one random token per (image, class), unbiased variance (module doc)."""

    def _accumulate_classes(self, x, labels):
        B, ch, h, w = x.shape
        groups = self._class_groups(labels).reshape(B, h * w)
        tokens = x.reshape(B, ch, h * w)
        s = self._stats
        for b in range(B):
            g = _image_generator(x[b])
            for c in torch.unique(groups[b]).tolist():
                if c == self.num_classes:  # the ignore label (prior_options.ignore_index)
                    continue
                where = torch.nonzero(groups[b] == c).view(-1)
                pick = where[int(torch.randint(len(where), (1,), generator=g))]
                v = tokens[b, :, pick].to(torch.float64)
                s["class_count"][c] += 1
                s["class_sum"][c] += v
                s["class_sumsq"][c] += v * v

    def fitted_stats(self):
        """float64 ``[num_classes, channels]``: mean and unbiased variance (n / (n - 1) times Eq. 7's)."""
        mean, var = super().fitted_stats()
        n = self._stats["class_count"].unsqueeze(1)
        return mean, torch.where(n > 1, var * n / (n - 1).clamp_min(1), var)


@register("joint_empty_to_spatial")
class EmptyToSpatialJointPrior(JointPrior):
    """Eq. 8 with the official fallback: only cells seen 0 times take the spatial prior (module doc)."""

    def fitted_stats(self):
        s = self._stats
        count = s["cell_count"].unsqueeze(1)
        mean, var = mean_var(count, s["cell_sum"], s["cell_sumsq"])
        smean, svar = self.spatial_stats()
        empty = count == 0
        return torch.where(empty, smean.unsqueeze(0), mean), torch.where(empty, svar.unsqueeze(0), var)
