"""scpdiff score: FID/KID, mIoU/accuracy and (optionally) LPIPS/MS-SSIM diversity of any image folder."""

from __future__ import annotations

import argparse

from ..metrics.defaults import KID_SUBSETS, KID_SUBSET_SIZE, MIOU_AVERAGE, SUBSET_SEED
from ..metrics.segmentation import MIOU_AVERAGES
from ._arguments import add_device_arguments, add_fid_resize_argument, resolve_device

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
    p.add_argument("--miou-average", choices=MIOU_AVERAGES,
                   help=f"mIoU averaging rule (default: the benchmark's segmenter.miou_average, else {MIOU_AVERAGE})")
    p.add_argument("--diversity", action="store_true", help="also mean pairwise LPIPS / MS-SSIM over {name}_{k} groups")
    p.add_argument("--fid-infinity", action="store_true", help="also FID-infinity (Chong & Forsyth) from the same features")
    p.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    p.add_argument("--no-segmentation", action="store_true", help="skip mIoU/accuracy")
    p.add_argument("--allow-subset", action="store_true", help="allow images for only some of the label maps")
    p.add_argument("--kid-subset-size", type=int, default=KID_SUBSET_SIZE)
    p.add_argument("--kid-subsets", type=int, default=KID_SUBSETS)
    p.add_argument("--seed", type=int, default=SUBSET_SEED, help="seed of KID / FID-infinity subsets")
    p.add_argument("--out", required=True, help="metrics .json (row + provenance) or .csv (one row)")
    add_device_arguments(p)
    add_fid_resize_argument(p)


def _masks(args, bench, need: bool):
    from ..metrics.images import MasksFromDataset, MasksFromDir
    from ..datasets import open_benchmark_split

    if args.masks:
        return MasksFromDir(args.masks)
    if not need and args.split is None:
        return None
    split = args.split or "val"
    return MasksFromDataset(open_benchmark_split(bench, split), source=f"benchmark {bench.name} split {split}")


def _classes(bench, masks):
    """Class count and ignore label: the dataset module's table, else the opened dataset's."""
    from ..datasets import class_info

    try:
        return class_info(bench["dataset"]["kind"])
    except AttributeError:  # a reader module without a module-level CLASSES table
        dataset = getattr(masks, "dataset", None)
        if dataset is None:
            from ..datasets import open_benchmark_split

            dataset = open_benchmark_split(bench, "val")
        return dataset.classes


def _write(row: dict, provenance: dict, out: str) -> None:
    import json

    from ..utils.files import atomic_path, write_text_atomic

    if out.endswith(".csv"):
        import pandas as pd

        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items() if k != "class_iou"}
        flat.update({f"provenance.{k}": json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in provenance.items()})
        with atomic_path(out) as tmp:
            pd.DataFrame([flat]).to_csv(tmp, index=False)
    else:
        write_text_atomic(out, json.dumps({**row, "provenance": provenance}, indent=2, sort_keys=False, allow_nan=True) + "\n")


def run(args) -> int:
    import datetime
    from pathlib import Path

    from ..config.benchmark import load_benchmark
    from ..metrics.fid import ReferenceStats, load_inception
    from ..metrics.images import check_coverage, check_image_files, list_images, match_images
    from ..metrics.scoring import ScoreOptions, reference_statistics, score_folder, versions
    from ..utils.hashing import sha256_tree

    bench = load_benchmark(args.benchmark)
    device, workers = resolve_device(args)
    seg_cfg = bench["segmenter"]
    opts = ScoreOptions(
        fid=not args.no_fid, fid_infinity=args.fid_infinity, fid_resize=args.fid_resize,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, segmentation=not args.no_segmentation,
        miou_average=args.miou_average or seg_cfg.get("miou_average", MIOU_AVERAGE), diversity=args.diversity,
        batch_size=args.batch_size, workers=workers, device=device, seed=args.seed,
    )
    # check every input before any network is loaded
    masks = _masks(args, bench, need=opts.segmentation)
    classes = _classes(bench, masks)
    paths = list_images(args.images)
    entries = match_images(paths, masks.names if masks is not None else None)
    if masks is not None:
        check_coverage(entries, masks.names, masks.source, args.allow_subset)
    check_image_files(paths, bench.resolution)

    provenance: dict = {
        "benchmark": bench.name, "images": [str(Path(d)) for d in args.images], "device": device, "tf32": False,
        "fid_resize": opts.fid_resize, "masks": masks.source if masks is not None else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
    }
    inception = reference = None
    if opts.fid:
        inception, sha = load_inception(device, cache=args.cache)
        provenance["fid_inception_sha256"] = sha
        if args.ref_stats:
            reference = ReferenceStats.load(args.ref_stats)
            reference.check_compatible(sha, opts.fid_resize, args.ref_stats)
            provenance["ref_stats"] = str(args.ref_stats)
        else:
            reference, path = reference_statistics(bench, args.ref_split, opts.fid_resize, device, args.cache,
                                                   args.batch_size, workers, model=inception, weights_sha256=sha)
            provenance["ref_stats"] = str(path)
        provenance["ref_stats_key"] = reference.meta.get("key")
    segmenter = None
    if opts.segmentation:
        from ..segmenters import load_segmenter

        kind = args.segmenter or seg_cfg["kind"]
        checkpoint = args.segmenter_checkpoint or seg_cfg.get("checkpoint")
        segmenter = load_segmenter(kind, checkpoint, device=device)
        provenance["segmenter"] = {"kind": kind, "name": getattr(segmenter, "name", kind), "checkpoint": checkpoint,
                                   "sha256": sha256_tree(checkpoint) if checkpoint and Path(checkpoint).exists() else None}
    lpips_model = None
    if opts.diversity:
        from ..metrics.diversity import load_lpips

        lpips_model, lsha = load_lpips(device, cache=args.cache)
        provenance["lpips_alexnet_sha256"] = lsha

    row = score_folder(entries, resolution=bench.resolution, opts=opts, reference=reference, inception=inception,
                       segmenter=segmenter, masks=masks, num_classes=classes.num_classes,
                       ignore_index=classes.ignore_index, lpips_model=lpips_model)
    _write(row, provenance, args.out)
    shown = {k: row[k] for k in ("fid", "kid", "miou", "pixel_accuracy", "lpips", "ms_ssim") if k in row}
    print(f"scored {row['num_images']} images: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()) + f" -> {args.out}")
    return 0
