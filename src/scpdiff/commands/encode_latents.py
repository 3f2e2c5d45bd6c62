"""scpdiff encode-latents: one shard of a split's images as scaled VAE latents, with their masks
(:mod:`scpdiff.latents.shard_encoding`)."""

from __future__ import annotations

import argparse

from ._numbers import non_negative_int, positive_int

HELP = "encode one shard of a split's images into scaled VAE latents (safetensors, with masks and names)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--base", required=True, help="base model folder (its vae/ is used) or a cached HF repo id")
    p.add_argument("--split", required=True, choices=["train", "val", "train_joint"],
                   help="train: the priors' N reference images; train_joint: the joint prior's under "
                        "joint_reference: quarter_of_split (docs/protocol.md); val: every val image")
    p.add_argument("--shard", type=non_negative_int, default=0)
    p.add_argument("--num-shards", type=positive_int, default=1)
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per VAE call (memory only; results identical)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the per-image posterior samples")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..latents.shard_encoding import encode_split_shard

    bench = load_benchmark(args.benchmark)
    shard, start, stop = encode_split_shard(bench, args.base, args.split, args.out, shard=args.shard,
                                            num_shards=args.num_shards, device=args.device,
                                            batch_size=args.batch_size, seed=args.seed)
    print(f"encoded {len(shard.names)} {args.split} images [{start}, {stop}) -> {args.out}")
    return 0
