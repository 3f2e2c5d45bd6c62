"""Shared pieces of the OASIS-protocol evaluation segmenters (paper Sec. 5.1, Appendix A).

Each protocol segmenter is a plain torch module whose parameter names match its published
checkpoint, plus the test-time recipe of the repository that published it (resize, normalisation,
multi-scale combination). This module holds what the three have in common:

* finding and loading the published checkpoint (trusted pickles: ``torch.load(weights_only=False)``),
  with ``module.`` stripped and CSAIL's SyncBN bookkeeping buffers dropped, then a strict load;
* the normalisation and memory layout of the upstream test code (PIL-exact resizing is
  :mod:`.pil_resize`);
* :class:`ProtocolSegmenter`, the object behind ``scpdiff.segmenters.load_segmenter``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import InputError
from ..utils.torch_state import full_float32
from .pil_resize import resize_uint8_like_pil

# Buffers of CSAIL's SynchronizedBatchNorm2d that are not part of a plain BatchNorm2d.
_DROPPED_SUFFIXES = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")


@dataclass(frozen=True)
class PublishedCheckpoint:
    """Where a protocol segmenter's weights come from (see the cards in ``segmenters/``)."""

    filename: str
    url: str

    def describe(self) -> str:
        return f"{self.filename} (published at {self.url})"


def resolve_checkpoint(
    checkpoint: str | os.PathLike | None, published: PublishedCheckpoint, kind: str
) -> Path:
    """Return the checkpoint file; ``checkpoint`` may be the file itself or a folder holding it.

    A missing file is an :class:`InputError` that names the expected file and where it is published,
    because nothing may be downloaded at run time.
    """
    hint = (
        f"segmenter {kind!r} needs its published checkpoint {published.describe()}; "
        "download it once and pass its path (benchmark key segmenter.checkpoint or --segmenter-checkpoint)"
    )
    if checkpoint is None or str(checkpoint) == "":
        raise InputError(f"no checkpoint given: {hint}")
    path = Path(checkpoint)
    if path.is_dir():
        path = path / published.filename
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist: {hint}")
    return path


def clean_state_dict(raw: object, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The parameter dict inside a published checkpoint, in our modules' naming.

    Accepts a bare state dict or one wrapped under ``state_dict``/``model``; strips the
    ``module.`` prefix that ``nn.DataParallel`` adds; drops CSAIL's SyncBN bookkeeping buffers.
    """
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model"):
            inner = raw.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                raw = inner
                break
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise InputError(f"{source}: not a state dict of tensors (found {type(raw).__name__})")
    cleaned = {}
    for key, value in raw.items():
        if key.endswith(_DROPPED_SUFFIXES):
            continue
        cleaned[key[len("module.") :] if key.startswith("module.") else key] = value
    return cleaned


def load_trusted_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a published (trusted) pickle checkpoint onto the CPU and clean it.

    ``weights_only=False`` is explicit: the 2017-2019 files are plain pickles and the default
    changed in torch 2.6 (which is also why mmengine's own loader cannot read them).
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated download, an HTML error page saved as .pth, ...
        raise InputError(f"{path}: cannot be read as a torch checkpoint: {exc}") from exc
    return clean_state_dict(raw, path)


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` with an error that names the file."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in state_dict
        if k in expected and state_dict[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise InputError(
            f"{source}: does not match {type(module).__name__}'s published layout: " + "; ".join(parts)
        )
    # Old (pre-0.4) checkpoints lack num_batches_tracked; BatchNorm fills it in on a strict load.
    module.load_state_dict(dict(state_dict), strict=True)


def manifest_of(module: nn.Module) -> dict[str, list[int]]:
    """Key -> shape of everything a published checkpoint holds for ``module``.

    ``num_batches_tracked`` is left out: checkpoints from before torch 0.4 do not have it.
    """
    return {
        k: list(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")
    }


# ----------------------------------------------------------------------------------------- images


def check_images(images: torch.Tensor) -> torch.Tensor:
    """Validate a batch of RGB images, uint8 ``[B, H, W, 3]``."""
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(
            f"images must be uint8 [B, H, W, 3] RGB, got {str(images.dtype)} {list(images.shape)}"
        )
    if images.shape[0] == 0:
        raise InputError("images: empty batch")
    return images


def to_nchw_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> contiguous float32 ``[B, 3, H, W]`` in 0..255.

    Contiguous matters: a permuted NHWC tensor is channels-last, and every convolution would then
    run in the channels-last kernels, which sum in another order than the contiguous NCHW inputs
    of the upstream test code (9.6e-3 on DRN logits of magnitude ~86, issue 14).
    """
    return images.permute(0, 3, 1, 2).float().contiguous()


# ----------------------------------------------------------------------------------- segmenter


class MeanStdNormalize:
    """0..255 RGB ``[B, 3, h, w]`` -> ``(x / 255 - mean) / std`` in float32, in that order.

    The order and dtype of the upstream test code: fyu/drn's ``ToTensor`` (``img.float().div(255)``,
    data_transforms.py) then ``Normalize`` (``t.sub_(m).div_(s)`` with float32 mean/std);
    CSAIL's ``img_transform`` (``np.float32(img) / 255.``, then torchvision ``Normalize``).
    Folding the constants, ``(x - 255 mean) / (255 std)``, is off by up to 4.8e-7 on ~70 % of values.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        # a tensor, not the Python scalar: CUDA divides by a CPU scalar as a multiplication by its
        # reciprocal, which is not the true division the upstream (CPU) data loaders do
        self.scale = torch.tensor(255.0, dtype=torch.float32, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / self.scale - self.mean) / self.std


class ProtocolSegmenter:
    """An evaluation segmenter: a network plus its published test-time recipe.

    Subclasses implement :meth:`score_maps`, the per-class scores the upstream repository takes
    the argmax of (summed log-probabilities, averaged probabilities, or max logits), at the
    scoring size. :meth:`predict` is the interface used by ``scpdiff score``.

    ``input_size`` (h, w): when set, images of another size are first resized to it (PIL-exact
    bicubic) and labels come back at that size; when None the images are scored at their own size.
    """

    name: str = "protocol"
    num_classes: int = 0

    def __init__(self, net: nn.Module, device: str | torch.device = "cpu", input_size: Sequence[int] | None = None):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))

    @property
    def options(self) -> dict:
        """Named recipe options (none by default; UPerNet has ``normalization``)."""
        return {}

    @property
    def label_size(self) -> tuple[int, int] | None:
        """The (h, w) of predicted labels; None means "the size of the images given"."""
        return self.input_size

    def output_size(self, image_size: Sequence[int]) -> tuple[int, int]:
        """The (h, w) of the labels :meth:`predict` returns for images of ``image_size``."""
        return self.input_size if self.input_size is not None else (int(image_size[0]), int(image_size[1]))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, h, w]`` 0..255 RGB on the device, at the scoring size."""
        x = to_nchw_float(check_images(images).to(self.device))
        if self.input_size is not None:
            x = resize_uint8_like_pil(x, self.input_size, "bicubic")
        return x

    def score_maps(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """float ``[B, 3, h, w]`` RGB 0..255 -> float ``[B, num_classes, h, w]`` scores."""
        raise NotImplementedError

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB ``[B, H, W, 3]`` -> int64 ``[B, h, w]`` train ids at :meth:`output_size`.

        The labels come back on the device the images came from. Runs in float32 with TF32 off.
        """
        with full_float32():
            scores = self.score_maps(self.prepare(images))
        return scores.argmax(dim=1).to(device=images.device, dtype=torch.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, num_classes={self.num_classes}, label_size={self.label_size})"
