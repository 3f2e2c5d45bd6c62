"""The dataset interface every reader implements (toy, Cityscapes, ADE20K, COCO-Stuff).

A dataset yields ``(image, mask, name)`` with ``image`` uint8 ``[H, W, 3]`` RGB at the benchmark
resolution, ``mask`` int64 ``[H, W]`` of class ids in ``[0, num_classes)`` or ``ignore_index``,
and ``name`` a stable identifier (the file stem) used to name generated images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ClassInfo:
    """Class names and the conditioning palette (one RGB triple per class id)."""

    names: Sequence[str]
    palette: np.ndarray  # uint8 [C, 3]
    ignore_index: int = 255
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.names)


class SegmentationDataset:
    """Base class. Subclasses set ``classes`` and implement ``__len__`` and ``load(index)``."""

    classes: ClassInfo
    split: str
    resolution: tuple[int, int]  # (H, W)
    # how masks reach the resolution: the protocol knob label_resize (set by open_benchmark_split)
    label_resize: str = "nearest"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.load(index)

    def source_mask(self, index: int) -> np.ndarray:
        """Item ``index``'s class ids at their stored size (the window the resize maps onto the
        benchmark resolution): what ``condition_resize: bilinear_antialias`` colour-codes before
        resizing. Readers that store maps at the benchmark resolution return the item's mask."""
        return self[index][1]

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def ignore_index(self) -> int:
        return self.classes.ignore_index
