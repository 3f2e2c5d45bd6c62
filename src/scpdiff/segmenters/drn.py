"""Cityscapes evaluation segmenter: DRN-D-105 (Yu et al., "Dilated Residual Networks", CVPR 2017).

The network OASIS and SPADE score Cityscapes with (paper Appendix A: "multi-scale DRN-D-105"):
fyu/drn's ``DRNSeg('drn_d_105', 19)`` with the published ``drn-d-105_ms_cityscapes.pth``.
Its parameters are named ``base.*`` (the DRN trunk without avgpool/fc, as an ``nn.Sequential``),
``seg.*`` (1x1 classifier) and ``up.weight`` (the fixed bilinear transposed convolution).

Test recipe (fyu/drn ``segment.py test --ms``): the image and its PIL-bicubic rescalings by
0.5, 0.75, 1.25, 1.5, 1.75 are normalised with the Cityscapes mean/std, each gives per-pixel
log-softmax scores which are PIL-bilinear resized back to the image size and summed; the label is
the argmax. OASIS scores its 512x256 images, with labels nearest-downsampled to 512x256.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import register_segmenter
from .protocol import (
    MeanStdNormalize,
    ProtocolSegmenter,
    PublishedCheckpoint,
    load_strict,
    load_trusted_checkpoint,
    resolve_checkpoint,
)
from .pil_resize import resize_float_like_pil, resize_uint8_like_pil, scaled_size

PUBLISHED = PublishedCheckpoint(
    filename="drn-d-105_ms_cityscapes.pth",
    url="http://go.yf.io/drn-cityscapes-models (file http://dl.yf.io/drn/drn-d-105_ms_cityscapes.pth)",
)
NUM_CLASSES = 19
# fyu/drn datasets/cityscapes/info.json (RGB, images scaled to 0..1)
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
MS_SCALES = (0.5, 0.75, 1.25, 1.5, 1.75)
OASIS_SIZE = (256, 512)  # (h, w): OASIS/SPADE Cityscapes resolution, where mIoU is scored

# DRN-D-105: stage depths and widths of drn.py's ``drn_d_105`` (arch 'D', Bottleneck)
_LAYERS = (1, 1, 3, 4, 23, 3, 1, 1)
_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class DRNBottleneck(nn.Module):
    """ResNet bottleneck whose 3x3 convolution carries the stride and the dilation."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _bottleneck_stage(cin: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    cout = planes * DRNBottleneck.expansion
    downsample = None
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    layers = [DRNBottleneck(cin, planes, stride, dilation, downsample)]
    layers += [DRNBottleneck(cout, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def drn_d_105_trunk() -> nn.Sequential:
    """The DRN-D-105 trunk as ``DRNSeg.base``: 9 stages, output stride 8, 512 channels.

    Stages 5 and 6 replace striding by dilation 2 and 4 in every 3x3 (a bottleneck dilates only
    its 3x3 convolution); stages 7 and 8 are plain conv-BN-ReLU layers (dilation 2, then 1) that
    remove gridding artefacts.
    """
    c = _CHANNELS
    stem = nn.Sequential(nn.Conv2d(3, c[0], 7, padding=3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True))
    return nn.Sequential(
        stem,
        nn.Sequential(*_conv_bn_relu(c[0], c[0])),
        nn.Sequential(*_conv_bn_relu(c[0], c[1], stride=2)),
        _bottleneck_stage(c[1], c[2], _LAYERS[2], stride=2, dilation=1),
        _bottleneck_stage(c[2] * 4, c[3], _LAYERS[3], stride=2, dilation=1),
        _bottleneck_stage(c[3] * 4, c[4], _LAYERS[4], stride=1, dilation=2),
        _bottleneck_stage(c[4] * 4, c[5], _LAYERS[5], stride=1, dilation=4),
        nn.Sequential(*_conv_bn_relu(c[5] * 4, c[6], dilation=2)),
        nn.Sequential(*_conv_bn_relu(c[6], c[7], dilation=1)),
    )


def bilinear_upsampling_kernel(size: int) -> torch.Tensor:
    """The fixed 2-D bilinear kernel that fyu/drn's ``fill_up_weights`` writes into ``up``."""
    f = (size + 1) // 2
    center = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - (torch.arange(size, dtype=torch.float64) / f - center).abs()
    return (ramp[:, None] * ramp[None, :]).float()


class DRNSeg(nn.Module):
    """DRN-D-105 segmentation network with fyu/drn's parameter names.

    ``forward`` returns per-pixel log-probabilities at 8x the trunk's resolution.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.base = drn_d_105_trunk()
        self.seg = nn.Conv2d(_CHANNELS[-1], num_classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_upsampling_kernel(16).expand_as(self.up.weight))
        self.up.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.up(self.seg(self.base(x))), dim=1)


class DRNSegmenter(ProtocolSegmenter):
    """DRN-D-105 with fyu/drn's multi-scale test recipe (summed log-softmax over 6 scales)."""

    name = "drn_d_105"
    num_classes = NUM_CLASSES

    def __init__(
        self,
        net: nn.Module,
        device: str | torch.device = "cpu",
        input_size: Sequence[int] | None = OASIS_SIZE,
        scales: Sequence[float] = MS_SCALES,
    ):
        super().__init__(net, device, input_size)
        self.scales = tuple(float(s) for s in scales)
        # fyu/drn's ToTensor + Normalize(info.json)
        self.normalize = MeanStdNormalize(CITYSCAPES_MEAN, CITYSCAPES_STD, self.device)

    def score_maps(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        total = None
        # fyu/drn test_ms (segment.py:563): the image itself first, then its PIL-bicubic
        # rescalings (SegListMS, segment.py:180); each output PIL-bilinear resized back
        # (resize_4d_tensor, segment.py:527) and summed in that order in float32.
        for s in (1.0,) + self.scales:
            x = images if s == 1.0 else resize_uint8_like_pil(images, scaled_size((h, w), s), "bicubic")
            log_probs = self.net(self.normalize(x).contiguous())
            log_probs = resize_float_like_pil(log_probs, (h, w), "bilinear")
            total = log_probs if total is None else total + log_probs
        return total


def build(checkpoint=None, device="cpu", **kwargs) -> DRNSegmenter:
    """Build the network and load ``drn-d-105_ms_cityscapes.pth`` (strictly) from ``checkpoint``."""
    path = resolve_checkpoint(checkpoint, PUBLISHED, DRNSegmenter.name)
    net = DRNSeg(NUM_CLASSES)
    load_strict(net, load_trusted_checkpoint(path), path)
    return DRNSegmenter(net, device=device, **kwargs)


@register_segmenter("drn_d_105")
def load_drn_d_105(checkpoint=None, device="cpu", **kwargs) -> DRNSegmenter:
    return build(checkpoint, device=device, **kwargs)
