"""Write the key/shape manifests of the three published protocol checkpoints.

    python segmenters/make_manifests.py        # rewrites segmenters/*/manifest.json

The layouts are transcribed here from the upstream definitions (fyu/drn ``drn.py`` + ``segment.py``
``DRNSeg``; CSAILVision ``resnet.py`` + ``models.py`` ``Resnet``/``UPerNet`` with fpn_dim 512;
kazuto1011 ``libs/models/resnet.py`` + ``deeplabv2.py`` + ``msc.py``), deliberately without
importing scpdiff, so that ``tests/test_segmenters.py`` checks our modules against an independent
description. Only tensors present in the published files are listed: no ``num_batches_tracked``
(the 2017 DRN file predates it; the loader accepts it either way) and no CSAIL SyncBN
``_tmp_running_*``/``_running_iter`` buffers (the loader drops them).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.{k}": [c] for k in ("weight", "bias", "running_mean", "running_var")}


def conv(prefix: str, cout: int, cin: int, k: int, bias: bool = False) -> dict:
    d = {f"{prefix}.weight": [cout, cin, k, k]}
    if bias:
        d[f"{prefix}.bias"] = [cout]
    return d


def torchvision_bottlenecks(prefix: str, blocks: int, cin: int, planes: int) -> dict:
    """conv1/bn1, conv2/bn2, conv3/bn3 (+ downsample.0/.1 on the first block)."""
    d: dict = {}
    cout = planes * 4
    for i in range(blocks):
        p = f"{prefix}.{i}"
        c_in = cin if i == 0 else cout
        d |= conv(f"{p}.conv1", planes, c_in, 1) | bn(f"{p}.bn1", planes)
        d |= conv(f"{p}.conv2", planes, planes, 3) | bn(f"{p}.bn2", planes)
        d |= conv(f"{p}.conv3", cout, planes, 1) | bn(f"{p}.bn3", cout)
        if i == 0:  # every first block here changes width (and maybe stride): projection shortcut
            d |= conv(f"{p}.downsample.0", cout, c_in, 1) | bn(f"{p}.downsample.1", cout)
    return d


def drn_d_105_cityscapes() -> dict:
    # DRNSeg.base = the DRN's children minus avgpool/fc: layer0..layer8 as base.0..base.8
    d: dict = {}
    d |= conv("base.0.0", 16, 3, 7) | bn("base.0.1", 16)  # layer0: 7x7 stem
    d |= conv("base.1.0", 16, 16, 3) | bn("base.1.1", 16)  # layer1: 1 conv
    d |= conv("base.2.0", 32, 16, 3) | bn("base.2.1", 32)  # layer2: 1 conv, stride 2
    d |= torchvision_bottlenecks("base.3", 3, 32, 64)
    d |= torchvision_bottlenecks("base.4", 4, 256, 128)
    d |= torchvision_bottlenecks("base.5", 23, 512, 256)
    d |= torchvision_bottlenecks("base.6", 3, 1024, 512)
    d |= conv("base.7.0", 512, 2048, 3) | bn("base.7.1", 512)  # layer7
    d |= conv("base.8.0", 512, 512, 3) | bn("base.8.1", 512)  # layer8
    d |= conv("seg", 19, 512, 1, bias=True)
    d["up.weight"] = [19, 1, 16, 16]  # depthwise ConvTranspose2d(19, 19, 16, groups=19)
    return {"drn-d-105_ms_cityscapes.pth": d}


def csail_ade20k_resnet101_upernet() -> dict:
    enc: dict = {}
    enc |= conv("conv1", 64, 3, 3) | bn("bn1", 64)
    enc |= conv("conv2", 64, 64, 3) | bn("bn2", 64)
    enc |= conv("conv3", 128, 64, 3) | bn("bn3", 128)
    enc |= torchvision_bottlenecks("layer1", 3, 128, 64)
    enc |= torchvision_bottlenecks("layer2", 4, 256, 128)
    enc |= torchvision_bottlenecks("layer3", 23, 512, 256)
    enc |= torchvision_bottlenecks("layer4", 3, 1024, 512)
    dec: dict = {}
    fpn_dim, fc_dim = 512, 2048
    for i in range(4):  # pool scales 1, 2, 3, 6
        dec |= conv(f"ppm_conv.{i}.0", 512, fc_dim, 1) | bn(f"ppm_conv.{i}.1", 512)
    dec |= conv("ppm_last_conv.0", fpn_dim, fc_dim + 4 * 512, 3) | bn("ppm_last_conv.1", fpn_dim)
    for i, cin in enumerate((256, 512, 1024)):
        dec |= conv(f"fpn_in.{i}.0", fpn_dim, cin, 1) | bn(f"fpn_in.{i}.1", fpn_dim)
    for i in range(3):
        dec |= conv(f"fpn_out.{i}.0.0", fpn_dim, fpn_dim, 3) | bn(f"fpn_out.{i}.0.1", fpn_dim)
    dec |= conv("conv_last.0.0", fpn_dim, 4 * fpn_dim, 3) | bn("conv_last.0.1", fpn_dim)
    dec |= conv("conv_last.1", 150, fpn_dim, 1, bias=True)
    return {"encoder_epoch_50.pth": enc, "decoder_epoch_50.pth": dec}


def kazuto_deeplabv2_cocostuff164k() -> dict:
    d: dict = {}

    def cbr(prefix: str, cout: int, cin: int, k: int) -> dict:
        return conv(f"{prefix}.conv", cout, cin, k) | bn(f"{prefix}.bn", cout)

    d |= cbr("base.layer1.conv1", 64, 3, 7)
    for layer, (blocks, cin, cout) in {2: (3, 64, 256), 3: (4, 256, 512), 4: (23, 512, 1024), 5: (3, 1024, 2048)}.items():
        mid = cout // 4
        for i in range(1, blocks + 1):
            p = f"base.layer{layer}.block{i}"
            c_in = cin if i == 1 else cout
            d |= cbr(f"{p}.reduce", mid, c_in, 1) | cbr(f"{p}.conv3x3", mid, mid, 3) | cbr(f"{p}.increase", cout, mid, 1)
            if i == 1:
                d |= cbr(f"{p}.shortcut", cout, c_in, 1)
    for i in range(4):  # atrous rates 6, 12, 18, 24
        d |= conv(f"base.aspp.c{i}", 182, 2048, 3, bias=True)
    return {"deeplabv2_resnet101_msc-cocostuff164k-100000.pth": d}


MANIFESTS = {
    "drn_d_105": drn_d_105_cityscapes,
    "upernet_101": csail_ade20k_resnet101_upernet,
    "deeplabv2": kazuto_deeplabv2_cocostuff164k,
}


def main() -> None:
    for kind, make in MANIFESTS.items():
        files = make()
        out = {
            name: {
                "num_tensors": len(keys),
                "num_elements": sum(_numel(s) for s in keys.values()),
                "keys": keys,
            }
            for name, keys in files.items()
        }
        path = HERE / kind / "manifest.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(path, {n: (v["num_tensors"], v["num_elements"]) for n, v in out.items()})


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


if __name__ == "__main__":
    main()
