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
from ..latents.shards import PROVENANCE_KEYS, check_same_provenance, read_latent_shard, resolution_text
from ..utils.files import check_output_path
from .file_format import load
from .registry import create, get_prior_class


def prior_for_benchmark(bench, variant: str):
    """An unfitted prior of ``variant`` with the benchmark's classes, latent shape and prior options."""
    opts = dict(bench.get("prior_options") or {})
    return create(variant, num_classes=num_classes_for(bench), latent_shape=bench.latent_shape, **opts)


def fit_prior_on_shards(bench, variant: str, shard_paths: Sequence[str], batch_size: int = 256,
                        out: str | None = None):
    """``variant`` fitted on the latent shards (``encode-latents``), ``batch_size`` latents per update.

    The batch size changes memory only: the statistics are float64 sums. Every shard must be at the
    benchmark's resolution and latent shape and share the first shard's provenance (VAE, scaling
    factor, dataset, resolution), which the prior records; a label outside the benchmark's classes
    is an error naming the shard. With ``out`` the prior is saved there (checked before any work).
    """
    if out is not None:
        check_output_path(out, "file", "--out (the prior file)")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if not shard_paths:
        raise InputError("no latent shards given (--latents)")
    prior = prior_for_benchmark(bench, variant)
    first = None
    for path in shard_paths:
        shard = read_latent_shard(path)
        prov = {k: str(shard.metadata.get(k, "")) for k in PROVENANCE_KEYS}
        if prov["resolution"] != resolution_text(bench.resolution):
            raise InputError(f"{path}: latents of {prov['resolution']} images, the benchmark's resolution is "
                             f"{resolution_text(bench.resolution)}")
        if tuple(shard.latents.shape[1:]) != tuple(bench.latent_shape):
            raise InputError(f"{path}: latents of shape {tuple(shard.latents.shape[1:])}, the benchmark's latent "
                             f"shape is {tuple(bench.latent_shape)}")
        if first is None:
            first = (str(path), prov)
            prior.provenance.update(prov)
        else:
            check_same_provenance(first[1], first[0], prov, str(path), "latent shards")
        n = shard.latents.shape[0]
        try:
            for i in range(0, n, batch_size):
                prior.update(shard.latents[i : i + batch_size], shard.masks[i : i + batch_size].to(torch.long))
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    if out is not None:
        prior.save(out)
    return prior


def benchmark_prior(bench, variant: str, prior_path: str | None):
    """The prior for ``variant``: read from ``prior_path`` when it must be fitted, else built."""
    cls = get_prior_class(variant)
    if cls.needs_fit:
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
