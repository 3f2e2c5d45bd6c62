"""scpdiff merge-scores: the score row of one setting from its shards' statistics (`scpdiff score --out X.npz`)."""

from __future__ import annotations

import argparse

from ._metric_args import add_summary_arguments, bootstrap_options

HELP = "merge the shard statistics of one setting into its FID/KID, mIoU/Acc row with bootstrap intervals"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--statistics", nargs="+", required=True, help="the shards' .npz files (from `scpdiff score --out X.npz`)")
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--split", default="val", help="the label maps the images must cover (default val)")
    p.add_argument("--ref-stats", help="reference statistics from `scpdiff ref-stats` (needed with FID features)")
    add_summary_arguments(p)
    p.add_argument("--out", required=True, help="metrics .json (row + provenance) or .csv (one row)")


def run(args) -> int:
    from ..metrics.folder_score import MergeRequest, merge_scores
    from ..metrics.scoring import ScoreOptions

    options = ScoreOptions(
        fid_infinity=args.fid_infinity, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
        miou_average=args.miou_average, seed=args.seed, bootstrap=bootstrap_options(args),
    )
    row = merge_scores(MergeRequest(statistics=args.statistics, benchmark=args.benchmark, out=args.out,
                                    options=options, split=args.split, ref_stats=args.ref_stats,
                                    allow_subset=args.allow_subset))
    shown = {k: row[k] for k in ("fid", "kid", "miou", "pixel_accuracy") if k in row}
    print(f"merged {row['shards']} shard(s), {row['num_images']} images: "
          + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()) + f" -> {args.out}")
    return 0
