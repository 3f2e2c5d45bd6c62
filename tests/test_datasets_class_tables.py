"""Class names, palettes and stored-value -> class-id tables against the official tables."""

from __future__ import annotations

import numpy as np
import pytest

from scpdiff.datasets import class_tables
from scpdiff.datasets import class_info
from scpdiff.errors import InputError


def test_cityscapes_train_ids_match_cityscapesscripts():
    labels_mod = pytest.importorskip("cityscapesscripts.helpers.labels")
    info, table = class_tables.cityscapes()
    for label in labels_mod.labels:
        if label.id < 0:
            continue
        expected = label.trainId if 0 <= label.trainId < 255 else 255
        assert table.lookup[label.id] == expected, label.name
    # every value a labelIds file can hold (0..33) is defined; nothing else is
    assert set(np.flatnonzero(table.lookup != class_tables.INVALID)) == set(range(34))
    # the 19 classes are the official trainId order, names and colours
    official = {l.trainId: l for l in labels_mod.labels if 0 <= l.trainId < 255}
    assert info.num_classes == len(official) == 19
    assert list(info.names) == [official[t].name for t in range(19)]
    assert info.palette.tolist() == [list(official[t].color) for t in range(19)]
    assert info.ignore_index == 255


def test_cityscapes_hand_checked_entries():
    _, table = class_tables.cityscapes()
    # road 7 -> 0, sky 23 -> 10, bicycle 33 -> 18, parking 9 and unlabeled 0 -> ignore
    assert table.lookup[[7, 23, 33, 9, 0]].tolist() == [0, 10, 18, 255, 255]
    assert table.lookup[34] == class_tables.INVALID


def test_ade20k_reduce_zero_label_and_names():
    info, table = class_tables.ade20k()
    assert info.num_classes == 150 and info.palette.shape == (150, 3) and info.palette.dtype == np.uint8
    assert table.lookup[0] == 255  # 'other' -> ignore
    assert table.lookup[1:151].tolist() == list(range(150))
    assert table.lookup[151] == class_tables.INVALID
    # first and last rows of objectInfo150.csv, and two well-known ones
    assert (info.names[0], info.names[2], info.names[12], info.names[149]) == ("wall", "sky", "person", "flag")
    assert info.palette[0].tolist() == [120, 120, 120]
    colours = [tuple(c) for c in info.palette.tolist()]
    duplicated = {c for c in colours if colours.count(c) > 1}
    # the published palette repeats one colour (road / skyscraper), documented in the data file
    assert duplicated == {(140, 140, 140)}
    assert [info.names[i] for i, c in enumerate(colours) if c in duplicated] == ["road", "skyscraper"]


def test_cocostuff_ids_names_and_palette():
    info, table = class_tables.cocostuff()
    assert info.num_classes == 182
    assert table.lookup[:182].tolist() == list(range(182))
    assert table.lookup[255] == 255
    assert (table.lookup[182:255] == class_tables.INVALID).all()
    # labels.txt: 1 person ... 91 hair brush (things), 92 banner ... 182 wood (stuff); id = index - 1
    assert (info.names[0], info.names[11], info.names[90], info.names[91], info.names[181]) == (
        "person",
        "street sign",
        "hair brush",
        "banner",
        "wood",
    )
    colours = {tuple(c) for c in info.palette.tolist()}
    assert len(colours) == 182 and (0, 0, 0) not in colours  # distinct, none the ignore colour


@pytest.mark.parametrize("kind, n", [("cityscapes", 19), ("ade20k", 150), ("cocostuff", 182)])
def test_class_info_without_data(kind, n):
    info = class_info(kind)
    assert info.num_classes == n and info.palette.shape == (n, 3) and "scpdiff/data/" in info.source


def test_label_table_names_the_file_and_bad_values():
    _, table = class_tables.ade20k()
    with pytest.raises(InputError, match=r"x\.png.*\[151, 200\]"):
        table.to_class_ids(np.array([[0, 151], [200, 3]], dtype=np.uint8), "x.png")
    with pytest.raises(InputError, match="y.png"):
        table.to_class_ids(np.array([[300]], dtype=np.int64), "y.png")
    assert table.to_class_ids(np.array([[0, 1, 150]], dtype=np.uint8), "z").tolist() == [[255, 0, 149]]
