"""ADE20K SceneParsing (``ADEChallengeData2016``), 150 classes, stored 0 ('other') -> ignore 255.

Expected under ``root`` (the unpacked ``ADEChallengeData2016.zip`` from
http://sceneparsing.csail.mit.edu/, or the folder containing it)::

    images/{training,validation}/ADE_{train,val}_XXXXXXXX.jpg
    annotations/{training,validation}/ADE_{train,val}_XXXXXXXX.png

``split`` may be ``train``/``val`` or the folder names ``training``/``validation``. Annotation value
``i`` in 1..150 becomes class ``i - 1`` and 0 becomes 255: the ``reduce_zero_label`` convention
the UperNet101 evaluation segmenter was trained with, so its predictions and these masks share ids.

The paper works at 512x512. ADE20K images have varied sizes and aspect ratios; by default they are
stretched to 512x512 like the paper's pipeline (``fit="center_crop"`` keeps the aspect instead).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from . import class_tables, register_dataset
from .folders import FolderDataset, pair_jpg_with_png_of_same_stem, require_dir

DOWNLOAD = "http://sceneparsing.csail.mit.edu/ (ADEChallengeData2016.zip)"
FOLDER = "ADEChallengeData2016"
SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}

CLASSES = class_tables.ade20k()[0]  # names, palette, ignore label (scpdiff.datasets.class_info)


@register_dataset("ade20k")
class ADE20KDataset(FolderDataset):
    def __init__(self, root: str | os.PathLike, split: str = "train", resolution=(512, 512), fit: str = "stretch"):
        root = Path(root)
        if (root / FOLDER).is_dir() and not (root / "images").is_dir():
            root = root / FOLDER
        require_dir(root, "ADE20K root", f"expected the unpacked {DOWNLOAD}")
        if split not in SPLITS:
            raise ConfigError(f"ADE20K split must be one of {sorted(SPLITS)}, got {split!r}")
        folder = SPLITS[split]
        image_dir = require_dir(root / "images" / folder, f"ADE20K images ({split!r} split)", f"from {DOWNLOAD}")
        mask_dir = require_dir(
            root / "annotations" / folder, f"ADE20K annotations ({split!r} split)", f"from {DOWNLOAD}"
        )
        samples = pair_jpg_with_png_of_same_stem(image_dir, mask_dir, f"ADE20K {split!r} split in {root}")
        _, table = class_tables.ade20k()
        super().__init__(samples, CLASSES, table, split, resolution, fit)
