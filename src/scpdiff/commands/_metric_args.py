"""Options shared by the commands that run the metric networks (``ref-stats``, ``score``)."""

from __future__ import annotations

import argparse

from ._numbers import non_negative_int, positive_int

from ..metrics.defaults import BATCH_SIZE, FID_RESIZE
from ..metrics.fid import RESIZE_MODES
from ..utils.torch_state import default_device


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE)
    p.add_argument("--workers", type=non_negative_int, help="DataLoader workers decoding images (default: several on GPU, 0 on CPU)")
    p.add_argument("--cache", help="cache folder (default $SCPDIFF_CACHE or ~/.cache/scpdiff)")


def add_fid_resize_argument(p: argparse.ArgumentParser) -> None:
    # the reference statistics and the scored images must be resized the same way
    p.add_argument("--fid-resize", default=FID_RESIZE, choices=RESIZE_MODES,
                   help="how images reach 299x299: torch-fidelity's TF1 bilinear (default) or PIL bicubic first")


def resolve_device(args) -> tuple[str, int]:
    """``(device, workers)`` from ``--device`` and ``--workers``, with the defaults filled in."""
    from ..metrics.scoring import default_workers

    device = args.device or default_device()
    workers = args.workers if args.workers is not None else default_workers(device)
    return device, workers
