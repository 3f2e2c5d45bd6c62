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
from .registry import available, create, get_prior_class


# (variant, protocol knob, knob value) -> the registered variant that implements it (docs/protocol.md)
PROTOCOL_VARIANTS = {
    ("categorical", "categorical_statistic", "one_token_per_image"): "categorical_one_token",
    ("joint", "joint_fallback", "spatial_if_empty"): "joint_empty_to_spatial",
}


def protocol_variant(bench, variant: str) -> str:
    """The registered variant that ``variant`` names under the benchmark's protocol
    (``joint`` -> ``joint_empty_to_spatial`` under the official joint fallback); others unchanged."""
    proto = getattr(bench, "protocol", None)
    for (name, knob, value), impl in PROTOCOL_VARIANTS.items():
        if variant == name and proto is not None and proto[knob] == value:
            return impl
    return variant


def reference_latent_set(bench, variant: str) -> str:
    """The latent set (``encode-latents --split``) ``variant`` is fitted on: ``train_joint`` for a
    joint prior under the protocol's ``joint_reference: quarter_of_split`` (the official joint
    prior's quarter of the split, noise_prior.py:189,205-208), else ``train`` (the N drawn images)."""
    proto = getattr(bench, "protocol", None)
    if proto is not None and proto["joint_reference"] == "quarter_of_split" and variant in available():
        if get_prior_class(protocol_variant(bench, variant)).joint_reference:
            return "train_joint"
    return "train"


def prior_for_benchmark(bench, variant: str):
    """An unfitted prior of ``variant`` (as the protocol implements it, :func:`protocol_variant`)
    with the benchmark's classes, latent shape and prior options."""
    opts = dict(bench.get("prior_options") or {})
    num_classes, opts["ignore_slot"] = class_slots(bench)
    return create(protocol_variant(bench, variant), num_classes=num_classes, latent_shape=bench.latent_shape, **opts)


def class_slots(bench) -> tuple[int, int | None]:
    """(classes the prior keeps statistics for, the slot of the ignore label or None): under the
    protocol's ``ignore_labels: fitted_as_class`` the ignore label is one more class, fitted like
    the others (the official 256-slot tables, noise_prior.py:147-151)."""
    num_classes = num_classes_for(bench)
    proto = getattr(bench, "protocol", None)
    if proto is not None and proto["ignore_labels"] == "fitted_as_class":
        return num_classes + 1, num_classes
    return num_classes, None


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
        prior = load(prior_path, variant=protocol_variant(bench, variant))
    else:
        prior = prior_for_benchmark(bench, variant)
    slots = class_slots(bench)
    if (prior.num_classes, prior.ignore_slot) != slots:
        raise InputError(
            f"{prior_path}: prior has {prior.num_classes} classes (ignore slot {prior.ignore_slot}), the benchmark's "
            f"protocol expects {slots[0]} (ignore slot {slots[1]}; knob ignore_labels)"
        )
    if tuple(prior.latent_shape) != tuple(bench.latent_shape):
        raise InputError(
            f"{prior_path}: prior latent shape {tuple(prior.latent_shape)} is not the benchmark's {bench.latent_shape}"
        )
    return prior
