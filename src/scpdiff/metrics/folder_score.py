"""Scoring one folder of images as ``scpdiff score`` does (paper section 5.1): every input checked
before a network is loaded, then FID/KID against the benchmark's reference statistics, mIoU and
pixel accuracy with its protocol segmenter, optionally LPIPS/MS-SSIM diversity; the row is written
with its provenance (inputs, versions, weight hashes) as JSON or one CSV row.

A generation shard is scored alone into its mergeable statistics (``out`` ending in ``.npz``:
:class:`~.scoring.ImageStatistics`, the per-image features and per-map confusion matrices), and
:func:`merge_scores` turns a setting's shard statistics into the same row a single pass writes.

    row = score_images(ScoreRequest(images=["samples/joint"], benchmark="cityscapes", out="joint.json"))
    score_images(ScoreRequest(images=["samples/joint/0003"], ..., out="0003.npz", allow_subset=True))
    row = merge_scores(MergeRequest(statistics=["0000.npz", ...], benchmark="cityscapes", ref_stats=..., out="joint.json"))
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config.benchmark import load_benchmark
from ..datasets import class_info, open_benchmark_split
from ..errors import ConfigError
from ..segmenters import load_segmenter
from ..datasets.input_checks import FileCheck, run_file_checks
from ..errors import InputError
from ..utils.files import atomic_path, check_output_path, write_text_atomic
from ..utils.hashing import sha256_tree
from .defaults import MIOU_AVERAGE
from .diversity import load_lpips
from .fid import ReferenceStats, load_inception
from .images import ImageEntry, MasksFromDataset, MasksFromDir, check_coverage, list_images, match_images, recorded_naming
from .scoring import (
    ImageStatistics, ScoreOptions, measure_images, reference_statistics, score_folder, scores_from_statistics, versions,
)


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
    segmenter_backend: str | None = None  # None: the benchmark's segmenter.backend, else torch
    segmenter_normalization: str | None = None  # upernet_101 only; None: the benchmark's, else the default
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


def _segmenter_route(req: "ScoreRequest", seg_cfg, kind: str) -> tuple[str, dict]:
    """(backend, recipe options) from the request, else the benchmark's ``segmenter`` section."""
    backend = req.segmenter_backend or seg_cfg.get("backend") or "torch"
    # the benchmark's normalization belongs to its own segmenter, not to one given by --segmenter
    normalization = req.segmenter_normalization or (seg_cfg.get("normalization") if kind == seg_cfg["kind"] else None)
    if normalization is None:
        return backend, {}
    if kind != "upernet_101":
        raise ConfigError(f"segmenter normalization {normalization!r} applies to upernet_101 only, not {kind!r}")
    return backend, {"normalization": normalization}


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


def check_scoring_files(entries, masks, resolution: tuple[int, int], classes, workers: int = 0) -> None:
    """Decode every image (and every label PNG of ``--masks``) by the readers' rules, in ``workers``
    processes: mode, bit depth, size (the benchmark's, never resized) and label range."""
    checks = [FileCheck.image(e.path, resolution, " (the benchmark's resolution)") for e in entries]
    if isinstance(masks, MasksFromDir):
        checks += [FileCheck.labels(masks.path(name), resolution, classes.num_classes, classes.ignore_index,
                                    " (the size of the images; label maps are not resized)")
                   for name in sorted({e.name for e in entries})]
    run_file_checks(checks, workers, "score")


def score_images(req: ScoreRequest) -> dict:
    """Score ``req.images`` and write the row and its provenance to ``req.out``; return the row."""
    bench = load_benchmark(req.benchmark)
    seg_cfg = bench["segmenter"]
    opts = req.options
    opts = dataclasses.replace(opts, miou_average=opts.miou_average or seg_cfg.get("miou_average", MIOU_AVERAGE))
    device, workers = opts.device, opts.workers
    # check every input before any network is loaded
    check_output_path(req.out, "file", "--out (the metrics file)")
    masks = _masks(req, bench, need=opts.segmentation)
    classes = _classes(bench, masks)
    paths = list_images(req.images)
    entries = match_images(paths, masks.names if masks is not None else None,
                           naming=recorded_naming(req.images), need_groups=opts.diversity)
    if masks is not None:
        check_coverage(entries, masks.names, masks.source, req.allow_subset)
    if opts.fid and len(entries) < 2 and not str(req.out).endswith(STATISTICS_SUFFIX):
        raise InputError(f"--images {' '.join(map(str, req.images))}: FID needs at least 2 images, found {len(entries)}")
    check_scoring_files(entries, masks, bench.resolution, classes, workers)
    for option, path in (("--ref-stats", req.ref_stats if opts.fid else None),
                         ("--segmenter-checkpoint", req.segmenter_checkpoint if opts.segmentation else None)):
        if path and not Path(path).exists():
            raise InputError(f"{option} {path}: file does not exist")

    provenance: dict = {
        "benchmark": bench.name, "protocol_hash": bench.protocol.hash,
        "images": [str(Path(d)) for d in req.images], "device": device, "tf32": False,
        "fid_resize": opts.fid_resize, "masks": masks.source if masks is not None else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
    }
    inception = reference = None
    shard = str(req.out).endswith(STATISTICS_SUFFIX)  # statistics only: the merge reads the reference
    if opts.fid:
        inception, sha = load_inception(device, cache=req.cache)
        provenance["fid_inception_sha256"] = sha
        if shard:
            pass
        elif req.ref_stats:
            reference = ReferenceStats.load(req.ref_stats)
            reference.check_compatible(sha, opts.fid_resize, req.ref_stats)
            provenance["ref_stats"] = str(req.ref_stats)
        else:
            reference, path = reference_statistics(bench, req.ref_split, opts.fid_resize, device, req.cache,
                                                   opts.batch_size, workers, model=inception, weights_sha256=sha)
            provenance["ref_stats"] = str(path)
        if reference is not None:
            provenance["ref_stats_key"] = reference.meta.get("key")
    segmenter = None
    if opts.segmentation:
        kind = req.segmenter or seg_cfg["kind"]
        checkpoint = req.segmenter_checkpoint or seg_cfg.get("checkpoint")
        backend, recipe_options = _segmenter_route(req, seg_cfg, kind)
        segmenter = load_segmenter(kind, checkpoint, device=device, backend=backend, **recipe_options)
        used = {"segmenter": kind, "segmenter_backend": backend,
                "segmenter_options": dict(getattr(segmenter, "options", None) or {})}
        provenance["segmenter"] = {"kind": kind, "name": getattr(segmenter, "name", kind), "checkpoint": checkpoint,
                                   "backend": backend, "options": used["segmenter_options"],
                                   "sha256": sha256_tree(checkpoint) if checkpoint and Path(checkpoint).exists() else None}
    lpips_model = None
    if opts.diversity:
        lpips_model, lsha = load_lpips(device, cache=req.cache)
        provenance["lpips_alexnet_sha256"] = lsha

    if shard:
        if opts.diversity:
            raise ConfigError(f"--out {req.out}: shard statistics hold FID and segmentation values; score "
                              "diversity into a .json or .csv row")
        stats = measure_images(entries, resolution=bench.resolution, opts=opts, inception=inception,
                               segmenter=segmenter, masks=masks, num_classes=classes.num_classes,
                               ignore_index=classes.ignore_index)
        stats.meta.update({"benchmark": bench.name, "protocol_hash": bench.protocol.hash,
                           "fid_inception_sha256": provenance.get("fid_inception_sha256"),
                           **({"segmenter": provenance["segmenter"]["kind"], **used} if segmenter is not None else {})})
        stats.provenance = provenance
        stats.save(req.out)
        return {"num_images": len(stats.names), "segmented_images": stats.segmented_images}
    row = score_folder(entries, resolution=bench.resolution, opts=opts, reference=reference, inception=inception,
                       segmenter=segmenter, masks=masks, num_classes=classes.num_classes,
                       ignore_index=classes.ignore_index, lpips_model=lpips_model)
    row["protocol_hash"] = bench.protocol.hash  # which protocol (scpdiff protocol) the row was scored under
    if segmenter is not None:
        row.update(used)  # which route and recipe options made the labels (issue 14, 21)
    _write(row, provenance, req.out)
    return row


STATISTICS_SUFFIX = ".npz"


@dataclass(frozen=True)
class MergeRequest:
    """``scpdiff merge-scores``: the shard statistics of one setting (from ``scpdiff score --out
    X.npz``), the label maps they must cover (``split``), the reference statistics and the options
    of the row (``options.miou_average=None``: the benchmark segmenter's rule)."""

    statistics: Sequence[str]
    benchmark: str
    out: str
    options: ScoreOptions
    split: str | None = "val"
    ref_stats: str | None = None
    allow_subset: bool = False


def merge_scores(req: MergeRequest) -> dict:
    """The row of a setting from its shards' statistics: the same numbers, keys and provenance as
    one pass of :func:`score_images` over every image (the shards' bootstrap units are the union of
    their label maps)."""
    bench = load_benchmark(req.benchmark)
    check_output_path(req.out, "file", "--out (the metrics file)")
    for path in req.statistics:
        if not Path(path).is_file():
            raise InputError(f"--statistics {path}: file does not exist")
    stats = ImageStatistics.merge([ImageStatistics.load(p) for p in req.statistics], [str(p) for p in req.statistics])
    if stats.features is not None and len(stats.names) < 2:
        raise InputError(f"--statistics {' '.join(map(str, req.statistics))}: FID needs at least 2 images, found {len(stats.names)}")
    if stats.meta.get("benchmark", bench.name) != bench.name:
        raise InputError(f"--statistics {req.statistics[0]}: scored for benchmark {stats.meta['benchmark']!r}, not {bench.name!r}")
    opts = req.options
    opts = dataclasses.replace(opts, miou_average=opts.miou_average or bench["segmenter"].get("miou_average", MIOU_AVERAGE),
                               fid_resize=stats.meta.get("fid_resize") or opts.fid_resize,
                               segment_per_map=stats.meta.get("segment_per_map"))
    if req.split is not None:
        masks = _masks(ScoreRequest(images=[], benchmark=req.benchmark, out=req.out, options=opts, split=req.split),
                       bench, need=True)
        check_coverage([ImageEntry(Path(n), n) for n in stats.names], masks.names, masks.source, req.allow_subset)
    reference = None
    provenance = dict(stats.provenance)
    if stats.features is not None:
        if not req.ref_stats:
            raise InputError("--ref-stats: the shard statistics hold Inception features; FID needs the reference statistics")
        if not Path(req.ref_stats).exists():
            raise InputError(f"--ref-stats {req.ref_stats}: file does not exist")
        reference = ReferenceStats.load(req.ref_stats)
        reference.check_compatible(stats.meta.get("fid_inception_sha256"), opts.fid_resize, req.ref_stats)
        provenance.update(ref_stats=str(req.ref_stats), ref_stats_key=reference.meta.get("key"))
    provenance["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.time()
    row = scores_from_statistics(stats, opts=opts, reference=reference)
    row["seconds"] = round(time.time() - t0, 3)
    row["protocol_hash"] = stats.meta.get("protocol_hash", bench.protocol.hash)
    if stats.segmented:
        row.update({k: stats.meta[k] for k in ("segmenter", "segmenter_backend", "segmenter_options") if k in stats.meta})
    row["shards"] = len(req.statistics)
    _write(row, provenance, req.out)
    return row
