"""COCO-Stuff evaluation segmenter: DeepLab v2 ResNet-101 MSC (Chen et al., TPAMI 2018).

The network OASIS and SPADE score COCO-Stuff with (paper Appendix A: "DeepLabV2"): kazuto1011's
deeplab-pytorch ``DeepLabV2_ResNet101_MSC(182)`` with the published
``deeplabv2_resnet101_msc-cocostuff164k-100000.pth``. Keys are ``base.layer1.conv1.{conv,bn}.*``
(7x7 stem + ceil-mode max-pool), ``base.layer{2..5}.block{i}.{reduce,conv3x3,increase,shortcut}.{conv,bn}.*``
(MSRA bottlenecks: the stride sits on the first 1x1; layers 4 and 5 dilate by 2 and 4) and
``base.aspp.c{0..3}.{weight,bias}`` (four 3x3 classifiers with rates 6, 12, 18, 24, summed).

Test recipe (deeplab-pytorch ``main.py test``): the image at its own size, BGR, minus the mean
(104.008, 116.669, 122.675); MSC runs the network on it and on its bilinear rescalings by 0.5
and 0.75 (``F.interpolate(scale_factor=...)``), upsamples those logits to the full-scale logits'
size and takes the pixel-wise max; the max logits are bilinearly resized to the label size and
the label is the argmax. Outputs are COCO-Stuff 164k label ids 0..181 (255 = unlabeled).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import register_segmenter
from .protocol import (
    ProtocolSegmenter,
    PublishedCheckpoint,
    load_strict,
    load_trusted_checkpoint,
    resolve_checkpoint,
)

PUBLISHED = PublishedCheckpoint(
    filename="deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
    url="https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
    "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
)
NUM_CLASSES = 182
MEAN_BGR = (104.008, 116.669, 122.675)
MSC_SCALES = (0.5, 0.75)
ATROUS_RATES = (6, 12, 18, 24)
_RESNET101_BLOCKS = (3, 4, 23, 3)


class ConvBnReLU(nn.Sequential):
    """conv (no bias) -> BN -> optional ReLU, named ``conv``/``bn`` as in deeplab-pytorch."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, dilation: int, relu: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5))
        if relu:
            self.add_module("relu", nn.ReLU())


class MSRABottleneck(nn.Module):
    """Bottleneck with the stride on the first 1x1 (the Caffe/MSRA ResNet layout)."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        mid = cout // 4
        self.reduce = ConvBnReLU(cin, mid, 1, stride, 0, 1)
        self.conv3x3 = ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBnReLU(mid, cout, 1, 1, 0, 1, relu=False)
        self.shortcut = ConvBnReLU(cin, cout, 1, stride, 0, 1, relu=False) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResLayer(nn.Sequential):
    def __init__(self, blocks: int, cin: int, cout: int, stride: int, dilation: int):
        super().__init__()
        for i in range(blocks):
            self.add_module(
                f"block{i + 1}",
                MSRABottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, dilation, downsample=i == 0),
            )


class Stem(nn.Sequential):
    def __init__(self, cout: int = 64):
        super().__init__()
        self.add_module("conv1", ConvBnReLU(3, cout, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class ASPP(nn.Module):
    """DeepLab v2 ASPP: the sum of four dilated 3x3 classifiers."""

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int] = ATROUS_RATES):
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(cin, num_classes, 3, 1, padding=rate, dilation=rate, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(stage(x) for stage in self.children())


class DeepLabV2(nn.Sequential):
    """DeepLab v2 ResNet-101: output stride 8, logits."""

    def __init__(self, num_classes: int = NUM_CLASSES, blocks: Sequence[int] = _RESNET101_BLOCKS, rates: Sequence[int] = ATROUS_RATES):
        super().__init__()
        self.add_module("layer1", Stem(64))
        self.add_module("layer2", ResLayer(blocks[0], 64, 256, 1, 1))
        self.add_module("layer3", ResLayer(blocks[1], 256, 512, 2, 1))
        self.add_module("layer4", ResLayer(blocks[2], 512, 1024, 1, 2))
        self.add_module("layer5", ResLayer(blocks[3], 1024, 2048, 1, 4))
        self.add_module("aspp", ASPP(2048, num_classes, rates))


class MSC(nn.Module):
    """Multi-scale inputs: pixel-wise max of the logits at scale 1 and its rescalings.

    The container holds the network as ``base`` so the keys read ``base.*``.
    """

    def __init__(self, base: nn.Module, scales: Sequence[float] = MSC_SCALES):
        super().__init__()
        self.base = base
        self.scales = tuple(float(s) for s in scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        size = logits.shape[-2:]
        candidates = [logits]
        for s in self.scales:
            scaled = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            candidates.append(F.interpolate(self.base(scaled), size, mode="bilinear", align_corners=False))
        return torch.stack(candidates).amax(dim=0)


class DeepLabV2Segmenter(ProtocolSegmenter):
    """DeepLab v2 MSC with deeplab-pytorch's test recipe (BGR mean subtraction, max over scales)."""

    name = "deeplabv2"
    num_classes = NUM_CLASSES

    def __init__(self, net: nn.Module, device: str | torch.device = "cpu", input_size: Sequence[int] | None = None):
        super().__init__(net, device, input_size)
        self._mean_bgr = torch.tensor(MEAN_BGR, dtype=torch.float64, device=self.device).view(1, 3, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """0..255 RGB -> BGR minus the Caffe mean, contiguous float32.

        kazuto1011's ``_BaseDataset.__getitem__`` (libs/datasets/base.py) subtracts the float64
        ``np.array(mean_bgr)`` from the float32 image in place: numpy computes in float64 and
        casts back, which float32 arithmetic misses on about half the values (3.8e-6).
        """
        return (x.flip(1).double() - self._mean_bgr).float().contiguous()

    def score_maps(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.normalize(images))
        return F.interpolate(logits, images.shape[-2:], mode="bilinear", align_corners=False)


def build(checkpoint=None, device="cpu", **kwargs) -> DeepLabV2Segmenter:
    """Build the network and strictly load ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth``."""
    path = resolve_checkpoint(checkpoint, PUBLISHED, DeepLabV2Segmenter.name)
    net = MSC(DeepLabV2(NUM_CLASSES))
    load_strict(net, load_trusted_checkpoint(path), path)
    return DeepLabV2Segmenter(net, device=device, **kwargs)


@register_segmenter("deeplabv2")
def load_deeplabv2(checkpoint=None, device="cpu", **kwargs) -> DeepLabV2Segmenter:
    return build(checkpoint, device=device, **kwargs)
