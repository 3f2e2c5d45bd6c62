"""The latent shard file: reference latents and their masks, as written by ``encode-latents``.

safetensors with tensors ``latents`` (float32 ``[n, 4, h, w]``, already multiplied by the VAE's
``scaling_factor``) and ``masks`` (integer ``[n, H, W]`` at image size), and string metadata
``names`` (JSON list of image names), ``dataset``, ``vae``, ``scaling_factor``, ``resolution``
(``HxW``, the masks' size).

The provenance (:data:`PROVENANCE_KEYS`: VAE, scaling factor, dataset, resolution) travels from
the shards into the priors fitted on them; shards or priors of different provenance are never
combined (:func:`check_same_provenance`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

from ..errors import InputError


PROVENANCE_KEYS = ("vae", "scaling_factor", "dataset", "resolution")


def resolution_text(size) -> str:
    h, w = (int(v) for v in size)
    return f"{h}x{w}"


def check_same_provenance(first: dict, first_source: str, other: dict, other_source: str, what: str) -> None:
    """Refuse to combine two files whose VAE, scaling factor, dataset or resolution differ (or that
    record one but not the other), naming both files: merged statistics of latents from different
    VAEs or datasets are a silent wrong prior, and a kept first value would hide the mismatch."""
    for key in PROVENANCE_KEYS:
        a, b = str(first.get(key, "") or ""), str(other.get(key, "") or "")
        if key == "scaling_factor" and a and b:
            try:
                if abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a))):
                    continue
            except ValueError:
                pass
        if a != b:
            raise InputError(f"cannot combine {what}: {other_source} records {key} {b or '(none)'!r} but "
                             f"{first_source} records {a or '(none)'!r}")


@dataclass
class LatentShard:
    latents: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    metadata: dict[str, str] = field(default_factory=dict)


def write_latent_shard(path: str | os.PathLike, shard: LatentShard) -> None:
    from safetensors.torch import save_file

    from ..utils.files import atomic_path

    if shard.latents.shape[0] != shard.masks.shape[0] or len(shard.names) != shard.latents.shape[0]:
        raise InputError(f"{path}: latents, masks and names disagree in length")
    # uint8 holds every dataset here (ids < 256, ignore = 255); wider label spaces keep int16.
    fits_uint8 = shard.masks.numel() == 0 or (int(shard.masks.min()) >= 0 and int(shard.masks.max()) < 256)
    masks = shard.masks.to(torch.uint8 if fits_uint8 else torch.int16)
    meta = {k: str(v) for k, v in shard.metadata.items()}
    meta["names"] = json.dumps(list(shard.names))
    meta.setdefault("resolution", resolution_text(shard.masks.shape[1:]))
    with atomic_path(path) as tmp:
        save_file({"latents": shard.latents.float().contiguous(), "masks": masks.contiguous()}, str(tmp), metadata=meta)


def read_latent_shard(path: str | os.PathLike) -> LatentShard:
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: latent shard does not exist")
    try:
        with safe_open(path, framework="pt") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            if not {"latents", "masks"} <= keys:
                raise InputError(f"{path}: a latent shard needs tensors 'latents' and 'masks', found {sorted(keys)}")
            latents, masks = f.get_tensor("latents"), f.get_tensor("masks")
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{path}: not a readable safetensors latent shard ({exc})") from exc
    try:
        names = json.loads(meta.pop("names", "[]")) or [str(i) for i in range(latents.shape[0])]
    except ValueError as exc:
        raise InputError(f"{path}: metadata 'names' is not a JSON list ({exc})") from None
    if latents.ndim != 4 or masks.ndim != 3 or latents.shape[0] != masks.shape[0] or len(names) != latents.shape[0]:
        raise InputError(
            f"{path}: inconsistent shard: latents {tuple(latents.shape)}, masks {tuple(masks.shape)}, {len(names)} names"
        )
    if not bool(torch.isfinite(latents).all()):
        raise InputError(f"{path}: latents contain NaN or inf")
    if masks.dtype.is_floating_point or masks.dtype == torch.bool:
        raise InputError(f"{path}: masks must hold integer class ids, found {masks.dtype}")
    recorded = meta.get("resolution")
    if recorded and recorded != resolution_text(masks.shape[1:]):
        raise InputError(f"{path}: records resolution {recorded} but its masks are {resolution_text(masks.shape[1:])}")
    meta["resolution"] = resolution_text(masks.shape[1:])
    return LatentShard(latents.float(), masks.long(), names, meta)
