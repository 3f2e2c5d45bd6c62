"""scpdiff fit-prior: fit one prior variant on encoded reference-latent shards."""

from __future__ import annotations

import argparse

HELP = "fit a noise prior (Eqs. 5, 7, 8) on encoded reference latents and save it as safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path (classes, latent shape, prior options)")
    p.add_argument("--variant", required=True, help="registered prior variant, e.g. joint")
    p.add_argument("--latents", nargs="+", required=True, help="latent shard files written by encode-latents")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--batch-size", type=int, default=256, help="latents per update (memory only; results identical)")


def prior_for_benchmark(bench, variant: str):
    """An unfitted prior of ``variant`` with the benchmark's classes, latent shape and prior options."""
    from .. import priors
    from ..datasets.classes import num_classes_for

    opts = dict(bench.get("prior_options") or {})
    return priors.create(variant, num_classes=num_classes_for(bench), latent_shape=bench.latent_shape, **opts)


def run(args) -> int:
    import torch

    from ..benchmark import load_benchmark
    from ..latent_shards import read_latent_shard

    bench = load_benchmark(args.benchmark)
    prior = prior_for_benchmark(bench, args.variant)
    for path in args.latents:
        shard = read_latent_shard(path)
        for k in ("vae", "scaling_factor", "dataset"):
            prior.provenance[k] = prior.provenance.get(k) or str(shard.metadata.get(k, ""))
        n = shard.latents.shape[0]
        for i in range(0, n, args.batch_size):
            prior.update(shard.latents[i : i + args.batch_size], shard.masks[i : i + args.batch_size].to(torch.long))
    prior.save(args.out)
    print(f"fitted {prior!r} -> {args.out}")
    return 0
