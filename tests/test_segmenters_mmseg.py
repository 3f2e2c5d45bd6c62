"""The mmseg route (the ``mmseg`` extra): ops stand-in, registered protocol segmentors, the
``mmseg`` backend giving the plain-torch route's labels, mmseg's IoUMetric vs our mIoU, stock UPerNet-R101.

Skipped where mmsegmentation is not installed (pip install 'scpdiff[mmseg]'), except under
SCPDIFF_REQUIRE_MMSEG=1 (set by .ci/run, whose `make test` installs the extra): there a
missing extra fails the run instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import mmseg  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    if os.environ.get("SCPDIFF_REQUIRE_MMSEG") == "1":
        pytest.fail(f"SCPDIFF_REQUIRE_MMSEG=1 but the mmseg extra is not importable: {exc}", pytrace=False)
    pytest.skip("mmsegmentation not installed: the optional extra pip install 'scpdiff[mmseg]'", allow_module_level=True)

from fixtures.upstream_segmenters.named_weights import named_state_dict  # noqa: E402
from scpdiff.metrics.segmentation import ConfusionMatrix  # noqa: E402

from scpdiff.segmenters import load_segmenter  # noqa: E402
from scpdiff.segmenters import mmseg_models as mm  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.1 + (0.5 if name.endswith("running_var") else 0.0))
    return module


def test_point_sample_standin_is_bilinear_at_pixel_centres():
    import mmcv.ops

    img = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)  # value = 4*row + col
    # (x, y) in 0..1 of the image extent; pixel (col, row) centre is ((col+.5)/4, (row+.5)/3)
    pts = torch.tensor([[[0.5 / 4, 0.5 / 3], [2.5 / 4, 1.5 / 3], [2.0 / 4, 1.0 / 3], [3.0 / 4, 2.0 / 3]]])
    out = mmcv.ops.point_sample(img, pts)
    # by hand: bilinear in (col, row) = (x*4 - .5, y*3 - .5) of f = 4*row + col (linear, so exact)
    expected = [4 * (y * 3 - 0.5) + (x * 4 - 0.5) for x, y in pts[0].tolist()]
    assert out.shape == (1, 1, 4)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)


def test_sigmoid_focal_loss_standin_matches_formula():
    x = torch.tensor([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]], dtype=torch.float64)
    t = torch.tensor([2, 3])  # 3 = background: no positive class
    ours = mm.sigmoid_focal_loss(x, t, gamma=2.0, alpha=0.25, reduction="none")
    p = 1 / (1 + np.exp(-x.numpy()))
    onehot = np.array([[0, 0, 1], [0, 0, 0]])
    ref = onehot * (-0.25 * (1 - p) ** 2 * np.log(p)) + (1 - onehot) * (-0.75 * p**2 * np.log(1 - p))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12)
    assert float(mm.sigmoid_focal_loss(x, t)) == pytest.approx(ref.sum() / 2)


def test_three_protocol_models_are_registered():
    from mmseg.registry import MODELS

    for name in mm.REGISTERED:
        assert MODELS.get(name) is not None


@pytest.mark.parametrize(
    "config, overrides",
    [
        ("drn_d_105_cityscapes_oasis.py", dict(scales=(0.5,))),
        ("upernet_101_ade20k_oasis.py", dict(img_sizes=(32,), img_max_size=64)),
        ("deeplabv2_cocostuff164k_oasis.py", {}),
    ],
)
def test_protocol_segmentor_runs_in_mmseg_like_our_recipe(config, overrides):
    from mmengine.structures import PixelData
    from mmseg.evaluation import IoUMetric
    from mmseg.structures import SegDataSample

    model = mm.build_from_config(mm.config_path(config), model_overrides={"checkpoint": None, **overrides})
    _randomize(model.net)
    rgb = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(24, 40, 3), dtype=np.uint8))
    sample = SegDataSample(metainfo=dict(img_shape=(24, 40), ori_shape=(48, 80)))
    data = {"inputs": [rgb.permute(2, 0, 1).flip(0).contiguous()], "data_samples": [sample]}  # mmcv loads BGR
    (out,) = model.test_step(data)
    pred = out.pred_sem_seg.data
    # labels at the pipeline's image size (OASIS: labels are downsampled), not resized to ori_shape
    assert pred.shape == (1, 24, 40)
    ours = model.recipe_class(model.net, device="cpu", input_size=None, **overrides).predict(rgb[None])
    assert torch.equal(pred[0], ours[0])
    # the output is what mmseg's evaluator consumes
    out.gt_sem_seg = PixelData(data=pred.clone())
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": [str(i) for i in range(model.recipe_class.num_classes)]}
    metric.process({}, [out.to_dict()])
    assert metric.compute_metrics(metric.results)["mIoU"] == 100.0


def test_stock_upernet_r101_loads_strictly_and_predicts(tmp_path):
    model = mm.build_from_config(mm.config_path(mm.STOCK_UPERNET_CONFIG))
    sd = _randomize(model).state_dict()
    path = tmp_path / "upernet_r101_512x512_160k_ade20k.pth"
    torch.save({"meta": {"mmseg_version": "0.5"}, "state_dict": sd}, path)
    seg = load_segmenter("mmseg_upernet_r101", checkpoint=path)
    loaded = seg.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
    img = torch.from_numpy(np.random.default_rng(1).integers(0, 256, size=(1, 40, 56, 3), dtype=np.uint8))
    labels = seg.predict(img)
    assert labels.shape == (1, 40, 56) and labels.dtype == torch.int64 and int(labels.max()) < 150
    assert seg.output_size((40, 56)) == (40, 56)


# ------------------------------------------------------- the mmseg backend vs the plain-torch route

UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "upstream_segmenters"


def _save_named(kind: str, folder: Path) -> Path:
    """The published file(s) of ``kind`` holding the weights drawn by name (the upstream fixtures')."""
    from scpdiff.segmenters import deeplabv2, drn, upernet

    if kind == "upernet_101":
        net = upernet.CSAILUPerNet()
        torch.save(named_state_dict(net.encoder.state_dict()), folder / upernet.PUBLISHED_ENCODER.filename)
        torch.save(named_state_dict(net.decoder.state_dict()), folder / upernet.PUBLISHED_DECODER.filename)
        return folder
    if kind == "drn_d_105":
        path = folder / drn.PUBLISHED.filename
        torch.save(named_state_dict(drn.DRNSeg().state_dict(), keep=["up.weight"]), path)
        return path
    path = folder / deeplabv2.PUBLISHED.filename
    torch.save(named_state_dict(deeplabv2.MSC(deeplabv2.DeepLabV2()).state_dict()), path)
    return path


def _recipe_options(kind: str, fixture) -> dict:
    if kind == "drn_d_105":
        return {"input_size": None, "scales": tuple(float(s) for s in fixture["scales"])}
    if kind == "upernet_101":
        return {"img_sizes": tuple(int(s) for s in fixture["img_sizes"]), "img_max_size": int(fixture["img_max_size"])}
    return {}


@pytest.mark.parametrize("kind", ["drn_d_105", "upernet_101", "deeplabv2"])
def test_mmseg_backend_predicts_the_torch_route_labels_and_upstreams(kind, tmp_path):
    # same published files, same images: the plain-torch route, the mmseg route and the upstream
    # test code (fixture) give the same label maps, bit for bit
    fixture = np.load(UPSTREAM / f"{kind}.npz")
    checkpoint = _save_named(kind, tmp_path)
    options = _recipe_options(kind, fixture)
    through_mmseg = load_segmenter(kind, checkpoint, backend="mmseg", **options)
    plain = load_segmenter(kind, checkpoint, **options)
    assert isinstance(through_mmseg, mm.MMSegProtocolSegmenter) and through_mmseg.name == kind
    for i in range(2):
        image = torch.from_numpy(fixture[f"image_{i}"])[None]
        labels = through_mmseg.predict(image)
        assert labels.dtype == torch.int64 and labels.shape == image.shape[:3]
        assert torch.equal(labels, plain.predict(image))
        assert np.array_equal(labels[0].numpy(), fixture[f"labels_{i}"])


def test_mmseg_backend_resizes_like_the_torch_route(tmp_path):
    # DRN's default scoring size (OASIS 512x256) on both routes; toy-sized recipe for speed
    checkpoint = _save_named("drn_d_105", tmp_path)
    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, size=(2, 20, 30, 3), dtype=np.uint8))
    through_mmseg = load_segmenter("drn_d_105", checkpoint, backend="mmseg", scales=(), input_size=(24, 40))
    plain = load_segmenter("drn_d_105", checkpoint, scales=(), input_size=(24, 40))
    assert through_mmseg.output_size((20, 30)) == (24, 40) == plain.output_size((20, 30))
    assert torch.equal(through_mmseg.predict(images), plain.predict(images))
    assert load_segmenter("drn_d_105", checkpoint, backend="mmseg").label_size == (256, 512)


def test_mmseg_backend_errors(tmp_path):
    from scpdiff.errors import ConfigError, InputError

    with pytest.raises(InputError, match="drn-d-105_ms_cityscapes.pth"):
        load_segmenter("drn_d_105", tmp_path, backend="mmseg")
    with pytest.raises(ConfigError, match="no mmseg route"):
        load_segmenter("toy", tmp_path, backend="mmseg")
    with pytest.raises(ConfigError, match="backend 'tensorflow'"):
        load_segmenter("drn_d_105", tmp_path, backend="tensorflow")


def test_protocol_resize_transform_is_the_torch_routes_resize(tmp_path):
    from mmcv.transforms import Compose
    from PIL import Image

    from scpdiff.segmenters.pil_resize import resize_uint8_like_pil

    rgb = np.random.default_rng(2).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    label = np.random.default_rng(3).integers(0, 19, size=(37, 53), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    Image.fromarray(label).save(tmp_path / "lab.png")
    pipeline = Compose([
        dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="ProtocolResize", scale=(64, 32)),
    ])
    out = pipeline(dict(img_path=str(tmp_path / "img.png"), seg_map_path=str(tmp_path / "lab.png"), reduce_zero_label=False, seg_fields=[]))
    expected = resize_uint8_like_pil(torch.from_numpy(rgb).permute(2, 0, 1), (32, 64), "bicubic").permute(1, 2, 0).numpy()
    assert out["img"].shape == (32, 64, 3) and np.array_equal(out["img"][..., ::-1], expected)  # mmcv keeps BGR
    assert np.array_equal(out["gt_seg_map"], np.asarray(Image.fromarray(label).resize((64, 32), Image.NEAREST)))


# ------------------------------------------------------------------ mmseg's IoUMetric vs ours


def test_mmseg_iou_metric_agrees_with_our_confusion_matrix():
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(7)
    num_classes = 6
    metric = IoUMetric(iou_metrics=["mIoU"], ignore_index=255)
    metric.dataset_meta = {"classes": [f"c{i}" for i in range(num_classes)]}
    ours = ConfusionMatrix(num_classes, ignore_index=255)
    for _ in range(4):
        gt = rng.integers(0, num_classes - 1, size=(20, 30))  # class 5 never in the ground truth
        gt[rng.random(gt.shape) < 0.1] = 255  # ignored pixels
        pred = np.where(rng.random(gt.shape) < 0.6, np.where(gt == 255, 0, gt), rng.integers(0, num_classes, size=gt.shape))
        pred[pred >= 4] = 1  # classes 4 and 5 never predicted
        pred, gt = torch.from_numpy(pred), torch.from_numpy(gt)
        metric.process({}, [{"pred_sem_seg": {"data": pred[None]}, "gt_sem_seg": {"data": gt[None]}}])
        ours.update(pred, gt)
    # class 5: never predicted nor present (NaN, left out); class 4: present, never predicted (IoU 0)
    per_class = np.array([r[0] for r in metric.results]).sum(0) / np.array([r[1] for r in metric.results]).sum(0)
    np.testing.assert_allclose(per_class, ours.class_iou(), rtol=1e-6, equal_nan=True)  # mmseg counts in float32
    results = metric.compute_metrics(metric.results)  # mmseg rounds to 2 decimals of a percent
    assert abs(results["mIoU"] - 100 * ours.miou("accumulated")) <= 0.005 + 1e-9
    assert abs(results["aAcc"] - 100 * ours.pixel_accuracy) <= 0.005 + 1e-9
    assert np.isnan(ours.class_iou()[5]) and ours.class_iou()[4] == 0
