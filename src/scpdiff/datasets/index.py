"""The dataset index of a benchmark: its dataset made ready (the toy generated) and every train and
val item read and checked, with counts, names, classes, palette and class pixel fractions.

Each item is read through :func:`scpdiff.datasets.open_dataset` and checked: readable, image and
mask at the benchmark resolution, labels within the classes or the ignore label. Bad items are
listed together in one error, so a broken copy of a dataset is reported whole before any job runs.

    index = prepare_benchmark_data(bench, "work/cityscapes/data/index.json", workers=4)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError, ScpdiffError
from ..utils.files import check_output_path, write_text_atomic
from . import open_dataset

MAX_REPORTED = 10


def _check_items(dataset, indices: range) -> tuple[list[str], list[str], np.ndarray]:
    """Names, problems and per-class pixel counts of the items at INDICES (one worker's chunk)."""
    h, w = dataset.resolution
    c, ignore = dataset.num_classes, dataset.ignore_index
    pixels = np.zeros(c, dtype=np.int64)
    names, problems = [], []
    for i in indices:
        try:
            image, mask, name = dataset[i]
        except ScpdiffError as exc:
            problems.append(f"item {i}: {exc}")
            continue
        names.append(name)
        if image.shape != (h, w, 3) or image.dtype != np.uint8:
            problems.append(f"{name}: image is {image.dtype} {image.shape}, expected uint8 {(h, w, 3)}")
        if mask.shape != (h, w):
            problems.append(f"{name}: mask shape {mask.shape}, expected {(h, w)}")
            continue
        labels = np.unique(mask)
        bad = labels[((labels < 0) | (labels >= c)) & (labels != ignore)]
        if bad.size:
            problems.append(f"{name}: labels {bad.tolist()[:10]} outside [0, {c}) and not the ignore label {ignore}")
            continue
        valid = mask[mask != ignore]
        pixels += np.bincount(valid.ravel(), minlength=c)[:c]
    return names, problems, pixels


def check_split(dataset, workers: int = 1) -> dict:
    """Read every item (in WORKERS processes, in contiguous chunks whose results are joined in item
    order, so the index does not depend on WORKERS); return counts and names, or raise InputError
    listing the bad items."""
    n = len(dataset)
    workers = max(1, min(workers, n))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    chunks = [range(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if workers == 1:
        results = [_check_items(dataset, chunks[0])]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_check_items, [dataset] * len(chunks), chunks))
    names = [name for r in results for name in r[0]]
    problems = [p for r in results for p in r[1]]
    pixels = np.sum([r[2] for r in results], axis=0)
    if len(set(names)) != len(names):
        problems.append("item names are not unique")
    if problems:
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise InputError(
            f"dataset split {dataset.split!r} has {len(problems)} bad item(s):\n  " + "\n  ".join(problems[:MAX_REPORTED]) + more
        )
    total = max(int(pixels.sum()), 1)
    return {"count": len(names), "names": names, "class_pixel_fraction": [round(float(p) / total, 6) for p in pixels]}


def prepare_benchmark_data(bench, out, workers: int = 1, log: Callable[[str], None] = print) -> dict:
    """Generate the toy dataset when ``bench`` is the toy's, check both splits, write the index to ``out``."""
    check_output_path(out, "file", "--out (the index JSON)")  # before the (long) checks
    ds_cfg = bench["dataset"]
    if ds_cfg["kind"] == "toy":
        from .toy import write_toy_dataset

        made = write_toy_dataset(
            ds_cfg["root"],
            num_train=ds_cfg.get("num_train", 2000),
            num_val=ds_cfg.get("num_val", 200),
            resolution=bench.resolution,
            seed=ds_cfg.get("seed", 0),
            workers=workers,
        )
        log(("generated" if made else "found") + f" the toy dataset in {ds_cfg['root']}")
    index = {"benchmark": bench.name, "dataset": ds_cfg["kind"], "root": ds_cfg["root"], "resolution": list(bench.resolution)}
    splits = {}
    for split in ("train", "val"):
        name = ds_cfg.get(f"{split}_split", split)
        dataset = open_dataset(ds_cfg["kind"], root=ds_cfg["root"], split=name, resolution=bench.resolution)
        if split == "train":
            classes = dataset.classes
            index.update(
                class_names=list(classes.names),
                palette=np.asarray(classes.palette).tolist(),
                ignore_index=int(classes.ignore_index),
                num_classes=classes.num_classes,
            )
        splits[split] = {"split": name, **check_split(dataset, workers=workers)}
        log(f"{split} ({name}): {splits[split]['count']} items checked")
    index["splits"] = splits
    write_text_atomic(Path(out), json.dumps(index, indent=1))
    return index
