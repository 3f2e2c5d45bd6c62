"""scpdiff merge-scores: the score row of one setting from its shards' statistics (`scpdiff score --out X.npz`)."""

from __future__ import annotations

import argparse

from ..metrics.bootstrap import LEVEL, RESAMPLES, SEED
from ..metrics.defaults import KID_SUBSETS, KID_SUBSET_SIZE, SUBSET_SEED
from ..metrics.segmentation import MIOU_AVERAGES
from ._numbers import at_least_two, non_negative_int, open_fraction, positive_int

HELP = "merge the shard statistics of one setting into its FID/KID, mIoU/Acc row with bootstrap intervals"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--statistics", nargs="+", required=True, help="the shards' .npz files (from `scpdiff score --out X.npz`)")
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--split", default="val", help="the label maps the images must cover (default val)")
    p.add_argument("--ref-stats", help="reference statistics from `scpdiff ref-stats` (needed with FID features)")
    p.add_argument("--allow-subset", action="store_true", help="allow images for only some of the label maps")
    p.add_argument("--miou-average", choices=MIOU_AVERAGES, help="mIoU averaging rule (default: the benchmark's)")
    p.add_argument("--fid-infinity", action="store_true", help="also FID-infinity (Chong & Forsyth)")
    p.add_argument("--kid-subset-size", type=at_least_two, default=KID_SUBSET_SIZE)
    p.add_argument("--kid-subsets", type=positive_int, default=KID_SUBSETS)
    p.add_argument("--seed", type=int, default=SUBSET_SEED, help="seed of KID / FID-infinity subsets")
    p.add_argument("--bootstrap-resamples", type=non_negative_int, default=RESAMPLES)
    p.add_argument("--bootstrap-seed", type=int, default=SEED)
    p.add_argument("--bootstrap-level", type=open_fraction, default=LEVEL)
    p.add_argument("--out", required=True, help="metrics .json (row + provenance) or .csv (one row)")


def run(args) -> int:
    from ..metrics.bootstrap import BootstrapOptions
    from ..metrics.folder_score import MergeRequest, merge_scores
    from ..metrics.scoring import ScoreOptions

    options = ScoreOptions(
        fid_infinity=args.fid_infinity, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
        miou_average=args.miou_average, seed=args.seed,
        bootstrap=BootstrapOptions(args.bootstrap_resamples, args.bootstrap_seed, args.bootstrap_level),
    )
    row = merge_scores(MergeRequest(statistics=args.statistics, benchmark=args.benchmark, out=args.out,
                                    options=options, split=args.split, ref_stats=args.ref_stats,
                                    allow_subset=args.allow_subset))
    shown = {k: row[k] for k in ("fid", "kid", "miou", "pixel_accuracy") if k in row}
    print(f"merged {row['shards']} shard(s), {row['num_images']} images: "
          + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()) + f" -> {args.out}")
    return 0
