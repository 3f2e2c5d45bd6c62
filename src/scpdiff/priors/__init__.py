"""Noise priors for semantic image synthesis (paper sections 3.2-4.3), a registry by name.

    prior = scpdiff.priors.create("joint", num_classes=C, latent_shape=(4, h, w), min_count=10)
    prior.update(latents, masks)      # streams: float64 sufficient statistics only
    prior.merge(other_shard)
    prior.save("joint.safetensors"); prior = scpdiff.priors.load("joint.safetensors")
    x = prior.sample(masks, generator=g)   # float32 [B, 4, h, w]

Variants: ``normal`` (N(0, I), the baseline), ``spatial`` (Eq. 5), ``categorical`` (Eq. 7),
``joint`` (Eq. 8, SCP-Diff) and ``oracle`` (Eq. 4, the paired real latent); ``official_spatial``,
``official_categorical`` and ``official_joint`` hold the authors' released statistics
(:mod:`.official`, ``scpdiff import-priors``). New variants:
see :mod:`scpdiff.priors.registry`. The file format: :mod:`.file_format`; a benchmark's priors
(fitted on its latent shards, read back and checked): :mod:`.for_benchmark`; a fitted prior with
scaled variances (e.g. for a prior made by a workflow rule): :mod:`.variance_scaling`.

May import :mod:`scpdiff.latents` (the shard files), :mod:`scpdiff.datasets` (class counts),
:mod:`scpdiff.registry`, :mod:`scpdiff.utils` and :mod:`scpdiff.errors`.
"""

from __future__ import annotations

from .base import NoisePrior, standard_normal
from .file_format import load, merge_prior_files
from .masks import downsample_mask
from .registry import available, create, get_prior_class, register


__all__ = [
    "NoisePrior",
    "available",
    "create",
    "downsample_mask",
    "get_prior_class",
    "load",
    "merge_prior_files",
    "register",
    "standard_normal",
]
