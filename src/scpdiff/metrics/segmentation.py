"""mIoU and pixel accuracy of a segmenter's predictions on generated images (paper section 5.1).

The confusion matrix is accumulated over the whole set, not averaged per image; pixels whose
ground truth is ``ignore_index`` (255) are left out. Upstream repositories average differently,
so the rule is a named option (the benchmark's ``segmenter.miou_average``):

* ``accumulated`` (default; mmseg's ``IoUMetric``): per-class IoU = TP / (TP + FP + FN) of the
  accumulated matrix, averaged over the classes whose union is non-empty.
* ``zero_absent`` (CSAIL semantic-segmentation-pytorch): the same per-class IoU, but a class with
  an empty union counts as 0 and the mean is over all classes.
* ``nanmean``: the mean over images of each image's mIoU (its classes with non-empty union).

    cm = ConfusionMatrix(num_classes=19)
    cm.update(pred, target)          # int tensors of equal shape, any batch layout
    cm.miou("accumulated"), cm.pixel_accuracy
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .defaults import MIOU_AVERAGE

MIOU_AVERAGES = ("accumulated", "nanmean", "zero_absent")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """int64 ``[C, C]`` counts, rows = ground truth, columns = prediction.

    Ground-truth pixels equal to ``ignore_index`` are dropped; any other label outside
    ``[0, C)`` in either input is an error (it would silently shift counts otherwise).
    """
    if pred.shape != target.shape:
        raise InputError(f"prediction shape {tuple(pred.shape)} != ground-truth shape {tuple(target.shape)}")
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long().to(target.device)
    keep = target != ignore_index
    target, pred = target[keep], pred[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise InputError(f"ground-truth labels outside [0, {num_classes}) and not {ignore_index}: "
                         f"{sorted(set(target.unique().tolist()) - set(range(num_classes)))[:10]}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise InputError(f"predicted labels outside [0, {num_classes})")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def class_iou(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU of a confusion matrix; NaN where the class's union is empty."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm: np.ndarray, average: str = MIOU_AVERAGE) -> float:
    """mIoU of one accumulated matrix under ``accumulated`` or ``zero_absent`` (see module doc)."""
    iou = class_iou(cm)
    if average == "accumulated":
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    if average == "zero_absent":
        return float(np.nan_to_num(iou, nan=0.0).mean())
    raise ValueError(f"mean_iou: average {average!r} needs per-image matrices; use ConfusionMatrix")


def pixel_accuracy(cm: np.ndarray) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def mean_class_accuracy(cm: np.ndarray) -> float:
    """Mean over ground-truth classes present of per-class recall."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(1)
    present = rows > 0
    return float((np.diag(cm)[present] / rows[present]).mean()) if present.any() else float("nan")


class ConfusionMatrix:
    """Accumulates a confusion matrix (and per-image mIoUs for ``nanmean``) over batches."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.image_mious: list[float] = []
        # per label map (``keys`` given to update): what the bootstrap over label maps resamples
        self.by_key: dict[str, np.ndarray] = {}

    def update(self, pred: torch.Tensor, target: torch.Tensor, keys=None) -> None:
        """Add a batch ``[B, H, W]`` (or one image ``[H, W]``) of predictions and ground truth;
        ``keys`` (one per image, e.g. its label map's name) also sum the matrices per key."""
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
            keys = None if keys is None else [keys]
        for i, (p, t) in enumerate(zip(pred, target)):
            cm = confusion_matrix(p, t, self.num_classes, self.ignore_index).cpu().numpy()
            self.matrix += cm
            if keys is not None:
                key = keys[i]
                if key in self.by_key:
                    self.by_key[key] += cm.astype(np.int32)
                else:
                    self.by_key[key] = cm.astype(np.int32)
            iou = class_iou(cm)
            if np.isfinite(iou).any():  # an all-ignore image has no IoU to average
                self.image_mious.append(float(np.nanmean(iou)))

    def merge(self, other: "ConfusionMatrix") -> None:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix
        self.image_mious += other.image_mious

    def miou(self, average: str = MIOU_AVERAGE) -> float:
        if average not in MIOU_AVERAGES:
            raise ValueError(f"unknown mIoU average {average!r}; known: {MIOU_AVERAGES}")
        if average == "nanmean":
            return float(np.mean(self.image_mious)) if self.image_mious else float("nan")
        return mean_iou(self.matrix, average)

    @property
    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)

    @property
    def mean_class_accuracy(self) -> float:
        return mean_class_accuracy(self.matrix)

    def class_iou(self) -> np.ndarray:
        return class_iou(self.matrix)
