"""scpdiff ref-stats: FID reference statistics of a benchmark's real images (cached, reused)."""

from __future__ import annotations

import argparse

from ._metric_args import add_device_arguments, add_fid_resize_argument, resolve_device

HELP = "compute (or reuse from the cache) the FID/KID reference features of a benchmark split"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    p.add_argument("--out", required=True, help="output .npz (features, mu, sigma, metadata)")
    add_device_arguments(p)
    add_fid_resize_argument(p)


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..metrics.scoring import write_reference_statistics

    bench = load_benchmark(args.benchmark)
    device, workers = resolve_device(args)
    ref = write_reference_statistics(bench, args.split, args.out, resize=args.fid_resize, device=device,
                                     cache=args.cache, batch_size=args.batch_size, workers=workers)
    print(f"reference statistics of {ref.meta.get('num_images')} images ({ref.meta.get('key')}) -> {args.out}")
    return 0
