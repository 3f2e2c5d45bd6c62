"""The optional mmseg extra: ops stand-in, registered protocol segmentors, stock UPerNet-R101.

Skipped where mmsegmentation is not installed (pip install 'scpdiff[mmseg]').
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg", reason="mmsegmentation not installed: the optional extra pip install 'scpdiff[mmseg]'")

from scpdiff.segmenters import load_segmenter  # noqa: E402
from scpdiff.segmenters import mmseg_models as mm  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
