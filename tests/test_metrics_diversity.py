"""Diversity: pairwise LPIPS / MS-SSIM averaging, MS-SSIM window rule, AlexNet weight conversion."""

import itertools

import numpy as np
import pytest
import torch

from scpdiff.errors import InputError
from scpdiff.metrics.diversity import msssim_window, pairwise_lpips, pairwise_ms_ssim
from scpdiff.metrics.networks import build_lpips
from scpdiff.metrics.weights import convert_lpips_alexnet

SHAPES = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]


def _flax_alexnet(seed=0):
    rng = np.random.default_rng(seed)
    return {"AlexNet_0": {f"Conv_{i}": {"kernel": (rng.normal(size=s) * 0.05).astype(np.float32),
                                        "bias": (rng.normal(size=s[-1]) * 0.05).astype(np.float32)}
                          for i, s in enumerate(SHAPES)}}


def test_alexnet_conversion_is_hwio_to_oihw():
    flax = _flax_alexnet()
    state = convert_lpips_alexnet(flax)
    k = flax["AlexNet_0"]["Conv_1"]["kernel"]
    w = state["slice2.3.weight"].numpy()
    assert w.shape == (192, 64, 5, 5)
    # element [kh, kw, in, out] lands at [out, in, kh, kw]
    for kh, kw, i, o in [(0, 0, 0, 0), (4, 1, 63, 7), (2, 3, 5, 191)]:
        assert w[o, i, kh, kw] == k[kh, kw, i, o]
    # the converted trunk computes what the flax conv computes (cross-correlation, NHWC)
    x = np.random.default_rng(1).normal(size=(1, 13, 13, 64)).astype(np.float32)
    ref = np.einsum("hwio,hwi->o", k, x[0, 4:9, 4:9]) + flax["AlexNet_0"]["Conv_1"]["bias"]
    out = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), state["slice2.3.weight"], state["slice2.3.bias"])
    np.testing.assert_allclose(out[0, :, 4, 4].numpy(), ref, rtol=1e-4, atol=1e-5)


def test_build_lpips_strict_and_heads_from_package():
    import lpips
    from pathlib import Path

    model = build_lpips(convert_lpips_alexnet(_flax_alexnet()))
    heads = torch.load(Path(lpips.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.lin3.model[1].weight, heads["lin3.model.1.weight"])
    with pytest.raises(InputError, match="do not fit"):
        bad = convert_lpips_alexnet(_flax_alexnet())
        bad.pop("slice5.10.bias")
        build_lpips(bad)


def test_msssim_window_rule():
    assert msssim_window(256, 512) == 11  # standard window when it fits: side > 160
    assert msssim_window(160, 300) == 9
    assert msssim_window(64, 128) == 3  # the toy resolution
    assert msssim_window(100, 100) == 7
    with pytest.raises(InputError, match="too small"):
        msssim_window(32, 64)


def _samples(k=4, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (1, 3, h // 8, w // 8), generator=g).float()
    out = []
    for i in range(k):
        noise = torch.randint(0, 256, (1, 3, h // 8, w // 8), generator=g).float()
        x = torch.nn.functional.interpolate(0.6 * base + 0.4 * noise, size=(h, w), mode="bilinear")
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def test_pairwise_ms_ssim_is_mean_over_unordered_pairs():
    from pytorch_msssim import ms_ssim

    s = _samples()
    x = s.float() / 255
    pairs = list(itertools.combinations(range(len(s)), 2))
    ref = np.mean([float(ms_ssim(x[i:i + 1], x[j:j + 1], data_range=1.0, win_size=3)) for i, j in pairs])
    assert pairwise_ms_ssim(s, batch_size=4) == pytest.approx(ref, rel=1e-5)
    same = s[:1].repeat(3, 1, 1, 1)
    assert pairwise_ms_ssim(same) == pytest.approx(1.0, abs=1e-5)
    # data_range matters: the same images as 0..255 floats with data_range 1 would be wrong
    assert 0 < pairwise_ms_ssim(s) < 1
    with pytest.raises(InputError, match="at least 2"):
        pairwise_ms_ssim(s[:1])


def test_pairwise_lpips_is_mean_over_unordered_pairs():
    torch.manual_seed(0)
    model = build_lpips(convert_lpips_alexnet(_flax_alexnet()))
    s = _samples(k=3)
    x = s.float() / 127.5 - 1
    with torch.no_grad():
        ref = np.mean([float(model(x[i:i + 1], x[j:j + 1])) for i, j in itertools.combinations(range(3), 2)])
        same = pairwise_lpips(model, s[:1].repeat(2, 1, 1, 1))
    assert pairwise_lpips(model, s, batch_size=2) == pytest.approx(ref, rel=1e-5)
    assert same == pytest.approx(0.0, abs=1e-7)
