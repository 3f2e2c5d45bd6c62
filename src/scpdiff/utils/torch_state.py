"""PyTorch global state the harness sets for a block and restores: RNG seeding, TF32, the device.

    with seeded(0):                 # module initialisation from seed 0; the caller's RNG is untouched
        net = Net()
    with full_float32():            # metrics: no TF32 matmuls/convolutions on Ampere and later
        feats = model(images)
    device = default_device()       # "cuda" when a GPU is visible, else "cpu"
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None, device: str | torch.device | None = None) -> Iterator[None]:
    """Draw from ``seed`` inside the block and leave the caller's global RNG state as it was.

    ``device``: when it is a CUDA device its RNG is forked too (weights initialised on the GPU).
    ``seed=None`` changes nothing.
    """
    if seed is None:
        yield
        return
    devices = [torch.device(device)] if device is not None and torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Disable TF32 for matmuls and convolutions inside the block: TF32 would move FID in the 3rd
    digit and flip segmenter argmaxes on Ampere and later (metrics must not depend on it)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``: every command's ``--device`` default."""
    return "cuda" if torch.cuda.is_available() else "cpu"
