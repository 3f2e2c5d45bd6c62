"""Training the toy evaluation segmenter (:class:`scpdiff.segmenters.toy.ToySegNet`).

Cross-entropy on the toy masks, with photometric augmentation (brightness, contrast, colour cast,
blur, pixel noise) and horizontal flips, so that the segmenter judges generated images -- which
are blurrier and colour-shifted after a tiny VAE -- by their layout and class appearance rather
than by the exact rendering of the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..segmenters.toy import ToySegNet
from .loop import LoopConfig


@dataclass
class SegmenterTrainConfig(LoopConfig):
    steps: int = 600
    batch_size: int = 16
    lr: float = 3e-3
    mixed_precision: str = "no"
    checkpoint_every: int = 200
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    augment: bool = True


def augment(x: torch.Tensor, mask: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random photometric changes and flips of images in [-1, 1] ``[B, 3, H, W]`` (masks follow flips)."""
    b = x.shape[0]

    def u(lo, hi, *shape):
        return (torch.rand((b, *shape), generator=g, device=g.device) * (hi - lo) + lo).to(x.device)

    flip = u(0, 1, 1, 1, 1) < 0.5
    x = torch.where(flip, x.flip(-1), x)
    mask = torch.where(flip[:, 0], mask.flip(-1), mask)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.7, 1.3, 1, 1, 1) + mean + u(-0.2, 0.2, 1, 1, 1) + u(-0.08, 0.08, 3, 1, 1)
    # blur of a random strength: a 4x down-and-up resampling mixed in (a VAE's loss of detail)
    h, w = x.shape[-2:]
    blurred = F.interpolate(F.avg_pool2d(x, 4), size=(h, w), mode="bilinear", align_corners=False)
    x = torch.lerp(x, blurred, u(0, 1, 1, 1, 1))
    noise = torch.randn(x.shape, generator=g, device=g.device).to(x.device)
    x = x + noise * u(0, 0.08, 1, 1, 1)
    return x.clamp(-1, 1), mask


class SegmenterTask:
    def __init__(self, net: ToySegNet, ignore_index: int = 255, use_augment: bool = True):
        self.net = net
        self.ignore_index = ignore_index
        self.use_augment = use_augment

    def trainable(self) -> torch.nn.Module:
        return self.net

    def setup(self, device, weight_dtype) -> None:
        pass

    def loss(self, model, batch, generator) -> torch.Tensor:
        x, mask = batch["pixel_values"], batch["mask"]
        if self.use_augment:
            x, mask = augment(x, mask, generator)
        return F.cross_entropy(model(x), mask, ignore_index=self.ignore_index)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``[C, C]`` int64 counts, rows = ground truth, columns = prediction; ignored pixels dropped."""
    keep = target != ignore_index
    idx = target[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou_from_confusion(conf: torch.Tensor) -> float:
    """Mean IoU over classes present in the ground truth or the prediction."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


@torch.no_grad()
def evaluate_miou(net: ToySegNet, dataset, batch_size: int = 32) -> float:
    """Accumulated-confusion mIoU of ``net`` on a dataset (the quick check written into the checkpoint)."""
    from .data import ImageMaskSamples

    samples = ImageMaskSamples(dataset)
    net.eval()
    conf = torch.zeros(dataset.num_classes, dataset.num_classes, dtype=torch.int64)
    for start in range(0, len(samples), batch_size):
        items = [samples[i] for i in range(start, min(len(samples), start + batch_size))]
        x = torch.stack([it["pixel_values"] for it in items])
        y = torch.stack([it["mask"] for it in items])
        conf += confusion_matrix(net(x).argmax(1), y, dataset.num_classes, dataset.ignore_index)
    return miou_from_confusion(conf)
