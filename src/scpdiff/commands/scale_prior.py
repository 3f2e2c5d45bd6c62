"""scpdiff scale-prior: a fitted prior file with its variances scaled (a prior made by a rule)."""

from __future__ import annotations

import argparse

HELP = "write a copy of a fitted prior file with every Gaussian's variance multiplied by a factor"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior", required=True, help="a fitted prior file (merge-priors)")
    p.add_argument("--variance", type=float, required=True, help="the factor (e.g. 0.5 halves every variance)")
    p.add_argument("--out", required=True, help="output .safetensors (the same prior file format)")


def run(args) -> int:
    from ..priors.variance_scaling import scale_prior_file

    scale_prior_file(args.prior, args.variance, args.out)
    print(f"{args.prior}: variances x {args.variance:g} -> {args.out}")
    return 0
