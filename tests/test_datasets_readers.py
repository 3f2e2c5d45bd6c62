"""The Cityscapes / ADE20K / COCO-Stuff readers end to end on small fixtures in the official layouts.

References are computed here independently: raw files decoded with PIL, label mappings from
cityscapesScripts or the datasets' documented rules, nearest resampling in exact rationals.
"""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures import make_ade20k_fixture, make_cityscapes_fixture, make_cocostuff_fixture
from PIL import Image

from scpdiff.datasets import open_dataset
from scpdiff.errors import ConfigError, InputError


def exact_nearest(a: np.ndarray, out_hw, box=None) -> np.ndarray:
    """Nearest resampling of ``a``'s window ``box`` (rationals) by the pixel-centre rule, exactly."""
    h, w = a.shape[:2]
    left, top, right, bottom = box or (Fraction(0), Fraction(0), Fraction(w), Fraction(h))
    th, tw = out_hw
    rows = [min(int(top + (bottom - top) * Fraction(2 * i + 1, 2 * th)), h - 1) for i in range(th)]
    cols = [min(int(left + (right - left) * Fraction(2 * j + 1, 2 * tw)), w - 1) for j in range(tw)]
    return a[np.ix_(rows, cols)]


def raw(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def torch_bicubic(image: np.ndarray, out_hw) -> np.ndarray:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].double()
    y = F.interpolate(x, size=out_hw, mode="bicubic", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).clamp(0, 255).numpy()


@pytest.fixture()
def cityscapes_root(tmp_path):
    return make_cityscapes_fixture(tmp_path / "cityscapes", block=1)


@pytest.fixture()
def ade20k_root(tmp_path):
    return make_ade20k_fixture(tmp_path / "ade", block=1)


@pytest.fixture()
def cocostuff_root(tmp_path):
    return make_cocostuff_fixture(tmp_path / "coco", block=1)


# ---------------------------------------------------------------- Cityscapes


def test_cityscapes_end_to_end(cityscapes_root):
    labels_mod = pytest.importorskip("cityscapesscripts.helpers.labels")
    id2train = {l.id: (l.trainId if 0 <= l.trainId < 255 else 255) for l in labels_mod.labels}
    ds = open_dataset("cityscapes", root=cityscapes_root, split="train", resolution=(32, 64))
    assert len(ds) == 4 and ds.num_classes == 19 and ds.ignore_index == 255
    assert [ds[i][2] for i in range(len(ds))] == [
        "aachen_000000_000019",
        "aachen_000001_000020",
        "bochum_000000_000019",
        "bochum_000001_000020",
    ]
    seen = set()
    for i in range(len(ds)):
        image, mask, name = ds[i]
        city = name.split("_")[0]
        ids = raw(cityscapes_root / "gtFine/train" / city / f"{name}_gtFine_labelIds.png")
        expected = np.vectorize(id2train.get)(exact_nearest(ids, (32, 64)))
        assert mask.dtype == np.int64 and mask.shape == (32, 64)
        np.testing.assert_array_equal(mask, expected)
        assert image.dtype == np.uint8 and image.shape == (32, 64, 3)
        src = raw(cityscapes_root / "leftImg8bit/train" / city / f"{name}_leftImg8bit.png")
        assert np.abs(image - torch_bicubic(src, (32, 64))).mean() < 1.5
        seen |= set(np.unique(mask).tolist())
    assert seen <= set(range(19)) | {255} and len(seen) > 10


def test_cityscapes_native_resolution_is_untouched(cityscapes_root):
    ds = open_dataset("cityscapes", root=cityscapes_root, split="val", resolution=None)
    image, mask, name = ds[0]
    src = raw(cityscapes_root / "leftImg8bit/val/frankfurt" / f"{name}_leftImg8bit.png")
    np.testing.assert_array_equal(image, src)
    assert mask.shape == src.shape[:2]


def test_cityscapes_label_train_ids_files(cityscapes_root):
    ds_ids = open_dataset("cityscapes", root=cityscapes_root, split="val", resolution=None)
    # write *_gtFine_labelTrainIds.png as cityscapesScripts' createTrainIdLabelImgs would
    for i in range(len(ds_ids)):
        _, mask, name = ds_ids[i]
        path = cityscapes_root / "gtFine/val/frankfurt" / f"{name}_gtFine_labelTrainIds.png"
        Image.fromarray(mask.astype(np.uint8)).save(path)
    ds_train = open_dataset("cityscapes", root=cityscapes_root, split="val", resolution=None, labels="labelTrainIds")
    for i in range(len(ds_ids)):
        np.testing.assert_array_equal(ds_train[i][1], ds_ids[i][1])


# ---------------------------------------------------------------- ADE20K


@pytest.mark.parametrize("split, folder", [("train", "training"), ("validation", "validation")])
def test_ade20k_end_to_end(ade20k_root, split, folder):
    ds = open_dataset("ade20k", root=ade20k_root, split=split, resolution=(32, 32))
    assert ds.num_classes == 150 and len(ds) == {"training": 3, "validation": 2}[folder]
    for i in range(len(ds)):
        image, mask, name = ds[i]
        stored = raw(ade20k_root / "annotations" / folder / f"{name}.png").astype(np.int64)
        expected = np.where(stored == 0, 255, stored - 1)  # reduce_zero_label
        np.testing.assert_array_equal(mask, exact_nearest(expected, (32, 32)))
        src = raw(ade20k_root / "images" / folder / f"{name}.jpg")
        assert image.shape == (32, 32, 3)
        assert np.abs(image - torch_bicubic(src, (32, 32))).mean() < 1.5


def test_ade20k_root_may_be_the_parent_folder(ade20k_root):
    ds = open_dataset("ade20k", root=ade20k_root.parent, split="val", resolution=(16, 16))
    assert ds.names == ["ADE_val_00000001", "ADE_val_00000002"]


# ---------------------------------------------------------------- COCO-Stuff


@pytest.mark.parametrize("mask_folder", ["stuffthingmaps_trainval2017", "annotations"])
def test_cocostuff_end_to_end_stretch(tmp_path, mask_folder):
    root = make_cocostuff_fixture(tmp_path / "coco", mask_folder=mask_folder, block=1)
    ds = open_dataset("cocostuff", root=root, split="train", resolution=(40, 40))
    assert ds.num_classes == 182 and ds.names == ["000000000009", "000000000025", "000000000030"]
    for i in range(len(ds)):
        image, mask, name = ds[i]
        stored = raw(root / mask_folder / "train2017" / f"{name}.png")
        np.testing.assert_array_equal(mask, exact_nearest(stored, (40, 40)).astype(np.int64))
        assert image.shape == (40, 40, 3)


def test_cocostuff_center_crop_keeps_aspect_and_alignment(cocostuff_root):
    # 000000000009 is 48x64 (HxW): the centred square window is columns 8..56
    ds = open_dataset("cocostuff", root=cocostuff_root, split="train", resolution=(24, 24), fit="center_crop")
    image, mask, name = ds[0]
    stored = raw(cocostuff_root / "stuffthingmaps_trainval2017/train2017" / f"{name}.png")
    src = raw(cocostuff_root / "images/train2017" / f"{name}.jpg")
    assert stored.shape == (48, 64)
    np.testing.assert_array_equal(mask, stored[1::2, 9:57:2])  # 2x reduction: centres at odd pixels
    assert np.abs(image - torch_bicubic(src[:, 8:56], (24, 24))).mean() < 3
    # portrait 64x48: the window is rows 8..56
    image, mask, name = ds[1]
    stored = raw(cocostuff_root / "stuffthingmaps_trainval2017/train2017" / f"{name}.png")
    np.testing.assert_array_equal(mask, stored[9:57:2, 1::2])


def test_cocostuff_stretch_distorts_non_square(cocostuff_root):
    ds = open_dataset("cocostuff", root=cocostuff_root, split="train", resolution=(24, 24))
    _, mask, name = ds[0]
    stored = raw(cocostuff_root / "stuffthingmaps_trainval2017/train2017" / f"{name}.png")
    box = (Fraction(0), Fraction(0), Fraction(64), Fraction(48))
    np.testing.assert_array_equal(mask, exact_nearest(stored, (24, 24), box))


# ---------------------------------------------------------------- bad data


def test_mask_size_differs_from_image(cityscapes_root):
    mask_path = cityscapes_root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(mask_path)
    ds = open_dataset("cityscapes", root=cityscapes_root, split="train", resolution=(32, 64))
    with pytest.raises(InputError, match=r"aachen_000000_000019_gtFine_labelIds\.png: mask is 64x32.*is 128x64"):
        ds[0]
    ds[1]  # the other files are fine


@pytest.mark.parametrize("kind, value", [("cityscapes", 34), ("ade20k", 151), ("cocostuff", 200)])
def test_label_outside_the_dataset_set(tmp_path, kind, value):
    builders = {
        "cityscapes": make_cityscapes_fixture,
        "ade20k": make_ade20k_fixture,
        "cocostuff": make_cocostuff_fixture,
    }
    root = builders[kind](tmp_path / kind)
    ds = open_dataset(kind, root=root, split="val", resolution=(16, 16))
    mask_path = ds.samples[1].mask
    stored = raw(mask_path).copy()
    stored[3, 5] = value  # one pixel, which resizing alone could drop
    Image.fromarray(stored).save(mask_path)
    ds[0]
    with pytest.raises(InputError, match=rf"{mask_path.name}: mask value\(s\) \[{value}\] are not"):
        ds[1]


def test_colour_png_instead_of_label_ids(ade20k_root):
    path = ade20k_root / "annotations/validation/ADE_val_00000002.png"
    Image.fromarray(np.zeros((*raw(path).shape, 3), np.uint8)).save(path)
    ds = open_dataset("ade20k", root=ade20k_root, split="val", resolution=(16, 16))
    with pytest.raises(InputError, match="ADE_val_00000002.png: expected a single-channel label image"):
        ds[1]


def test_image_without_mask(cityscapes_root):
    (cityscapes_root / "gtFine/train/bochum/bochum_000001_000020_gtFine_labelIds.png").unlink()
    with pytest.raises(
        InputError,
        match=r"1 image\(s\) without a mask: .*bochum_000001_000020_leftImg8bit\.png "
        r"\(expected .*bochum_000001_000020_gtFine_labelIds\.png\)",
    ):
        open_dataset("cityscapes", root=cityscapes_root, split="train", resolution=(32, 64))


def test_empty_split(tmp_path):
    root = make_cocostuff_fixture(tmp_path / "coco", ids={"train2017": [1], "val2017": []})
    with pytest.raises(InputError, match=r"COCO-Stuff 'val' split .* is empty"):
        open_dataset("cocostuff", root=root, split="val", resolution=(16, 16))


def test_missing_folders(tmp_path, cityscapes_root):
    with pytest.raises(InputError, match=r"Cityscapes root: folder .*nowhere does not exist"):
        open_dataset("cityscapes", root=tmp_path / "nowhere", split="train", resolution=(32, 64))
    with pytest.raises(InputError, match=r"\('test' split\): folder .*leftImg8bit/test does not exist.*'train', 'val'"):
        open_dataset("cityscapes", root=cityscapes_root, split="test", resolution=(32, 64))
    shutil.rmtree(cityscapes_root / "gtFine")
    with pytest.raises(InputError, match=r"gtFine/train does not exist.*gtFine_trainvaltest\.zip"):
        open_dataset("cityscapes", root=cityscapes_root, split="train", resolution=(32, 64))


def test_unknown_split_and_fit(ade20k_root):
    with pytest.raises(ConfigError, match="ADE20K split"):
        open_dataset("ade20k", root=ade20k_root, split="test", resolution=(16, 16))
    with pytest.raises(InputError, match="unknown fit"):
        open_dataset("ade20k", root=ade20k_root, split="val", resolution=(16, 16), fit="pad")


def test_reading_is_lazy(ade20k_root):
    """Indexing stats no file contents; a file broken after indexing fails only when read, by name."""
    ds = open_dataset("ade20k", root=ade20k_root, split="train", resolution=(16, 16))
    (ade20k_root / "images/training/ADE_train_00000003.jpg").write_bytes(b"not a jpeg")
    ds[0], ds[1]
    with pytest.raises(InputError, match="ADE_train_00000003.jpg: cannot read image file"):
        ds[2]


def test_nearest_resize_matches_exact_rationals():
    from scpdiff.datasets.folders import crop_box, nearest_resize

    rng = np.random.default_rng(0)
    # (48, 9) -> (44, 37) puts target centres exactly on source pixel borders
    cases = [((48, 9), (44, 37), "stretch")] + [
        (tuple(map(int, rng.integers(5, 200, 2))), tuple(map(int, rng.integers(4, 150, 2))), fit)
        for fit in ("stretch", "center_crop")
        for _ in range(100)
    ]
    for (h, w), (th, tw), fit in cases:
        a = rng.integers(0, 256, (h, w)).astype(np.uint8)
        if fit == "stretch":
            box = (Fraction(0), Fraction(0), Fraction(w), Fraction(h))
        elif Fraction(w, h) > Fraction(tw, th):
            cw = h * Fraction(tw, th)
            box = ((w - cw) / 2, Fraction(0), (w + cw) / 2, Fraction(h))
        else:
            ch = w * Fraction(th, tw)
            box = (Fraction(0), (h - ch) / 2, Fraction(w), (h + ch) / 2)
        got = nearest_resize(a, crop_box((w, h), (th, tw), fit), (th, tw))
        np.testing.assert_array_equal(got, exact_nearest(a, (th, tw), box), err_msg=f"{(h, w)} -> {(th, tw)} {fit}")


@pytest.mark.parametrize("fit", ["stretch", "center_crop"])
def test_load_mask_equals_load(cocostuff_root, fit):
    ds = open_dataset("cocostuff", root=cocostuff_root, split="train", resolution=(24, 40), fit=fit)
    for i in range(len(ds)):
        _, mask, name = ds[i]
        mask_only, name_only = ds.load_mask(i)
        assert name_only == name
        np.testing.assert_array_equal(mask_only, mask)
