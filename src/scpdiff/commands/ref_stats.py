"""scpdiff ref-stats: FID reference statistics of a benchmark's real images (cached, reused)."""

from __future__ import annotations

import argparse

HELP = "compute (or reuse from the cache) the FID/KID reference features of a benchmark split"


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, help="DataLoader workers decoding images (default: several on GPU, 0 on CPU)")
    p.add_argument("--cache", help="cache folder (default $SCPDIFF_CACHE or ~/.cache/scpdiff)")
    p.add_argument("--fid-resize", default="tf1_bilinear", choices=["tf1_bilinear", "pil_bicubic"],
                   help="how images reach 299x299: torch-fidelity's TF1 bilinear (default) or PIL bicubic first")


def resolve_device(args) -> tuple[str, int]:
    import torch

    from ..metrics.scoring import default_workers

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = args.workers if args.workers is not None else default_workers(device)
    return device, workers


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    p.add_argument("--out", required=True, help="output .npz (features, mu, sigma, metadata)")
    add_device_arguments(p)


def run(args) -> int:
    from pathlib import Path

    from ..benchmark import load_benchmark
    from ..metrics.scoring import copy_reference, reference_statistics

    bench = load_benchmark(args.benchmark)
    device, workers = resolve_device(args)
    ref, cached = reference_statistics(bench, args.split, resize=args.fid_resize, device=device, cache=args.cache,
                                       batch_size=args.batch_size, workers=workers)
    copy_reference(cached, Path(args.out))
    print(f"reference statistics of {ref.meta.get('num_images')} images ({ref.meta.get('key')}) -> {args.out}")
    return 0
