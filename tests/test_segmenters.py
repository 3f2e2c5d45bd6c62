"""The OASIS-protocol evaluation segmenters: published layouts, strict loading, test recipes.

Everything runs with random weights (the published files are not downloaded here); the key/shape
manifests in segmenters/*/manifest.json are transcribed independently from the upstream code by
segmenters/make_manifests.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from scpdiff.errors import InputError
from scpdiff.segmenters import load_segmenter
from scpdiff.segmenters import deeplabv2, drn, upernet
from scpdiff.segmenters.pil_resize import resize_float_like_pil, resize_uint8_like_pil
from scpdiff.segmenters.protocol import MeanStdNormalize, clean_state_dict, manifest_of, to_nchw_float

MANIFESTS = Path(__file__).resolve().parents[1] / "segmenters"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights *and* BN statistics, so a load that silently keeps defaults is caught."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.1 + (0.5 if name.endswith("running_var") else 0.0))
    return module.eval()


def _networks():
    """(kind, {published file: module whose state dict it holds}) for the three segmenters."""
    u = upernet.CSAILUPerNet()
    return {
        "drn_d_105": {"drn-d-105_ms_cityscapes.pth": drn.DRNSeg()},
        "upernet_101": {"encoder_epoch_50.pth": u.encoder, "decoder_epoch_50.pth": u.decoder},
        "deeplabv2": {"deeplabv2_resnet101_msc-cocostuff164k-100000.pth": deeplabv2.MSC(deeplabv2.DeepLabV2())},
    }


@pytest.mark.parametrize("kind", ["drn_d_105", "upernet_101", "deeplabv2"])
def test_parameter_names_and_shapes_match_published_manifest(kind):
    manifest = json.loads((MANIFESTS / kind / "manifest.json").read_text())
    nets = _networks()[kind]
    assert set(manifest) == set(nets)
    for filename, module in nets.items():
        ours = manifest_of(module)
        published = {k: list(v) for k, v in manifest[filename]["keys"].items()}
        assert sorted(set(ours) ^ set(published)) == []
        assert {k: v for k, v in ours.items() if published[k] != v} == {}
        assert sum(int(np.prod(s)) for s in ours.values()) == manifest[filename]["num_elements"]


def test_param_counts_match_papers():
    # DRN README: DRN-D-105 has 54.8M parameters with its 1000-way ImageNet fc (512*1000+1000).
    n = sum(p.numel() for p in drn.DRNSeg().base.parameters()) + 512 * 1000 + 1000
    assert round(n / 1e6, 1) == 54.8


def _save_published(kind: str, folder: Path, nets: dict, seed: int) -> Path:
    """Save random weights the way the upstream files were written (wrappers and all)."""
    for i, (filename, module) in enumerate(nets.items()):
        sd = _randomize(module, seed + i).state_dict()
        if kind == "drn_d_105":  # a pre-0.4 file: no num_batches_tracked, saved from DataParallel
            sd = {f"module.{k}": v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        elif kind == "upernet_101":  # SyncBN bookkeeping buffers, dropped by the loader
            extra = {}
            for k, v in sd.items():
                if k.endswith("running_mean"):
                    stem = k[: -len("running_mean")]
                    extra[stem + "_tmp_running_mean"] = torch.zeros_like(v)
                    extra[stem + "_tmp_running_var"] = torch.ones_like(v)
                    extra[stem + "_running_iter"] = torch.tensor(1)
            sd = {**sd, **extra}
        else:  # wrapped in a training checkpoint dict
            sd = {"state_dict": sd, "iteration": 100000}
        torch.save(sd, folder / filename)
    return folder / next(iter(nets))


@pytest.mark.parametrize("kind", ["drn_d_105", "upernet_101", "deeplabv2"])
def test_strict_save_load_round_trip(kind, tmp_path):
    published = _networks()[kind]
    path = _save_published(kind, tmp_path, published, seed=3)
    seg = load_segmenter(kind, checkpoint=path if kind != "upernet_101" else tmp_path, device="cpu")
    loaded = seg.net.state_dict()
    prefix = {"upernet_101": ["encoder.", "decoder."]}.get(kind, [""])
    for (filename, module), pre in zip(published.items(), prefix):
        for k, v in module.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            assert torch.equal(loaded[pre + k], v), k
    assert seg.name == kind


def test_upernet_accepts_either_published_file(tmp_path):
    nets = _networks()["upernet_101"]
    _save_published("upernet_101", tmp_path, nets, seed=1)
    seg = load_segmenter("upernet_101", checkpoint=tmp_path / "decoder_epoch_50.pth")
    assert torch.equal(seg.net.decoder.conv_last[1].bias, nets["decoder_epoch_50.pth"].conv_last[1].bias)


@pytest.mark.parametrize(
    "kind, filename, url_part",
    [
        ("drn_d_105", "drn-d-105_ms_cityscapes.pth", "yf.io"),
        ("upernet_101", "encoder_epoch_50.pth", "sceneparsing.csail.mit.edu"),
        ("deeplabv2", "deeplabv2_resnet101_msc-cocostuff164k-100000.pth", "github.com/kazuto1011"),
    ],
)
def test_missing_checkpoint_names_file_and_source(kind, filename, url_part, tmp_path):
    for checkpoint in (None, tmp_path / "nowhere.pth", tmp_path):
        with pytest.raises(InputError) as err:
            load_segmenter(kind, checkpoint=checkpoint)
        assert filename in str(err.value) and url_part in str(err.value)


def test_mismatching_checkpoint_is_a_clear_error(tmp_path):
    sd = _randomize(drn.DRNSeg()).state_dict()
    del sd["seg.bias"]
    sd["seg.weight"] = torch.zeros(18, 512, 1, 1)  # a 18-class model
    path = tmp_path / "drn-d-105_ms_cityscapes.pth"
    torch.save(sd, path)
    with pytest.raises(InputError, match=r"seg\.bias.*seg\.weight \(18, 512, 1, 1\)"):
        load_segmenter("drn_d_105", checkpoint=path)
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(InputError, match="cannot be read"):
        load_segmenter("drn_d_105", checkpoint=path)


def test_clean_state_dict_unwraps_strips_and_drops():
    t = torch.zeros(1)
    raw = {"state_dict": {"module.a.weight": t, "module.bn._tmp_running_mean": t, "bn._running_iter": t, "b": t}}
    assert list(clean_state_dict(raw, "x")) == ["a.weight", "b"]
    with pytest.raises(InputError, match="x: not a state dict"):
        clean_state_dict([1, 2], "x")


# ------------------------------------------------------------------------ resizing against PIL

FILTERS = [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)]
# (H, W) sources: odd, tiny, one-pixel, the protocol sizes; targets by scale factor and by size
SOURCES = [(20, 36), (13, 29), (7, 5), (1, 9), (37, 53), (256, 512)]
SCALES = [0.5, 0.75, 1.25, 1.5, 1.75, 0.3, 2.6]


def _targets(h, w):
    out = {(max(int(h * s), 1), max(int(w * s), 1)) for s in SCALES}
    return sorted(out | {(h, w + 1), (h + 3, w), (1, 1), (3 * h, 2 * w)})


def _scene(h, w, seed):
    """Noise over flat patches and hard edges: every rounding case appears somewhere."""
    img = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = 250
    img[:, : w // 5] = 3
    return img


@pytest.mark.parametrize("mode, resample", FILTERS)
def test_uint8_resize_equals_pil_exactly(mode, resample):
    checked = 0
    for h, w in SOURCES:
        img = _scene(h, w, seed=h * w)
        x = torch.from_numpy(img).permute(2, 0, 1)[None]
        for th, tw in _targets(h, w):
            if th * tw > 1200 * 1200:
                continue
            ref = np.asarray(Image.fromarray(img).resize((tw, th), resample))
            ours = resize_uint8_like_pil(x.float(), (th, tw), mode, backend="torch")[0].permute(1, 2, 0).numpy()
            assert np.array_equal(ours, ref), (h, w, th, tw, np.abs(ours - ref).max(), (ours != ref).mean())
            checked += 1
    assert checked > 60
    # uint8 in, uint8 out, whichever backend
    for backend in ("torch", "pillow"):
        assert resize_uint8_like_pil(x, (10, 20), mode, backend=backend).dtype == torch.uint8


@pytest.mark.parametrize("mode, resample", FILTERS)
def test_float_resize_equals_pil_exactly(mode, resample):
    # fyu/drn's resize_4d_tensor: PIL on float ('F') images, up- and downscaling
    for h, w in SOURCES[:5]:
        a = (np.random.default_rng(h + w).normal(size=(2, h, w)) * 50).astype(np.float32)
        for th, tw in _targets(h, w):
            ref = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((tw, th), resample)) for c in a])
            ours = resize_float_like_pil(torch.from_numpy(a)[None], (th, tw), mode, backend="torch")[0].numpy()
            assert np.array_equal(ours, ref), (h, w, th, tw, np.abs(ours - ref).max())


def test_resize_torch_antialias_is_not_pil():
    # why the port exists: torch's antialiased kernels (float32 weights) miss PIL's roundings
    img = _scene(256, 512, seed=3)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    ref = np.asarray(Image.fromarray(img).resize((640, 320), Image.BILINEAR)).transpose(2, 0, 1)
    torch_way = torch.nn.functional.interpolate(x, (320, 640), mode="bilinear", antialias=True)
    assert (torch_way[0].add(0.5).floor().clamp(0, 255).numpy() != ref).any()
    for backend in ("torch", "pillow"):
        assert np.array_equal(resize_uint8_like_pil(x, (320, 640), "bilinear", backend=backend)[0].numpy(), ref)


def test_resize_backends_agree_on_batches():
    # the Pillow backend (auto on the CPU) and the port on [B, C, H, W] batches of both kinds
    x = torch.from_numpy(np.stack([_scene(30, 44, s) for s in (1, 2)])).permute(0, 3, 1, 2).float()
    f = torch.randn(2, 5, 30, 44) * 30
    for size in [(45, 66), (17, 23)]:
        assert torch.equal(resize_uint8_like_pil(x, size, "bicubic"), resize_uint8_like_pil(x, size, "bicubic", backend="torch"))
        assert torch.equal(resize_float_like_pil(f, size, "bilinear"), resize_float_like_pil(f, size, "bilinear", backend="torch"))


def test_resize_rejects_unknown_filter_and_backend():
    with pytest.raises(InputError, match="nearest"):
        resize_uint8_like_pil(torch.zeros(1, 3, 4, 4), (2, 2), "nearest")
    with pytest.raises(InputError, match="backend 'cv2'"):
        resize_float_like_pil(torch.zeros(1, 3, 4, 4), (2, 2), "bilinear", backend="cv2")


# ------------------------------------------------------------------ normalisation and layout


def test_normalisation_is_upstream_order_in_float32():
    img = _images(1, 16, 24, seed=8)
    x = to_nchw_float(img)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ours = MeanStdNormalize(mean, std, torch.device("cpu"))(x)
    # CSAIL img_transform: np.float32(img) / 255., then torchvision Normalize (float32 mean/std)
    ref = img[0].numpy().astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    ref = (ref - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    assert ours.dtype == torch.float32 and np.array_equal(ours[0].numpy(), ref)
    folded = (x - torch.tensor(mean).view(1, 3, 1, 1) * 255) / (torch.tensor(std).view(1, 3, 1, 1) * 255)
    assert not torch.equal(folded, ours)  # the constants folded into 255*mean differ in the last bits


def test_inputs_are_contiguous_nchw():
    x = to_nchw_float(_images(2, 8, 12))
    assert x.shape == (2, 3, 8, 12) and x.is_contiguous()
    assert not x.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------------- multi-scale recipes


def _images(b, h, w, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, size=(b, h, w, 3), dtype=np.uint8))


class _ToyDRN(nn.Module):
    """Stands in for DRNSeg: same contract (normalised RGB -> log-probs at the input size)."""

    def __init__(self, classes=19):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1)
        _randomize(self, 5)

    def forward(self, x):
        return torch.log_softmax(self.conv(x), dim=1)


@torch.no_grad()
def test_drn_recipe_sums_log_softmax_over_six_scales():
    net = _ToyDRN()
    seg = drn.DRNSegmenter(net, input_size=None)
    img = _images(1, 24, 40)
    x = img.permute(0, 3, 1, 2).float()
    ours = seg.score_maps(x).double()
    # by hand: sizes (int(h*s), int(w*s)); Cityscapes mean/std of fyu/drn's info.json
    mean = torch.tensor([0.29010095242892997, 0.32808144844279574, 0.28696394422942517], dtype=torch.float64)
    std = torch.tensor([0.1829540508368939, 0.18656561047509476, 0.18447508988480435], dtype=torch.float64)
    expected = torch.zeros(1, 19, 24, 40, dtype=torch.float64)
    sizes = []
    for s in (1.0, 0.5, 0.75, 1.25, 1.5, 1.75):
        hw = (int(24 * s), int(40 * s))
        sizes.append(hw)
        xs = (x if s == 1.0 else resize_uint8_like_pil(x, hw, "bicubic")).double()
        out = net((((xs / 255.0) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).float())
        expected += resize_float_like_pil(out, (24, 40), "bilinear").double()
    assert sizes == [(24, 40), (12, 20), (18, 30), (30, 50), (36, 60), (42, 70)]
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)  # float32 normalisation and sums
    # a sum of six log-probabilities is at most 0 and its exp is not a distribution
    assert float(ours.max()) <= 0 and not torch.allclose(ours.exp().sum(1), torch.ones(1, 24, 40, dtype=torch.float64))


def test_drn_scores_at_oasis_size_by_default():
    seg = drn.DRNSegmenter(_ToyDRN(), scales=())
    labels = seg.predict(_images(2, 64, 128))
    assert seg.label_size == (256, 512) and seg.output_size((64, 128)) == (256, 512)
    assert labels.shape == (2, 256, 512) and labels.dtype == torch.int64
    seg = drn.DRNSegmenter(_ToyDRN(), input_size=(32, 64), scales=(0.5,))
    assert seg.predict(_images(1, 64, 128)).shape == (1, 32, 64)


def test_drn_up_is_fyu_fill_up_weights():
    up = drn.DRNSeg(num_classes=2).up.weight
    # fill_up_weights for a 16x16 kernel: f=8, c=15/16, w[i,j]=(1-|i/8-c|)(1-|j/8-c|)
    ramp = [1 - abs(i / 8 - 15 / 16) for i in range(16)]
    assert up.shape == (2, 1, 16, 16) and not up.requires_grad
    assert abs(float(up[1, 0, 3, 7]) - ramp[3] * ramp[7]) < 1e-7
    # a constant map stays constant away from the border after the x8 transposed convolution
    y = nn.functional.conv_transpose2d(torch.ones(1, 2, 6, 6), up, stride=8, padding=4, groups=2)
    assert y.shape[-1] == 48 and torch.allclose(y[..., 8:-8, 8:-8], torch.ones(1), atol=1e-6)


class _ToyUPerNet(nn.Module):
    """Stands in for CSAILUPerNet: normalised RGB -> 150 logits at 1/4 resolution."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.conv = nn.Conv2d(3, 150, 1)
        _randomize(self, 6)

    def forward(self, x):
        return self.conv(self.pool(x)) * 20


def test_upernet_test_sizes_by_hand():
    sizes = upernet.UPerNetSegmenter(_ToyUPerNet()).scaled_input_sizes((40, 60))
    # short side s -> scale min(s/40, 1000/60) -> (int(40*scale), int(60*scale)) rounded up to /32
    assert sizes == [(320, 480), (384, 576), (480, 704), (544, 800), (608, 928)]
    # the 1000-pixel cap on the long side binds for a wide image
    assert upernet.scaled_input_size((100, 400), 600) == (256, 1024)


@torch.no_grad()
def test_upernet_recipe_averages_softmax_over_five_sizes():
    net = _ToyUPerNet()
    seg = upernet.UPerNetSegmenter(net, img_sizes=(24, 40, 56), img_max_size=100)
    img = _images(2, 20, 28, seed=2)
    x = img.permute(0, 3, 1, 2).float()
    ours = seg.score_maps(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = torch.zeros(2, 150, 20, 28)
    for hw in [(32, 64), (64, 64), (64, 96)]:  # 24: x1.2 -> 24x33; 40: x2 -> 40x56; 56: x2.8 -> 56x78
        xs = resize_uint8_like_pil(x, hw, "bilinear")
        logits = net((xs / 255.0 - mean) / std)
        up = nn.functional.interpolate(logits, (20, 28), mode="bilinear", align_corners=False)
        expected += torch.softmax(up, 1) / 3
    assert seg.scaled_input_sizes((20, 28)) == [(32, 64), (64, 64), (64, 96)]
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.sum(1), torch.ones(2, 20, 28))  # a probability average
    labels = seg.predict(img)
    assert labels.shape == (2, 20, 28) and torch.equal(labels, expected.argmax(1))


class _ToyDeepLab(nn.Module):
    """Stands in for DeepLabV2: output stride 8 logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 182, 3, stride=8, padding=1)
        _randomize(self, 7)

    def forward(self, x):
        return self.conv(x)


@torch.no_grad()
def test_deeplab_msc_is_pixelwise_max_over_three_scales():
    base = _ToyDeepLab()
    msc = deeplabv2.MSC(base)
    x = torch.randn(1, 3, 41, 57)
    ours = msc(x)
    full = base(x)
    by_hand = [full]
    for s, hw in [(0.5, (20, 28)), (0.75, (30, 42))]:  # floor(41*s), floor(57*s)
        xs = nn.functional.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        assert tuple(xs.shape[-2:]) == hw
        by_hand.append(nn.functional.interpolate(base(xs), full.shape[-2:], mode="bilinear", align_corners=False))
    expected = torch.maximum(torch.maximum(by_hand[0], by_hand[1]), by_hand[2])
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    assert (ours > full).any()  # the other scales do win somewhere


@torch.no_grad()
def test_deeplab_recipe_bgr_mean_and_label_size():
    base = _ToyDeepLab()
    seg = deeplabv2.DeepLabV2Segmenter(deeplabv2.MSC(base))
    img = _images(1, 33, 49, seed=4)
    bgr = img.numpy()[0, ..., ::-1].astype(np.float64) - np.array([104.008, 116.669, 122.675])
    x = torch.from_numpy(bgr.copy()).permute(2, 0, 1)[None].float()
    logits = nn.functional.interpolate(deeplabv2.MSC(base)(x), (33, 49), mode="bilinear", align_corners=False)
    torch.testing.assert_close(seg.score_maps(img.permute(0, 3, 1, 2).float()), logits, rtol=1e-5, atol=1e-4)
    labels = seg.predict(img)
    assert seg.label_size is None and labels.shape == (1, 33, 49) and torch.equal(labels, logits.argmax(1))


def test_predict_rejects_bad_images():
    seg = deeplabv2.DeepLabV2Segmenter(deeplabv2.MSC(_ToyDeepLab()))
    for bad in (torch.zeros(1, 8, 8, 3), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(8, 8, 3, dtype=torch.uint8)):
        with pytest.raises(InputError, match=r"uint8 \[B, H, W, 3\]"):
            seg.predict(bad)


# -------------------------------------------------------------- the real networks, tiny inputs


def test_real_networks_predict_label_maps_at_tiny_size():
    img = _images(1, 24, 40, seed=9)
    segs = [
        drn.DRNSegmenter(_randomize(drn.DRNSeg()), input_size=None),
        upernet.UPerNetSegmenter(_randomize(upernet.CSAILUPerNet()), img_sizes=(32,), img_max_size=64),
        deeplabv2.DeepLabV2Segmenter(_randomize(deeplabv2.MSC(deeplabv2.DeepLabV2()))),
    ]
    for seg, classes in zip(segs, (19, 150, 182)):
        labels = seg.predict(img)
        assert seg.num_classes == classes
        assert labels.shape == (1, 24, 40) and labels.dtype == torch.int64
        assert 0 <= int(labels.min()) and int(labels.max()) < classes


def test_core_does_not_import_the_mmseg_extra():
    import subprocess
    import sys

    code = (
        "import sys, scpdiff.segmenters as s; from scpdiff.segmenters import drn, upernet, deeplabv2, protocol; "
        "assert not any(m.split('.')[0] in ('mmseg', 'mmcv', 'mmengine') for m in sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_runs_without_tf32_and_restores_the_flags():
    seen = []

    class Spy(_ToyDeepLab):
        def forward(self, x):
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return super().forward(x)

    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    try:
        deeplabv2.DeepLabV2Segmenter(deeplabv2.MSC(Spy(), scales=())).predict(_images(1, 16, 16))
        assert seen == [(False, False)] and torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@torch.no_grad()
def test_upernet_normalization_option():
    seen = []

    class Spy(_ToyUPerNet):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    img = _images(1, 20, 28, seed=5)
    x = img.permute(0, 3, 1, 2).float()
    rgb = upernet.UPerNetSegmenter(Spy(), img_sizes=(40,), img_max_size=100)
    bgr = upernet.UPerNetSegmenter(Spy(), img_sizes=(40,), img_max_size=100, normalization="caffe_bgr")
    assert rgb.options == {"normalization": "imagenet_rgb"} and bgr.options == {"normalization": "caffe_bgr"}
    rgb.score_maps(x), bgr.score_maps(x)
    resized = resize_uint8_like_pil(x, (64, 64), "bilinear")  # 20x28 at short side 40 -> 40x56 -> /32
    # CSAIL before PR #190: OpenCV BGR, float32, minus [102.9801, 115.9465, 122.7717], std 1
    expected = resized.flip(1) - torch.tensor([102.9801, 115.9465, 122.7717]).view(1, 3, 1, 1)
    assert torch.equal(seen[1], expected) and seen[1].is_contiguous()
    assert not torch.allclose(seen[0], seen[1])
    with pytest.raises(InputError, match="normalization 'bgr'"):
        upernet.UPerNetSegmenter(Spy(), normalization="bgr")
