"""The prior file: a prior's float64 sufficient statistics and its settings as one safetensors file.

Tensors: the variant's statistics (``state_tensors()``, float64; ``_empty`` when it has none).
String metadata: ``format = scpdiff-prior``, ``format_version``, ``variant``, ``num_classes``,
``latent_shape`` (JSON), ``min_count``, ``ignore_index``, ``downsample``, ``ignore_slot``, ``num_images``,
``num_tokens``, the provenance (``scaling_factor``, ``vae``, ``dataset``, ``resolution``) and
``scpdiff_version``. Shards fitted apart are merged after loading (:func:`merge_prior_files`, which
refuses shards of different provenance), so the file holds sums, not means.

    save_prior(prior, "joint.safetensors")      # what NoisePrior.save does
    prior = load("joint.safetensors", variant="joint")
"""

from __future__ import annotations

import json
import os

import torch

from ..errors import InputError
from ..latents.shards import PROVENANCE_KEYS, check_same_provenance
from ..utils.files import atomic_path, check_output_path
from .registry import get_prior_class

FORMAT_VERSION = "1"


def prior_metadata(prior) -> dict[str, str]:
    """The metadata block of ``prior``'s file (module doc)."""
    from .. import __version__

    return {
        "format": "scpdiff-prior",
        "format_version": FORMAT_VERSION,
        "variant": prior.name,
        "num_classes": str(prior.num_classes),
        "latent_shape": json.dumps(list(prior.latent_shape)),
        "min_count": "" if prior.min_count is None else str(prior.min_count),
        "ignore_index": str(prior.ignore_index),
        "downsample": prior.downsample,
        "ignore_slot": "" if prior.ignore_slot is None else str(prior.ignore_slot),
        "num_images": str(prior.num_images),
        "num_tokens": str(prior.num_tokens),
        "scaling_factor": str(prior.provenance.get("scaling_factor", "")),
        "vae": str(prior.provenance.get("vae", "")),
        "dataset": str(prior.provenance.get("dataset", "")),
        "resolution": str(prior.provenance.get("resolution", "")),
        "scpdiff_version": __version__,
    }


def save_prior(prior, path: str | os.PathLike) -> None:
    """Write ``prior``'s statistics and metadata as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in prior.state_tensors().items()}
    if not tensors:  # safetensors wants at least the header; keep one marker tensor
        tensors = {"_empty": torch.zeros(0, dtype=torch.float64)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=prior_metadata(prior))


def load(path: str | os.PathLike, variant: str | None = None):
    """Read a prior written by :func:`save_prior` (a :class:`~scpdiff.priors.base.NoisePrior` of the
    registered variant the file names), checking variant, shapes and finiteness. No annotation
    names the class: base.py imports this module, and this one stays below it.

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
        if meta.get("ignore_slot"):
            options["ignore_slot"] = int(meta["ignore_slot"])
        prior = cls(int(meta["num_classes"]), latent_shape, **options)
        prior.num_images = int(meta["num_images"])
        prior.num_tokens = int(meta["num_tokens"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: malformed prior metadata ({exc!r})") from exc
    for key in PROVENANCE_KEYS:
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


def merge_prior_files(paths, out: str | os.PathLike):
    """Merge prior shards written by ``fit-prior`` into one prior saved at ``out``; return it.

    Every shard must hold the first one's variant, settings and provenance (VAE, scaling factor,
    dataset, resolution); a mismatch is an :class:`InputError` naming both files, raised before
    anything is written. ``out`` must not be a folder.
    """
    check_output_path(out, "file", "--out (the merged prior)")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise InputError("merge-priors: no prior files given")
    merged = load(paths[0])
    for path in paths[1:]:
        other = load(path)
        if other.name != merged.name:
            raise InputError(f"cannot merge: {path} holds a {other.name!r} prior, expected {merged.name!r} like {paths[0]}")
        check_same_provenance(merged.provenance, paths[0], other.provenance, path, "prior shards")
        try:
            merged.merge(other)
        except InputError as exc:
            raise InputError(f"{path} and {paths[0]}: {exc}") from None
    merged.save(out)
    return merged
