"""One shard of a split encoded into latents, as ``encode-latents`` writes it.

The train split gives the N reference images of the priors (``counts.reference``, paper section
5.1: N = 10,000): under the protocol knob ``reference_draw: with_replacement`` (the official
noise_prior.py:49,54,117) N draws with replacement by ``random.Random(reference_seed).choices``
(:func:`scpdiff.utils.draws.draw_with_replacement`) over the split's images, so an image may appear more than once; under ``first_n`` the first N.
The ``train_joint`` latent set holds the joint prior's reference images under ``joint_reference:
quarter_of_split`` (the official joint prior sees the indices ``i::64`` for ``i < 16`` of the train
split, noise_prior.py:189,205-208; :func:`scpdiff.utils.draws.quarter_of_split`).
The val split gives every val image's latent, which the oracle prior (Eq. 4) pairs with its label
map by name. Item ``i``'s posterior sample comes from the generator of ``("encode:{split}", i, seed)``,
so any sharding gives the same latents.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..datasets import open_benchmark_split
from ..models.paths import resolve_base_model
from ..utils.draws import draw_with_replacement, quarter_of_split
from ..errors import InputError
from ..utils.files import check_output_path
from ..utils.seeds import image_generators
from ..utils.sharding import shard_bounds
from ..utils.torch_state import default_device
from .encoding import encode_images
from .shards import LatentShard, write_latent_shard


# latent set -> the dataset split it encodes
LATENT_SETS = {"train": "train", "val": "val", "train_joint": "train"}


def split_indices(bench, split: str, dataset_size: int) -> list[int]:
    """The dataset indices latent set ``split`` encodes, in order: the reference draw for train, the
    joint prior's quarter of the split for train_joint (module doc), all of val."""
    if split == "train_joint":
        return quarter_of_split(dataset_size)
    if split != "train":
        return list(range(dataset_size))
    n = int(bench["counts"]["reference"])
    proto = bench.protocol
    if proto["reference_draw"] == "with_replacement" and dataset_size > 0:
        return draw_with_replacement(dataset_size, n, int(proto["reference_seed"]))
    return list(range(min(n, dataset_size)))


def encode_split_shard(
    bench,
    base: str | os.PathLike,
    split: str,
    out: str | os.PathLike,
    shard: int = 0,
    num_shards: int = 1,
    device: str | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[LatentShard, int, int]:
    """Encode shard ``shard`` of ``num_shards`` of ``split`` with ``base``'s VAE into ``out``.

    Returns the shard written and its item range ``[start, stop)``.
    """
    from diffusers import AutoencoderKL

    check_output_path(out, "file", "--out (the latent shard)")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if split not in LATENT_SETS:
        raise InputError(f"unknown latent set {split!r}; known: {sorted(LATENT_SETS)}")
    ds = open_benchmark_split(bench, LATENT_SETS[split])
    indices = split_indices(bench, split, len(ds))
    start, stop = shard_bounds(len(indices), shard, num_shards)
    device = device or default_device()
    base = resolve_base_model(base)
    # The VAE encoder runs in float32 even on GPU: the latents feed float64 statistics and the oracle.
    vae = AutoencoderKL.from_pretrained(base / "vae", torch_dtype=torch.float32, local_files_only=True).to(device)

    latents, masks, names = [], [], []
    for lo in range(start, stop, batch_size):
        idx = list(range(lo, min(lo + batch_size, stop)))
        items = [ds[indices[i]] for i in idx]
        images = np.stack([im for im, _, _ in items])
        gens = image_generators(f"encode:{split}", idx, seed)
        latents.append(encode_images(vae, images, gens, batch_size=batch_size))
        masks.append(torch.from_numpy(np.stack([m for _, m, _ in items]).astype(np.int64)))
        names += [name for _, _, name in items]
    c, h, w = bench.latent_shape
    result = LatentShard(
        latents=torch.cat(latents) if latents else torch.zeros(0, c, h, w),
        masks=torch.cat(masks) if masks else torch.zeros(0, *bench.resolution, dtype=torch.long),
        names=names,
        metadata={
            "dataset": bench["dataset"]["kind"],
            "split": split,
            "vae": str(base / "vae"),
            "scaling_factor": str(float(vae.config.scaling_factor)),
            "posterior": "sample",
            "draw": (f"{bench.protocol['reference_draw']}:seed={bench.protocol['reference_seed']}"
                     if split == "train" else "quarter_of_split" if split == "train_joint" else "all"),
            "shard": f"{shard}/{num_shards}",
        },
    )
    write_latent_shard(out, result)
    return result, start, stop
