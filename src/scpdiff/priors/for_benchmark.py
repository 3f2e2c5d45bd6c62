"""A benchmark's priors: built with its classes, latent shape and prior options, fitted on its
reference-latent shards, or read back from a prior file and checked against it.

    prior = fit_prior_on_shards(bench, "joint", ["train-0000.safetensors", ...])   # Eqs. 5, 7, 8
    prior = benchmark_prior(bench, "joint", "joint.safetensors")                  # for generation
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..datasets import num_classes_for
from ..errors import InputError
from ..latents.shards import read_latent_shard
from .file_format import load
from .registry import available, create, get_prior_class


def prior_for_benchmark(bench, variant: str):
    """An unfitted prior of ``variant`` with the benchmark's classes, latent shape and prior options."""
    opts = dict(bench.get("prior_options") or {})
    return create(variant, num_classes=num_classes_for(bench), latent_shape=bench.latent_shape, **opts)


def fit_prior_on_shards(bench, variant: str, shard_paths: Sequence[str], batch_size: int = 256):
    """``variant`` fitted on the latent shards (``encode-latents``), ``batch_size`` latents per update.

    The batch size changes memory only: the statistics are float64 sums. The provenance (VAE,
    scaling factor, dataset) is taken from the first shard that records it.
    """
    prior = prior_for_benchmark(bench, variant)
    for path in shard_paths:
        shard = read_latent_shard(path)
        for k in ("vae", "scaling_factor", "dataset"):
            prior.provenance[k] = prior.provenance.get(k) or str(shard.metadata.get(k, ""))
        n = shard.latents.shape[0]
        for i in range(0, n, batch_size):
            prior.update(shard.latents[i : i + batch_size], shard.masks[i : i + batch_size].to(torch.long))
    return prior


def benchmark_prior(bench, variant: str, prior_path: str | None):
    """The prior for ``variant``: read from ``prior_path`` when it must be fitted, else built.

    A name that is not registered is a prior some workflow rule wrote (the config's
    ``extra_rules``): ``prior_path`` is its file, whose recorded variant gives the class.
    """
    if variant not in available():
        if prior_path is None:
            raise InputError(f"unknown prior variant {variant!r}: not registered (registered: {', '.join(available())}); "
                             "a prior made by a workflow rule is read from its file: pass --prior FILE")
        prior = load(prior_path)
    elif get_prior_class(variant).needs_fit:
        if prior_path is None:
            raise InputError(f"the {variant!r} prior must be fitted: pass --prior FILE (scpdiff fit-prior)")
        prior = load(prior_path, variant=variant)
    else:
        prior = prior_for_benchmark(bench, variant)
    if tuple(prior.latent_shape) != tuple(bench.latent_shape):
        raise InputError(
            f"{prior_path}: prior latent shape {tuple(prior.latent_shape)} is not the benchmark's {bench.latent_shape}"
        )
    return prior
