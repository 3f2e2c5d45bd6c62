"""scpdiff reference-images: real images of a split, or their VAE reconstructions, to score as
Table 1's reference rows (the real-image ceiling and FID floor, the VAE's floor)."""

from __future__ import annotations

import argparse

HELP = "write the first N images of a split, or their VAE reconstructions, for the reference rows"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    p.add_argument("--num", type=int, required=True, help="how many images (the first of the split)")
    p.add_argument("--base", help="base model folder: write its VAE's reconstructions instead of the images")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, help="output folder of {name}.png")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..latents.reconstruction import write_reference_images

    record = write_reference_images(load_benchmark(args.benchmark), args.split, args.num, args.out,
                                    base=args.base, device=args.device)
    print(f"wrote {record['num_images']} {record['kind']} images of {args.split} -> {args.out}")
    return 0
