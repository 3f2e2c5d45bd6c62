"""scpdiff merge-priors: sum the statistics of priors fitted on separate shards."""

from __future__ import annotations

import argparse

HELP = "merge prior shards (same variant and shape) into one prior; equals one fit over all shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("shards", nargs="+", help="prior files written by fit-prior")


def run(args) -> int:
    from .. import priors

    merged = priors.merge_prior_files(args.shards, args.out)
    print(f"merged {len(args.shards)} shards -> {merged!r} -> {args.out}")
    return 0
