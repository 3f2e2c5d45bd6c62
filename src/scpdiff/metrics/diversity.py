"""Sample diversity for one label map: mean pairwise LPIPS and MS-SSIM (paper Table 3).

For each label map, K samples (paper: 20) are compared pairwise (K(K-1)/2 pairs); the per-map
means are then averaged over the label maps. Higher LPIPS / lower MS-SSIM = more diverse.

LPIPS is the ``lpips`` package (v0.1 linear heads from its wheel) on the ImageNet AlexNet trunk that
``scpdiff weights`` prepared offline; MS-SSIM is ``pytorch-msssim`` on [0, 1] images
(``data_range=1``) with its Gaussian window shrunk to fit small images.
"""

from __future__ import annotations

import itertools

import torch

from ..errors import InputError
from .networks import build_lpips
from .weights import LPIPS_ALEXNET, weight_path


def load_lpips(device: str | torch.device = "cpu", cache=None):
    """The prepared LPIPS(AlexNet) model on ``device`` and its backbone file's sha256."""
    path, sha = weight_path(LPIPS_ALEXNET, cache=cache)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return build_lpips(state).to(device), sha


def msssim_window(height: int, width: int, max_window: int = 11) -> int:
    """Largest odd Gaussian window <= ``max_window`` that MS-SSIM's 4 halvings allow.

    pytorch-msssim needs ``min(H, W) > (win - 1) * 2**4``; 11 is the standard window.
    """
    side = min(height, width)
    win = max_window
    while win > 3 and side <= (win - 1) * 16:
        win -= 2
    if side <= (win - 1) * 16:
        raise InputError(f"images of {height}x{width} are too small for MS-SSIM (need a side > 32 pixels)")
    return win


def _pairs(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = list(itertools.combinations(range(k), 2))
    if not idx:
        raise InputError(f"diversity needs at least 2 samples per label map, got {k}")
    a, b = zip(*idx)
    return torch.tensor(a), torch.tensor(b)


@torch.no_grad()
def pairwise_lpips(model, samples: torch.Tensor, batch_size: int = 32) -> float:
    """Mean LPIPS over all pairs of ``samples`` (uint8 ``[K, 3, H, W]`` of one label map)."""
    device = next(model.parameters()).device
    x = samples.to(device).float() / 127.5 - 1.0  # lpips wants [-1, 1]
    a, b = _pairs(len(x))
    total = 0.0
    for s in range(0, len(a), batch_size):
        ia, ib = a[s:s + batch_size].to(device), b[s:s + batch_size].to(device)
        total += float(model(x[ia], x[ib]).double().sum())
    return total / len(a)


@torch.no_grad()
def pairwise_ms_ssim(samples: torch.Tensor, batch_size: int = 64, device: str | torch.device = "cpu") -> float:
    """Mean MS-SSIM over all pairs of ``samples`` (uint8 ``[K, 3, H, W]``)."""
    from pytorch_msssim import ms_ssim

    x = samples.to(device).float() / 255.0
    win = msssim_window(*x.shape[-2:])
    a, b = _pairs(len(x))
    total = 0.0
    for s in range(0, len(a), batch_size):
        ia, ib = a[s:s + batch_size], b[s:s + batch_size]
        vals = ms_ssim(x[ia], x[ib], data_range=1.0, size_average=False, win_size=win)
        total += float(vals.double().sum())
    return total / len(a)
