"""Class names, palettes and raw-label -> class-id tables of the paper's datasets, read from data files.

The tables live in ``scpdiff/data/*.csv`` (each names its source in its header comment):

- ``cityscapes_labels.csv``: cityscapesScripts' label table (label id -> train id, colours);
- ``ade20k_classes.csv``: the 150 SceneParsing classes and the CSAIL palette;
- ``cocostuff_classes.csv``: the 182 COCO-Stuff classes and a VOC colour map.

A :class:`LabelTable` turns the integers stored in a dataset's mask files into the class ids the
models and the evaluation segmenters use (``[0, C)`` plus the ignore label 255), and rejects any
integer the dataset does not define.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..errors import InputError
from .base import ClassInfo

IGNORE_INDEX = 255
INVALID = -1  # marks a stored value the dataset does not define


@dataclass(frozen=True)
class LabelTable:
    """Maps every value a mask file may hold (0..255) to a class id, ``IGNORE_INDEX`` or ``INVALID``."""

    lookup: np.ndarray  # int64 [256]
    description: str  # what the stored values are, for error messages

    def to_class_ids(self, stored: np.ndarray, source: str) -> np.ndarray:
        """Map stored values to class ids (int64), raising :class:`InputError` naming ``source``."""
        self.check(stored, source)
        return self.lookup[stored]

    def check(self, stored: np.ndarray, source: str) -> None:
        if stored.size == 0:
            return
        lo, hi = int(stored.min()), int(stored.max())
        if lo < 0 or hi >= len(self.lookup):
            raise InputError(f"{source}: mask value(s) in [{lo}, {hi}] are outside {self.description}")
        present = np.bincount(stored.ravel(), minlength=len(self.lookup)) > 0
        bad = np.flatnonzero(present & (self.lookup == INVALID))
        if bad.size:
            raise InputError(f"{source}: mask value(s) {bad.tolist()[:10]} are not {self.description}")


def _read_csv(filename: str) -> list[dict[str, str]]:
    text = resources.files("scpdiff").joinpath("data", filename).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines))


def _source(filename: str) -> str:
    text = resources.files("scpdiff").joinpath("data", filename).read_text(encoding="utf-8")
    comments = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    return f"scpdiff/data/{filename}: " + " ".join(comments)


def _palette(rows: list[dict[str, str]]) -> np.ndarray:
    return _frozen(np.array([[int(r["r"]), int(r["g"]), int(r["b"])] for r in rows], dtype=np.uint8))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # tables are cached and shared by every reader
    return a


@functools.cache
def cityscapes() -> tuple[ClassInfo, LabelTable]:
    """The 19 Cityscapes train classes and the gtFine label id -> train id table (255 = ignored)."""
    rows = _read_csv("cityscapes_labels.csv")
    train = sorted((int(r["train_id"]), r) for r in rows if 0 <= int(r["train_id"]) < IGNORE_INDEX)
    if [t for t, _ in train] != list(range(len(train))):
        raise AssertionError("cityscapes_labels.csv: train ids must be 0..C-1, each once")
    info = ClassInfo(
        names=tuple(r["name"] for _, r in train),
        palette=_palette([r for _, r in train]),
        ignore_index=IGNORE_INDEX,
        source=_source("cityscapes_labels.csv"),
    )
    lookup = np.full(256, INVALID, dtype=np.int64)
    for r in rows:
        label_id, train_id = int(r["id"]), int(r["train_id"])
        if label_id >= 0:  # 'license plate' (-1) is never stored in labelIds files
            lookup[label_id] = train_id if 0 <= train_id < IGNORE_INDEX else IGNORE_INDEX
    return info, LabelTable(_frozen(lookup), "Cityscapes label ids 0-33 (gtFine_labelIds encoding)")


@functools.cache
def cityscapes_train_ids() -> LabelTable:
    """Table for ``*_gtFine_labelTrainIds.png`` files (made by cityscapesScripts' createTrainIdLabelImgs)."""
    info, _ = cityscapes()
    lookup = np.full(256, INVALID, dtype=np.int64)
    lookup[: info.num_classes] = np.arange(info.num_classes)
    lookup[IGNORE_INDEX] = IGNORE_INDEX
    return LabelTable(_frozen(lookup), f"Cityscapes train ids 0-{info.num_classes - 1} or 255")


@functools.cache
def ade20k() -> tuple[ClassInfo, LabelTable]:
    """The 150 ADE20K classes; stored 0 ('other') -> 255 and i -> i-1 (reduce_zero_label, as UperNet expects)."""
    rows = _read_csv("ade20k_classes.csv")
    if [int(r["index"]) for r in rows] != list(range(1, len(rows) + 1)):
        raise AssertionError("ade20k_classes.csv: indices must be 1..C in order")
    info = ClassInfo(
        names=tuple(r["name"] for r in rows),
        palette=_palette(rows),
        ignore_index=IGNORE_INDEX,
        source=_source("ade20k_classes.csv"),
    )
    lookup = np.full(256, INVALID, dtype=np.int64)
    lookup[0] = IGNORE_INDEX
    lookup[1 : len(rows) + 1] = np.arange(len(rows))
    return info, LabelTable(_frozen(lookup), f"ADE20K annotation values 0-{len(rows)} (0 = other)")


@functools.cache
def cocostuff() -> tuple[ClassInfo, LabelTable]:
    """The 182 COCO-Stuff classes; stored ids are already class ids, 255 = unlabeled."""
    rows = _read_csv("cocostuff_classes.csv")
    if [int(r["id"]) for r in rows] != list(range(len(rows))):
        raise AssertionError("cocostuff_classes.csv: ids must be 0..C-1 in order")
    info = ClassInfo(
        names=tuple(r["name"] for r in rows),
        palette=_palette(rows),
        ignore_index=IGNORE_INDEX,
        source=_source("cocostuff_classes.csv"),
    )
    lookup = np.full(256, INVALID, dtype=np.int64)
    lookup[: len(rows)] = np.arange(len(rows))
    lookup[IGNORE_INDEX] = IGNORE_INDEX
    return info, LabelTable(_frozen(lookup), f"COCO-Stuff class ids 0-{len(rows) - 1} or 255 (unlabeled)")
