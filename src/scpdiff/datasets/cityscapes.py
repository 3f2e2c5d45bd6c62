"""Cityscapes (fine annotations) in its official layout, labels as the 19 train ids (255 = ignore).

Expected under ``root`` (the folder holding both unpacked archives ``leftImg8bit_trainvaltest.zip``
and ``gtFine_trainvaltest.zip`` from https://www.cityscapes-dataset.com/downloads/)::

    leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

The sample name is ``{city}_{seq}_{frame}``. Label ids (0-33) become train ids through the official
cityscapesScripts table (``scpdiff/data/cityscapes_labels.csv``); ``labels="labelTrainIds"`` reads
the ``*_gtFine_labelTrainIds.png`` files that cityscapesScripts' ``createTrainIdLabelImgs`` writes
instead. The conditioning palette is the train-id colour of that table (ignore -> black).

``split="train+val"`` lists both splits, train first (each in name order): what the official
SCP-Diff code's loader gives for "train" and for "val" alike (the protocol's defect knob
``cityscapes_split_walk``, docs/protocol.md; its ``os.walk`` filter never runs,
datasets/cityscapes.py:20-49 @ 859f671).

The paper works at 1024x512 (``resolution=(512, 1024)``), half the 2048x1024 originals, which keeps
the aspect ratio: images are bicubic-reduced, masks nearest-sampled (see :mod:`.folders`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from . import class_tables, register_dataset
from .folders import FolderDataset, pair_images_with_masks, require_dir

DOWNLOADS = "https://www.cityscapes-dataset.com/downloads/"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_FILES = {"labelIds": "_gtFine_labelIds.png", "labelTrainIds": "_gtFine_labelTrainIds.png"}

CLASSES = class_tables.cityscapes()[0]  # names, palette, ignore label (scpdiff.datasets.class_info)


@register_dataset("cityscapes")
class CityscapesDataset(FolderDataset):
    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        resolution=(512, 1024),
        fit: str = "stretch",
        labels: str = "labelIds",
    ):
        if labels not in LABEL_FILES:
            raise ConfigError(f"Cityscapes labels must be one of {sorted(LABEL_FILES)}, got {labels!r}")
        root = Path(root)
        require_dir(root, "Cityscapes root", f"expected leftImg8bit/ and gtFine/ from {DOWNLOADS}")
        samples = [s for part in split.split("+") for s in self._split_samples(root, part, labels)]
        _, table = class_tables.cityscapes()
        if labels == "labelTrainIds":
            table = class_tables.cityscapes_train_ids()
        super().__init__(samples, CLASSES, table, split, resolution, fit)

    @staticmethod
    def _split_samples(root: Path, split: str, labels: str):
        image_dir = require_dir(
            root / "leftImg8bit" / split,
            f"Cityscapes images ({split!r} split)",
            f"unpack leftImg8bit_trainvaltest.zip from {DOWNLOADS} into {root}",
        )
        mask_dir = require_dir(
            root / "gtFine" / split,
            f"Cityscapes fine annotations ({split!r} split)",
            f"unpack gtFine_trainvaltest.zip from {DOWNLOADS} into {root}",
        )
        mask_suffix = LABEL_FILES[labels]

        def mask_for(image: Path) -> Path:
            return mask_dir / image.parent.name / (image.name[: -len(IMAGE_SUFFIX)] + mask_suffix)

        return pair_images_with_masks(
            image_dir.glob(f"*/*{IMAGE_SUFFIX}"),
            mask_dir.glob(f"*/*{mask_suffix}"),
            mask_for,
            name_for=lambda image: image.name[: -len(IMAGE_SUFFIX)],
            what=f"Cityscapes {split!r} split in {root}",
        )
