"""Noise priors for semantic image synthesis (paper sections 3.2-4.3), a registry by name.

    prior = scpdiff.priors.create("joint", num_classes=C, latent_shape=(4, h, w), min_count=10)
    prior.update(latents, masks)      # streams: float64 sufficient statistics only
    prior.merge(other_shard)
    prior.save("joint.safetensors"); prior = scpdiff.priors.load("joint.safetensors")
    x = prior.sample(masks, generator=g)   # float32 [B, 4, h, w]

Variants: ``normal`` (N(0, I), the baseline), ``spatial`` (Eq. 5), ``categorical`` (Eq. 7),
``joint`` (Eq. 8, SCP-Diff) and ``oracle`` (Eq. 4, the paired real latent). New variants:
see :mod:`scpdiff.priors.registry`.
"""

from __future__ import annotations

import json
import os

import torch

from ..errors import InputError
from .base import NoisePrior, standard_normal
from .masks import downsample_mask
from .registry import available, create, get_prior_class, register


def load(path: str | os.PathLike, variant: str | None = None) -> NoisePrior:
    """Read a prior written by :meth:`NoisePrior.save`, checking variant, shapes and finiteness.

    ``variant``: when given, the file must hold that variant.
    """
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: prior file does not exist")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable safetensors prior file ({exc})") from exc
    if meta.get("format") != "scpdiff-prior":
        raise InputError(f"{path}: not an scpdiff prior file (metadata 'format' is {meta.get('format')!r})")
    name = meta.get("variant", "")
    if variant is not None and name != variant:
        raise InputError(f"{path}: holds a {name!r} prior, expected {variant!r}")
    try:
        cls = get_prior_class(name)
    except Exception as exc:
        raise InputError(f"{path}: unknown prior variant {name!r} (is its module imported?)") from exc
    try:
        latent_shape = json.loads(meta["latent_shape"])
        options = dict(ignore_index=int(meta["ignore_index"]), downsample=meta["downsample"])
        if meta.get("min_count"):
            options["min_count"] = int(meta["min_count"])
        prior = cls(int(meta["num_classes"]), latent_shape, **options)
        prior.num_images = int(meta["num_images"])
        prior.num_tokens = int(meta["num_tokens"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: malformed prior metadata ({exc!r})") from exc
    for key in ("vae", "scaling_factor", "dataset"):
        prior.provenance[key] = meta.get(key, "")
    expected = prior.expected_shapes()
    tensors.pop("_empty", None)
    if set(tensors) != set(expected):
        raise InputError(
            f"{path}: a {name!r} prior must hold tensors {sorted(expected)}, the file has {sorted(tensors)}"
        )
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != expected[key]:
            raise InputError(f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, expected {expected[key]}")
        if not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{path}: tensor {key!r} contains NaN or inf")
        if key.endswith("count") and bool((tensor < 0).any()):
            raise InputError(f"{path}: tensor {key!r} has negative counts")
        prior._stats[key] = tensor.to(torch.float64).clone()
    return prior


__all__ = [
    "NoisePrior",
    "available",
    "create",
    "downsample_mask",
    "get_prior_class",
    "load",
    "register",
    "standard_normal",
]
