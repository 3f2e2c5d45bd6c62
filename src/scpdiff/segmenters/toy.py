"""The toy benchmark's evaluation segmenter: a small fully convolutional network trained on the
toy masks by ``scpdiff train-segmenter``, playing the role DRN-D-105 / UperNet-101 play for the
real datasets (mIoU of generated images against their input masks, section 5.1).

Checkpoint: a folder with ``config.json`` (architecture, classes, input resolution) and
``model.safetensors``.

    seg = load_segmenter("toy", "work/toy/models/segmenter")
    labels = seg.predict(images_uint8_bhw3)     # int64 [B, H, W] at seg.label_size
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from . import register_segmenter

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ToySegNet(nn.Module):
    """A small encoder-decoder: full-res stem, 1/2 and 1/4 stages (dilated for context), skip to 1/2.

    ``forward(x)`` takes images normalised to [-1, 1] ``[B, 3, H, W]`` and returns class logits at
    full resolution (bilinearly upsampled from 1/2).
    """

    def __init__(self, num_classes: int, channels: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        c1, c2, c3 = channels
        self.stem = _conv(3, c1)
        self.down1 = nn.Sequential(_conv(c1, c2, stride=2), _conv(c2, c2))
        self.down2 = nn.Sequential(_conv(c2, c3, stride=2), _conv(c3, c3, dilation=2), _conv(c3, c3, dilation=4))
        self.fuse = _conv(c3 + c2, c2)
        self.head = nn.Conv2d(c2, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s1 = self.down1(self.stem(x))
        s2 = self.down2(s1)
        up = F.interpolate(s2, size=s1.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.head(self.fuse(torch.cat([up, s1], dim=1)))
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)


class ToySegmenter:
    """The :mod:`scpdiff.segmenters` interface around a trained :class:`ToySegNet`."""

    def __init__(self, net: ToySegNet, config: dict, device: torch.device | str = "cpu", name: str = "toy"):
        self.net = net.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.name = name
        self.num_classes = int(config["num_classes"])
        self.class_names = list(config.get("class_names", []))
        self.label_size = tuple(int(v) for v in config["resolution"])  # (H, W) it was trained at

    @torch.no_grad()
    def predict(self, images) -> torch.Tensor:
        """uint8 RGB ``[B, H, W, 3]`` -> int64 labels ``[B, *label_size]`` (on the segmenter's device)."""
        x = torch.as_tensor(images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"toy segmenter: images must be uint8 [B, H, W, 3], got shape {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            raise InputError(f"toy segmenter: images must be uint8, got {x.dtype}")
        x = x.to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if tuple(x.shape[-2:]) != self.label_size:
            x = F.interpolate(x, size=self.label_size, mode="bilinear", align_corners=False, antialias=True)
        return self.net(x).argmax(1)


def save_toy_segmenter(path: str | os.PathLike, net: ToySegNet, config: dict) -> Path:
    """Write the checkpoint folder atomically."""
    from safetensors.torch import save_file

    from ..utils.files import atomic_dir

    path = Path(path)
    with atomic_dir(path) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=1))
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp / WEIGHTS_NAME))
    return path


@register_segmenter("toy")
def load_toy_segmenter(checkpoint, device="cpu", **kwargs) -> ToySegmenter:
    from safetensors.torch import load_file

    if checkpoint is None:
        raise InputError("toy segmenter: no checkpoint given (the folder written by `scpdiff train-segmenter`)")
    path = Path(checkpoint)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise InputError(f"{path}: not a toy segmenter checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        config = json.loads((path / CONFIG_NAME).read_text())
        net = ToySegNet(int(config["num_classes"]), tuple(config["channels"]))
        net.load_state_dict(load_file(str(path / WEIGHTS_NAME)))
    except (json.JSONDecodeError, KeyError, RuntimeError) as exc:
        raise InputError(f"{path}: cannot load the toy segmenter ({exc})") from None
    return ToySegmenter(net, config, device=device)
