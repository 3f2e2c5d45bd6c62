"""scpdiff encode-latents: one shard of a split's images as scaled VAE latents, with their masks.

The train split gives the N reference images of the priors (the first ``counts.reference``
images, paper section 4: N = 10,000); the val split gives every val image's latent, which the
oracle prior (Eq. 4) pairs with its label map by name.
"""

from __future__ import annotations

import argparse

HELP = "encode one shard of a split's images into scaled VAE latents (safetensors, with masks and names)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--base", required=True, help="base model folder (its vae/ is used) or a cached HF repo id")
    p.add_argument("--split", required=True, choices=["train", "val"])
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=16, help="images per VAE call (memory only; results identical)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the per-image posterior samples")


def num_split_images(bench, split: str, dataset_size: int) -> int:
    """How many images of ``split`` are encoded: the reference set for train, all of val."""
    if split == "train":
        return min(int(bench["counts"]["reference"]), dataset_size)
    return dataset_size


def run(args) -> int:
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from ..config.benchmark import load_benchmark
    from ..latents.shards import LatentShard, write_latent_shard
    from ..latents.encoding import encode_images
    from ..models.paths import resolve_base_model
    from ..sampling import image_generators
    from ..utils.sharding import shard_bounds
    from ..utils.torch_state import default_device
    from ..datasets import open_benchmark_split

    bench = load_benchmark(args.benchmark)
    ds = open_benchmark_split(bench, args.split)
    n = num_split_images(bench, args.split, len(ds))
    start, stop = shard_bounds(n, args.shard, args.num_shards)
    device = args.device or default_device()
    base = resolve_base_model(args.base)
    # The VAE encoder runs in float32 even on GPU: the latents feed float64 statistics and the oracle.
    vae = AutoencoderKL.from_pretrained(base / "vae", torch_dtype=torch.float32, local_files_only=True).to(device)

    latents, masks, names = [], [], []
    for lo in range(start, stop, args.batch_size):
        idx = list(range(lo, min(lo + args.batch_size, stop)))
        items = [ds[i] for i in idx]
        images = np.stack([im for im, _, _ in items])
        gens = image_generators(f"encode:{args.split}", idx, args.seed)
        latents.append(encode_images(vae, images, gens, batch_size=args.batch_size))
        masks.append(torch.from_numpy(np.stack([m for _, m, _ in items]).astype(np.int64)))
        names += [name for _, _, name in items]
    c, h, w = bench.latent_shape
    shard = LatentShard(
        latents=torch.cat(latents) if latents else torch.zeros(0, c, h, w),
        masks=torch.cat(masks) if masks else torch.zeros(0, *bench.resolution, dtype=torch.long),
        names=names,
        metadata={
            "dataset": bench["dataset"]["kind"],
            "split": args.split,
            "vae": str(base / "vae"),
            "scaling_factor": str(float(vae.config.scaling_factor)),
            "posterior": "sample",
            "shard": f"{args.shard}/{args.num_shards}",
        },
    )
    write_latent_shard(args.out, shard)
    print(f"encoded {len(names)} {args.split} images [{start}, {stop}) -> {args.out}")
    return 0
