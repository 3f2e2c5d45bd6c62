"""COCO-Stuff 164k, 182 classes (ids 0-181 as stored in the stuff+thing maps), 255 = unlabeled.

Expected under ``root``::

    images/{train2017,val2017}/XXXXXXXXXXXX.jpg                 (COCO 2017 images, https://cocodataset.org)
    stuffthingmaps_trainval2017/{train2017,val2017}/XXXXXXXXXXXX.png
        (stuffthingmaps_trainval2017.zip from https://github.com/nightrome/cocostuff; the folder may
         also be named annotations/, as in that repository's instructions)

``split`` is ``train``/``val`` (or ``train2017``/``val2017``). Stored values are the class ids
used by the DeepLabV2 evaluation segmenter (11 thing ids are never annotated but stay in the
182-class space so ids match). The conditioning palette is a VOC colour map (see the data file).

Resize/crop policy, the paper's admitted weak point: COCO images have many sizes and aspect
ratios (mostly 640x480 / 480x640) while the UNet needs one shape. ``fit="stretch"`` (default,
as the paper) resizes the whole image to 512x512, distorting shapes; ``fit="center_crop"`` cuts
the largest centred square first (no distortion, borders lost). Both apply identically to the mask
(nearest) and image (bicubic), so labels stay aligned; the choice is recorded with the benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from . import class_tables, register_dataset
from .folders import FolderDataset, pair_jpg_with_png_of_same_stem, require_dir

DOWNLOAD = "https://github.com/nightrome/cocostuff (stuffthingmaps_trainval2017.zip, train2017.zip, val2017.zip)"
MASK_FOLDERS = ("stuffthingmaps_trainval2017", "annotations")
SPLITS = {"train": "train2017", "val": "val2017", "train2017": "train2017", "val2017": "val2017"}

CLASSES = class_tables.cocostuff()[0]  # names, palette, ignore label (scpdiff.datasets.class_info)


@register_dataset("cocostuff")
class COCOStuffDataset(FolderDataset):
    def __init__(self, root: str | os.PathLike, split: str = "train", resolution=(512, 512), fit: str = "stretch"):
        root = Path(root)
        require_dir(root, "COCO-Stuff root", f"expected images/ and stuffthingmaps_trainval2017/ from {DOWNLOAD}")
        if split not in SPLITS:
            raise ConfigError(f"COCO-Stuff split must be one of {sorted(SPLITS)}, got {split!r}")
        folder = SPLITS[split]
        image_dir = require_dir(root / "images" / folder, f"COCO-Stuff images ({split!r} split)", f"from {DOWNLOAD}")
        mask_root = next((root / m for m in MASK_FOLDERS if (root / m).is_dir()), root / MASK_FOLDERS[0])
        mask_dir = require_dir(mask_root / folder, f"COCO-Stuff stuff+thing maps ({split!r} split)", f"from {DOWNLOAD}")
        samples = pair_jpg_with_png_of_same_stem(image_dir, mask_dir, f"COCO-Stuff {split!r} split in {root}")
        _, table = class_tables.cocostuff()
        super().__init__(samples, CLASSES, table, split, resolution, fit)
