"""Dataset readers behind one interface (:class:`SegmentationDataset`), by name.

    ds = scpdiff.datasets.open_dataset("toy", root="data/toy", split="train", resolution=(64, 128))
    image, mask, name = ds[0]
"""

from __future__ import annotations

import sys
from typing import Callable

from ..registry import Registry
from .base import ClassInfo, SegmentationDataset

# readers defined in their own modules, imported on first use
DATASETS: Registry[Callable[..., SegmentationDataset]] = Registry("dataset kind", {
    "toy": "scpdiff.datasets.toy",
    "cityscapes": "scpdiff.datasets.cityscapes",
    "ade20k": "scpdiff.datasets.ade20k",
    "cocostuff": "scpdiff.datasets.cocostuff",
})


def register_dataset(name: str):
    """Class decorator: make a reader available to :func:`open_dataset` under ``name`` (taken once)."""
    return DATASETS.register(name)


def open_dataset(kind: str, **kwargs) -> SegmentationDataset:
    return DATASETS.get(kind)(**kwargs)


def class_info(kind: str) -> ClassInfo:
    """Names, palette and ignore label of dataset ``kind`` without indexing its files: every reader
    module defines a module-level ``CLASSES``, data of the dataset, not of a copy on disk."""
    return sys.modules[DATASETS.get(kind).__module__].CLASSES


def num_classes_for(bench) -> int:
    return class_info(bench["dataset"]["kind"]).num_classes


def open_benchmark_split(bench, split: str) -> SegmentationDataset:
    """The benchmark's dataset for ``split`` ("train"/"val" map to the configured split names)."""
    d = bench["dataset"]
    name = d.get(f"{split}_split", split) if split in ("train", "val") else split
    proto = getattr(bench, "protocol", None)
    if proto is not None and proto["cityscapes_split_walk"] and d["kind"] == "cityscapes" and split in ("train", "val"):
        # the official loader's defect (docs/protocol.md): both splits are train + val
        name = f"{d.get('train_split', 'train')}+{d.get('val_split', 'val')}"
    ds = open_dataset(d["kind"], root=d["root"], split=name, resolution=bench.resolution)
    if proto is not None:
        ds.label_resize = proto["label_resize"]  # the defect knob (docs/protocol.md), off by default
    return ds


__all__ = ["ClassInfo", "SegmentationDataset", "class_info", "num_classes_for", "open_benchmark_split", "open_dataset", "register_dataset"]
