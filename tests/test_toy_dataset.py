"""The toy dataset: procedural scenes, the on-disk layout, the reader, and prepare-data's index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from scpdiff.cli import main
from scpdiff.datasets import open_dataset
from scpdiff.datasets.toy import (
    CLASS_NAMES,
    PALETTE,
    ROAD,
    SIDEWALK,
    SKY,
    BUILDING,
    render_scene,
    scene_rng,
    toy_dataset_complete,
    write_toy_dataset,
)
from scpdiff.errors import InputError
from fixtures import smoke_benchmark


def test_scene_is_a_function_of_seed_split_and_index():
    a = render_scene(scene_rng(3, "train", 7), 64, 128)
    b = render_scene(scene_rng(3, "train", 7), 64, 128)
    c = render_scene(scene_rng(3, "val", 7), 64, 128)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[0].dtype == np.uint8 and a[0].shape == (64, 128, 3)
    assert a[1].dtype == np.uint8 and a[1].shape == (64, 128)


def test_scenes_have_street_layout_and_appearance_variation():
    masks, images = [], []
    for i in range(40):
        im, m = render_scene(scene_rng(0, "train", i), 64, 128)
        masks.append(m)
        images.append(im)
    masks, images = np.stack(masks), np.stack(images).astype(np.float64)
    assert set(np.unique(masks)) <= set(range(len(CLASS_NAMES)))
    # sky on top, road and sidewalk at the bottom
    assert np.isin(masks[:, 0], [SKY, BUILDING]).mean() > 0.85
    assert np.isin(masks[:, -1], [ROAD, SIDEWALK]).mean() > 0.5
    # every class appears somewhere in 40 scenes
    assert len(np.unique(masks)) == len(CLASS_NAMES)
    # appearance varies within a class: per-scene mean road colour spreads
    road_means = [images[k][masks[k] == ROAD].mean(0) for k in range(40) if (masks[k] == ROAD).any()]
    assert np.std(np.stack(road_means), axis=0).max() > 5.0


def _write(tmp_path: Path, **kw) -> Path:
    root = tmp_path / "toy"
    params = dict(num_train=5, num_val=3, resolution=(32, 64), seed=1) | kw
    write_toy_dataset(root, **params)
    return root


def test_roundtrip_through_the_reader(tmp_path):
    root = _write(tmp_path)
    ds = open_dataset("toy", root=root, split="train", resolution=(32, 64))
    assert len(ds) == 5 and ds.num_classes == 9 and ds.ignore_index == 255
    assert list(ds.classes.names) == list(CLASS_NAMES)
    assert np.array_equal(ds.classes.palette, PALETTE)
    for i in range(len(ds)):
        image, mask, name = ds[i]
        ref_image, ref_mask = render_scene(scene_rng(1, "train", i), 32, 64)
        assert name == f"train_{i:05d}"
        assert np.array_equal(image, ref_image)
        assert mask.dtype == np.int64 and np.array_equal(mask, ref_mask)
    assert len(open_dataset("toy", root=root, split="val")) == 3


def test_generation_is_skipped_when_complete_and_redone_when_parameters_change(tmp_path):
    root = _write(tmp_path)
    assert toy_dataset_complete(root, 5, 3, (32, 64), 1)
    assert write_toy_dataset(root, 5, 3, (32, 64), 1) is False
    assert write_toy_dataset(root, 6, 3, (32, 64), 1) is True
    assert len(open_dataset("toy", root=root, split="train")) == 6


def test_rendering_in_worker_processes_writes_the_same_files(tmp_path):
    one, three = tmp_path / "one", tmp_path / "three"
    write_toy_dataset(one, 7, 4, (32, 64), 2)
    write_toy_dataset(three, 7, 4, (32, 64), 2, workers=3)
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert len(files) == 2 * (7 + 4)
    assert files == sorted(p.relative_to(three) for p in three.rglob("*.png"))
    for rel in files:
        assert (one / rel).read_bytes() == (three / rel).read_bytes(), rel


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not a toy dataset"):
        write_toy_dataset(root, 2, 1, (32, 64), 0)
    assert (root / "precious.txt").exists()


def test_reader_resizes_image_bilinear_and_mask_nearest(tmp_path):
    root = _write(tmp_path)
    ds = open_dataset("toy", root=root, split="train", resolution=(16, 32))
    image, mask, _ = ds[0]
    assert image.shape == (16, 32, 3) and mask.shape == (16, 32)
    full = np.asarray(Image.open(root / "train" / "labels" / "train_00000.png"))
    assert set(np.unique(mask)) <= set(np.unique(full))


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="prepare-data"):
        open_dataset("toy", root=tmp_path / "nothing", split="train")
    root = _write(tmp_path)
    bad = root / "train" / "labels" / "train_00002.png"
    Image.new("RGB", (64, 32)).save(bad)
    ds = open_dataset("toy", root=root, split="train")
    with pytest.raises(InputError, match="train_00002.png"):
        ds[2]
    (root / "train" / "labels" / "train_00003.png").unlink()
    with pytest.raises(InputError, match="train_00003.png"):
        ds[3]


def _bench_yaml(tmp_path: Path, root: Path, **dataset) -> Path:
    bench = smoke_benchmark()
    bench["name"] = "toytest"
    bench["dataset"] = {"kind": "toy", "root": str(root), "num_train": 6, "num_val": 4, "seed": 2, **dataset}
    bench["resolution"] = [32, 64]
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    return path


def test_prepare_data_generates_checks_and_indexes(tmp_path):
    root = tmp_path / "data"
    bench = _bench_yaml(tmp_path, root)
    out = tmp_path / "work" / "index.json"
    assert main(["prepare-data", "--benchmark", str(bench), "--out", str(out)]) == 0
    index = json.loads(out.read_text())
    assert index["splits"]["train"]["count"] == 6 and index["splits"]["val"]["count"] == 4
    assert index["class_names"] == list(CLASS_NAMES) and index["palette"] == PALETTE.tolist()
    assert index["resolution"] == [32, 64]
    # class pixel fractions against an independent count of the files on disk
    counts = np.zeros(len(CLASS_NAMES))
    for p in sorted((root / "val" / "labels").glob("*.png")):
        counts += np.bincount(np.asarray(Image.open(p)).ravel(), minlength=len(CLASS_NAMES))
    np.testing.assert_allclose(index["splits"]["val"]["class_pixel_fraction"], counts / counts.sum(), atol=1e-6)


def test_prepare_data_reports_bad_labels(tmp_path, capsys):
    root = tmp_path / "data"
    bench = _bench_yaml(tmp_path, root)
    out = tmp_path / "index.json"
    assert main(["prepare-data", "--benchmark", str(bench), "--out", str(out)]) == 0
    label = root / "val" / "labels" / "val_00001.png"
    m = np.asarray(Image.open(label)).copy()
    m[0, 0] = 42
    Image.fromarray(m).save(label)
    out.unlink()
    assert main(["prepare-data", "--benchmark", str(bench), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "val_00001" in err and "42" in err
    assert not out.exists()


def test_prepare_data_with_workers_writes_the_same_index_and_reports_the_same_problems(tmp_path, capsys):
    root = tmp_path / "data"
    bench = _bench_yaml(tmp_path, root, num_train=7, num_val=5)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert main(["prepare-data", "--benchmark", str(bench), "--out", str(one)]) == 0
    assert main(["prepare-data", "--benchmark", str(bench), "--workers", "3", "--out", str(two)]) == 0
    assert json.loads(one.read_text()) == json.loads(two.read_text())
    # a bad item in a later worker's chunk is reported the same way
    label = root / "train" / "labels" / "train_00006.png"
    m = np.asarray(Image.open(label)).copy()
    m[0, 0] = 77
    Image.fromarray(m).save(label)
    capsys.readouterr()
    assert main(["prepare-data", "--benchmark", str(bench), "--workers", "3", "--out", str(tmp_path / "bad.json")]) == 1
    err = capsys.readouterr().err
    assert "train_00006" in err and "77" in err and not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize("kind", ["cityscapes", "ade20k", "cocostuff"])
def test_real_dataset_readers_can_be_checked_in_worker_processes(tmp_path, kind):
    import fixtures

    from scpdiff.datasets.index import check_split
    from scpdiff.datasets import open_dataset

    root = getattr(fixtures, f"make_{kind}_fixture")(tmp_path / kind)
    ds = open_dataset(kind, root=root, split="val", resolution=(32, 64))
    assert len(ds) == 2  # one item per worker: the dataset object itself travels to each process
    assert check_split(ds, workers=2) == check_split(ds, workers=1)
