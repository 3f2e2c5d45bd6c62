"""ADE20K evaluation segmenter: CSAIL's ResNet-101 UPerNet (Xiao et al., ECCV 2018).

The network OASIS and SPADE score ADE20K with (paper Appendix A: "UperNet101"): model
``ade20k-resnet101-upernet`` of CSAILVision/semantic-segmentation-pytorch, published as two state
dicts, ``encoder_epoch_50.pth`` (the ResNet-101 trunk, keys ``conv1.*`` ... ``layer4.*``) and
``decoder_epoch_50.pth`` (the UPerNet head, keys ``ppm_conv.*``, ``ppm_last_conv.*``, ``fpn_in.*``,
``fpn_out.*``, ``conv_last.*``), trained with synchronised BatchNorm whose extra buffers are dropped.

Two details differ from mmseg's UPerHead and matter for loading and numbers: the trunk has
CSAIL's deep stem (three 3x3 convolutions 3->64->64->128 before the max-pool), and the pyramid
pooling branch upsamples the pooled map *before* its 1x1 conv-BN-ReLU. ``upernet`` (not
``upernet_lite``) uses 512 FPN channels.

Test recipe (CSAIL ``eval.py`` with ``config/ade20k-resnet101-upernet.yaml``): for each short side
in (300, 375, 450, 525, 600), scale = min(short / min(H, W), 1000 / max(H, W)); the target size
int(H*scale) x int(W*scale) is rounded *up* to a multiple of 32 and the RGB image PIL-bilinear
resized to it, normalised with the ImageNet mean/std; the class probabilities (softmax of logits
bilinearly upsampled to the image size) are averaged over the five sizes. Outputs are ADE20K
class index - 1 (0..149), i.e. the train ids with 0 ("other") -> 255.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from . import register_segmenter
from .protocol import (
    MeanStdNormalize,
    ProtocolSegmenter,
    PublishedCheckpoint,
    load_strict,
    load_trusted_checkpoint,
    resolve_checkpoint,
)
from .pil_resize import resize_uint8_like_pil

_URL = "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/"
PUBLISHED_ENCODER = PublishedCheckpoint("encoder_epoch_50.pth", _URL + "encoder_epoch_50.pth")
PUBLISHED_DECODER = PublishedCheckpoint("decoder_epoch_50.pth", _URL + "decoder_epoch_50.pth")
NUM_CLASSES = 150
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CSAIL before PR #190 (merged 2019-08-03, commit 215617d): OpenCV BGR 0..255 minus this mean
# (dataset.py ``transforms.Normalize(mean=[102.9801, 115.9465, 122.7717], std=[1., 1., 1.])``).
CAFFE_MEAN_BGR = (102.9801, 115.9465, 122.7717)
NORMALIZATIONS = ("imagenet_rgb", "caffe_bgr")
DEFAULT_NORMALIZATION = "imagenet_rgb"
IMG_SIZES = (300, 375, 450, 525, 600)  # short sides of the five test scales
IMG_MAX_SIZE = 1000
PADDING_CONSTANT = 32

_RESNET101_BLOCKS = (3, 4, 23, 3)
FPN_INPLANES = (256, 512, 1024, 2048)
FPN_DIM = 512
PPM_DIM = 512
POOL_SCALES = (1, 2, 3, 6)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv3x3_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """torchvision-style bottleneck (stride on the 3x3)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _stage(cin: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    cout = planes * 4
    downsample = None
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(Bottleneck(cin, planes, stride, downsample), *[Bottleneck(cout, planes) for _ in range(blocks - 1)])


class CSAILResNetEncoder(nn.Module):
    """CSAIL's ResNet-101 with the deep stem; returns the four stage outputs (strides 4..32)."""

    def __init__(self, blocks: Sequence[int] = _RESNET101_BLOCKS):
        super().__init__()
        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(64, 64)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = _conv3x3(64, 128)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(128, 64, blocks[0], 1)
        self.layer2 = _stage(256, 128, blocks[1], 2)
        self.layer3 = _stage(512, 256, blocks[2], 2)
        self.layer4 = _stage(1024, 512, blocks[3], 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


class CSAILUPerNetDecoder(nn.Module):
    """CSAIL's UPerNet head: pyramid pooling on C5, FPN top-down path, fusion at stride 4.

    Returns logits at the stride-4 resolution.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, fc_dim: int = 2048, fpn_inplanes=FPN_INPLANES, fpn_dim: int = FPN_DIM):
        super().__init__()
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in POOL_SCALES)
        self.ppm_conv = nn.ModuleList(_conv1x1_bn_relu(fc_dim, PPM_DIM) for _ in POOL_SCALES)
        self.ppm_last_conv = _conv3x3_bn_relu(fc_dim + len(POOL_SCALES) * PPM_DIM, fpn_dim)
        self.fpn_in = nn.ModuleList(_conv1x1_bn_relu(c, fpn_dim) for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(_conv3x3_bn_relu(fpn_dim, fpn_dim)) for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(
            _conv3x3_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim), nn.Conv2d(fpn_dim, num_classes, 1)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        c5 = features[-1]
        size = c5.shape[-2:]
        pyramid = [c5]
        for pool, conv in zip(self.ppm_pooling, self.ppm_conv):
            # upsample first, then conv-BN-ReLU (the order of the published model)
            pyramid.append(conv(F.interpolate(pool(c5), size, mode="bilinear", align_corners=False)))
        f = self.ppm_last_conv(torch.cat(pyramid, 1))
        fpn = [f]
        for i in reversed(range(len(features) - 1)):
            lateral = self.fpn_in[i](features[i])
            f = lateral + F.interpolate(f, lateral.shape[-2:], mode="bilinear", align_corners=False)
            fpn.append(self.fpn_out[i](f))
        fpn.reverse()
        out_size = fpn[0].shape[-2:]
        fused = [fpn[0]] + [F.interpolate(p, out_size, mode="bilinear", align_corners=False) for p in fpn[1:]]
        return self.conv_last(torch.cat(fused, 1))


class CSAILUPerNet(nn.Module):
    """Encoder + decoder; ``encoder``/``decoder`` state dicts are the two published files."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.encoder = CSAILResNetEncoder()
        self.decoder = CSAILUPerNetDecoder(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB -> logits at 1/4 resolution."""
        return self.decoder(self.encoder(x))


def scaled_input_size(image_size: Sequence[int], short_side: int, max_size: int = IMG_MAX_SIZE, pad: int = PADDING_CONSTANT) -> tuple[int, int]:
    """(h, w) CSAIL's ValDataset resizes an ``image_size`` image to for one test scale."""
    h, w = int(image_size[0]), int(image_size[1])
    scale = min(short_side / float(min(h, w)), max_size / float(max(h, w)))
    th, tw = int(h * scale), int(w * scale)
    return ((th - 1) // pad + 1) * pad, ((tw - 1) // pad + 1) * pad


class CaffeBGRNormalize:
    """0..255 RGB -> BGR minus :data:`CAFFE_MEAN_BGR` in float32 (CSAIL before PR #190).

    Only the normalisation of that code is reproduced: it also resized with OpenCV's
    ``cv2.resize`` (INTER_LINEAR, no antialiasing) where this recipe keeps PIL bilinear.
    """

    def __init__(self, device: torch.device):
        self.mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().flip(1) - self.mean).contiguous()


class UPerNetSegmenter(ProtocolSegmenter):
    """CSAIL UPerNet-101 with CSAIL's five-scale test recipe (averaged softmax).

    ``normalization``: ``"imagenet_rgb"`` (CSAIL since August 2019, the code at 8f27c9b:
    ``(x/255 - mean) / std`` on RGB) or ``"caffe_bgr"`` (before PR #190: BGR 0..255 minus
    [102.98, 115.95, 122.77]). Which one the published ``epoch_50`` files need is settled with
    the real files (card: segmenters/upernet_101/README.md).
    """

    name = "upernet_101"
    num_classes = NUM_CLASSES

    def __init__(
        self,
        net: nn.Module,
        device: str | torch.device = "cpu",
        input_size: Sequence[int] | None = None,
        img_sizes: Sequence[int] = IMG_SIZES,
        img_max_size: int = IMG_MAX_SIZE,
        padding_constant: int = PADDING_CONSTANT,
        normalization: str = DEFAULT_NORMALIZATION,
    ):
        super().__init__(net, device, input_size)
        if normalization not in NORMALIZATIONS:
            raise InputError(
                f"upernet_101: normalization {normalization!r} is not one of {', '.join(NORMALIZATIONS)}"
            )
        self.normalization = normalization
        self.img_sizes = tuple(int(s) for s in img_sizes)
        self.img_max_size = int(img_max_size)
        self.padding_constant = int(padding_constant)
        if normalization == "caffe_bgr":
            self.normalize = CaffeBGRNormalize(self.device)
        else:
            self.normalize = MeanStdNormalize(IMAGENET_MEAN, IMAGENET_STD, self.device)

    @property
    def options(self) -> dict:
        """The recipe's named options, as ``scpdiff score`` records them."""
        return {"normalization": self.normalization}

    def scaled_input_sizes(self, image_size: Sequence[int]) -> list[tuple[int, int]]:
        return [scaled_input_size(image_size, s, self.img_max_size, self.padding_constant) for s in self.img_sizes]

    def score_maps(self, images: torch.Tensor) -> torch.Tensor:
        seg_size = tuple(images.shape[-2:])
        total = None
        for size in self.scaled_input_sizes(seg_size):
            # CSAIL ValDataset.__getitem__ (mit_semseg/dataset.py): PIL bilinear, then img_transform
            x = self.normalize(resize_uint8_like_pil(images, size, "bilinear")).contiguous()
            logits = F.interpolate(self.net(x), seg_size, mode="bilinear", align_corners=False)
            probs = torch.softmax(logits, dim=1) / len(self.img_sizes)
            total = probs if total is None else total + probs
        return total


def resolve_checkpoints(checkpoint: str | os.PathLike | None) -> tuple[Path, Path]:
    """The two published files, from their folder or from either file's path."""
    if checkpoint is not None and Path(checkpoint).is_file():
        checkpoint = Path(checkpoint).parent
    if checkpoint is not None and not Path(checkpoint).exists():
        raise InputError(
            f"checkpoint {checkpoint} does not exist: segmenter 'upernet_101' needs the folder holding "
            f"{PUBLISHED_ENCODER.describe()} and {PUBLISHED_DECODER.describe()}"
        )
    return (
        resolve_checkpoint(checkpoint, PUBLISHED_ENCODER, UPerNetSegmenter.name),
        resolve_checkpoint(checkpoint, PUBLISHED_DECODER, UPerNetSegmenter.name),
    )


def build(checkpoint=None, device="cpu", **kwargs) -> UPerNetSegmenter:
    """Build the network and strictly load ``encoder_epoch_50.pth`` + ``decoder_epoch_50.pth``."""
    encoder_path, decoder_path = resolve_checkpoints(checkpoint)
    net = CSAILUPerNet(NUM_CLASSES)
    load_strict(net.encoder, load_trusted_checkpoint(encoder_path), encoder_path)
    load_strict(net.decoder, load_trusted_checkpoint(decoder_path), decoder_path)
    return UPerNetSegmenter(net, device=device, **kwargs)


@register_segmenter("upernet_101")
def load_upernet_101(checkpoint=None, device="cpu", **kwargs) -> UPerNetSegmenter:
    return build(checkpoint, device=device, **kwargs)
