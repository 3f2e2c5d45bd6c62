"""Scoring one folder of images as ``scpdiff score`` does (paper section 5.1): every input checked
before a network is loaded, then FID/KID against the benchmark's reference statistics, mIoU and
pixel accuracy with its protocol segmenter, optionally LPIPS/MS-SSIM diversity; the row is written
with its provenance (inputs, versions, weight hashes) as JSON or one CSV row.

    row = score_images(ScoreRequest(images=["samples/joint"], benchmark="cityscapes", out="joint.json"))
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config.benchmark import load_benchmark
from ..datasets import class_info, open_benchmark_split
from ..segmenters import load_segmenter
from ..utils.files import atomic_path, write_text_atomic
from ..utils.hashing import sha256_tree
from .defaults import MIOU_AVERAGE
from .diversity import load_lpips
from .fid import ReferenceStats, load_inception
from .images import MasksFromDataset, MasksFromDir, check_coverage, check_image_files, list_images, match_images
from .scoring import ScoreOptions, reference_statistics, score_folder, versions


@dataclass(frozen=True)
class ScoreRequest:
    """What ``scpdiff score`` asks for: the images, where masks and reference statistics come from,
    and the metric options (``options.miou_average=None``: the benchmark segmenter's rule)."""

    images: Sequence[str]
    benchmark: str
    out: str
    options: ScoreOptions
    split: str | None = None
    masks: str | None = None
    ref_stats: str | None = None
    ref_split: str = "val"
    segmenter: str | None = None
    segmenter_checkpoint: str | None = None
    allow_subset: bool = False
    cache: str | None = None


def _masks(req: "ScoreRequest", bench, need: bool):
    if req.masks:
        return MasksFromDir(req.masks)
    if not need and req.split is None:
        return None
    split = req.split or "val"
    return MasksFromDataset(open_benchmark_split(bench, split), source=f"benchmark {bench.name} split {split}")


def _classes(bench, masks):
    """Class count and ignore label: the dataset module's table, else the opened dataset's."""
    try:
        return class_info(bench["dataset"]["kind"])
    except AttributeError:  # a reader module without a module-level CLASSES table
        dataset = getattr(masks, "dataset", None)
        if dataset is None:
            dataset = open_benchmark_split(bench, "val")
        return dataset.classes


def _write(row: dict, provenance: dict, out: str) -> None:
    if out.endswith(".csv"):
        import pandas as pd

        skip = ("class_iou", "bootstrap", "diversity_bootstrap")
        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items() if k not in skip}
        # one row of a spreadsheet: the intervals, not the replicates
        for key in ("bootstrap", "diversity_bootstrap"):
            for metric, (lo, hi) in row.get(key, {}).get("interval", {}).items():
                flat[f"{metric}_lo"], flat[f"{metric}_hi"] = lo, hi
            if key in row:
                flat.update({f"{key}.{k}": row[key][k] for k in ("resamples", "seed", "level")})
        flat.update({f"provenance.{k}": json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in provenance.items()})
        with atomic_path(out) as tmp:
            pd.DataFrame([flat]).to_csv(tmp, index=False)
    else:
        write_text_atomic(out, json.dumps({**row, "provenance": provenance}, indent=2, sort_keys=False, allow_nan=True) + "\n")


def score_images(req: ScoreRequest) -> dict:
    """Score ``req.images`` and write the row and its provenance to ``req.out``; return the row."""
    bench = load_benchmark(req.benchmark)
    seg_cfg = bench["segmenter"]
    opts = req.options
    opts = dataclasses.replace(opts, miou_average=opts.miou_average or seg_cfg.get("miou_average", MIOU_AVERAGE))
    device, workers = opts.device, opts.workers
    # check every input before any network is loaded
    masks = _masks(req, bench, need=opts.segmentation)
    classes = _classes(bench, masks)
    paths = list_images(req.images)
    entries = match_images(paths, masks.names if masks is not None else None)
    if masks is not None:
        check_coverage(entries, masks.names, masks.source, req.allow_subset)
    check_image_files(paths, bench.resolution)

    provenance: dict = {
        "benchmark": bench.name, "images": [str(Path(d)) for d in req.images], "device": device, "tf32": False,
        "fid_resize": opts.fid_resize, "masks": masks.source if masks is not None else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
    }
    inception = reference = None
    if opts.fid:
        inception, sha = load_inception(device, cache=req.cache)
        provenance["fid_inception_sha256"] = sha
        if req.ref_stats:
            reference = ReferenceStats.load(req.ref_stats)
            reference.check_compatible(sha, opts.fid_resize, req.ref_stats)
            provenance["ref_stats"] = str(req.ref_stats)
        else:
            reference, path = reference_statistics(bench, req.ref_split, opts.fid_resize, device, req.cache,
                                                   opts.batch_size, workers, model=inception, weights_sha256=sha)
            provenance["ref_stats"] = str(path)
        provenance["ref_stats_key"] = reference.meta.get("key")
    segmenter = None
    if opts.segmentation:
        kind = req.segmenter or seg_cfg["kind"]
        checkpoint = req.segmenter_checkpoint or seg_cfg.get("checkpoint")
        segmenter = load_segmenter(kind, checkpoint, device=device)
        provenance["segmenter"] = {"kind": kind, "name": getattr(segmenter, "name", kind), "checkpoint": checkpoint,
                                   "sha256": sha256_tree(checkpoint) if checkpoint and Path(checkpoint).exists() else None}
    lpips_model = None
    if opts.diversity:
        lpips_model, lsha = load_lpips(device, cache=req.cache)
        provenance["lpips_alexnet_sha256"] = lsha

    row = score_folder(entries, resolution=bench.resolution, opts=opts, reference=reference, inception=inception,
                       segmenter=segmenter, masks=masks, num_classes=classes.num_classes,
                       ignore_index=classes.ignore_index, lpips_model=lpips_model)
    _write(row, provenance, req.out)
    return row
