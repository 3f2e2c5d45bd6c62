"""scpdiff score: FID/KID, mIoU/accuracy and (optionally) LPIPS/MS-SSIM diversity of any image folder."""

from __future__ import annotations

import argparse

from ..segmenters import BACKENDS as SEGMENTER_BACKENDS
from ..segmenters.upernet import NORMALIZATIONS as UPERNET_NORMALIZATIONS
from ._metric_args import (add_device_arguments, add_fid_resize_argument, add_summary_arguments, bootstrap_options,
                           resolve_device)
from ._numbers import positive_int

HELP = "score a folder of generated images (ours or another method's) with the paper's protocol"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", nargs="+", required=True, help="folder(s) of {name}.png or {name}_{k:02d}.png images")
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--split", default=None, help="take ground-truth masks from this benchmark split (default val)")
    src.add_argument("--masks", help="folder of label PNGs {name}.png (class ids, 255 = ignore)")
    p.add_argument("--ref-stats", help="reference statistics from `scpdiff ref-stats` (default: cache, computed on a miss)")
    p.add_argument("--ref-split", default="val", help="split of the real images for FID when --ref-stats is not given")
    p.add_argument("--segmenter", help="segmenter kind (default: the benchmark's)")
    p.add_argument("--segmenter-checkpoint", help="segmenter weights (default: the benchmark's segmenter.checkpoint)")
    p.add_argument("--segmenter-backend", choices=SEGMENTER_BACKENDS,
                   help="torch (plain modules) or mmseg (the same networks through mmsegmentation; the mmseg extra); "
                        "default: the benchmark's segmenter.backend, else torch")
    p.add_argument("--segmenter-normalization", choices=UPERNET_NORMALIZATIONS,
                   help="upernet_101 only: input normalisation of the CSAIL weights (segmenters/upernet_101/README.md)")
    p.add_argument("--diversity", action="store_true", help="also mean pairwise LPIPS / MS-SSIM over {name}_{k} groups")
    p.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    p.add_argument("--no-segmentation", action="store_true", help="skip mIoU/accuracy")
    p.add_argument("--segment-per-map", type=positive_int, default=None,
                   help="segment only the first K samples of each label map ({name}.png is sample 0; the "
                        "benchmark's counts.segment_per_map; default: every image)")
    p.add_argument("--out", required=True,
                   help="metrics .json (row + provenance) or .csv (one row); .npz: the images' mergeable "
                        "statistics (one generation shard; `scpdiff merge-scores` makes the row)")
    add_summary_arguments(p)
    add_device_arguments(p)
    add_fid_resize_argument(p)


def run(args) -> int:
    from ..metrics.folder_score import ScoreRequest, score_images
    from ..metrics.scoring import ScoreOptions

    device, workers = resolve_device(args)
    options = ScoreOptions(
        fid=not args.no_fid, fid_infinity=args.fid_infinity, fid_resize=args.fid_resize,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, segmentation=not args.no_segmentation,
        miou_average=args.miou_average, diversity=args.diversity,
        batch_size=args.batch_size, workers=workers, device=device, seed=args.seed,
        segment_per_map=args.segment_per_map, bootstrap=bootstrap_options(args),
    )
    row = score_images(ScoreRequest(
        images=args.images, benchmark=args.benchmark, out=args.out, options=options, split=args.split,
        masks=args.masks, ref_stats=args.ref_stats, ref_split=args.ref_split, segmenter=args.segmenter,
        segmenter_checkpoint=args.segmenter_checkpoint, segmenter_backend=args.segmenter_backend,
        segmenter_normalization=args.segmenter_normalization, allow_subset=args.allow_subset, cache=args.cache,
    ))
    shown = {k: row[k] for k in ("fid", "kid", "miou", "pixel_accuracy", "lpips", "ms_ssim") if k in row}
    print(f"scored {row['num_images']} images: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()) + f" -> {args.out}")
    return 0
