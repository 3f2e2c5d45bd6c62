"""scpdiff fit-prior: fit one prior variant on encoded reference-latent shards."""

from __future__ import annotations

import argparse

from ._numbers import positive_int

HELP = "fit a noise prior (Eqs. 5, 7, 8) on encoded reference latents and save it as safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path (classes, latent shape, prior options)")
    p.add_argument("--variant", required=True, help="registered prior variant, e.g. joint")
    p.add_argument("--latents", nargs="+", required=True, help="latent shard files written by encode-latents")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--batch-size", type=positive_int, default=256, help="latents per update (memory only; results identical)")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..priors.for_benchmark import fit_prior_on_shards

    prior = fit_prior_on_shards(load_benchmark(args.benchmark), args.variant, args.latents, args.batch_size, out=args.out)
    print(f"fitted {prior!r} -> {args.out}")
    return 0
