"""scpdiff generate: one shard of images for one setting (prior variant, mu) of a benchmark.

Which images, named and seeded how: :mod:`scpdiff.sampling.plan`; the shard itself (written
atomically, with ``generation.json``): :mod:`scpdiff.sampling.shard`.
"""

from __future__ import annotations

import argparse

from ._numbers import non_negative_int, positive_int, unit_fraction

HELP = "generate one shard of images with a noise prior started at mu*T (ControlNet + DDIM)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--base", required=True, help="base Stable-Diffusion folder or cached HF repo id")
    p.add_argument("--controlnet", required=True, help="fine-tuned folder with controlnet/ (and optionally unet/)")
    p.add_argument("--variant", required=True, help="prior variant (normal, spatial, categorical, joint, oracle, ...)")
    p.add_argument("--prior", default=None, help="fitted prior file (fit-prior / merge-priors) for fitted variants")
    p.add_argument("--latents", nargs="+", default=None, help="val latent shards (encode-latents) for the oracle prior")
    p.add_argument("--mu", type=unit_fraction, required=True, help="start step as a fraction of T, in (0, 1]")
    p.add_argument("--split", default="val", help="split whose label maps condition the images (default val)")
    p.add_argument("--shard", type=non_negative_int, default=0)
    p.add_argument("--num-shards", type=positive_int, default=1)
    p.add_argument("--repeats", type=positive_int, default=None, help="diversity run: samples per label map (K)")
    p.add_argument("--maps", type=positive_int, default=None, help="diversity run: the first M label maps")
    p.add_argument("--num-images", type=positive_int, default=None, help="override counts.fid_samples")
    p.add_argument("--batch-size", type=positive_int, default=None, help="override sampling.batch_size")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=None,
                   help="base seed of the images (default: the benchmark's sampling.seeds[0] / sampling.seed)")
    p.add_argument("--out", required=True, help="output folder of PNGs")
    from ..sampling.speed import add_argument as add_speed_argument

    add_speed_argument(p)


def run(args) -> int:
    from ..sampling.shard import GenerationRequest, generate_shard

    fields = GenerationRequest.__dataclass_fields__
    record = generate_shard(GenerationRequest(**{k: v for k, v in vars(args).items() if k in fields}))
    print(f"generated {record['num_images']} images ({record['setting']}, {record['steps_run']}/{record['ddim_steps']} "
          f"DDIM steps) -> {args.out}")
    return 0
