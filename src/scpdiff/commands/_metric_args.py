"""Options shared by the commands that run the metric networks (``ref-stats``, ``score``)."""

from __future__ import annotations

import argparse

from ._numbers import at_least_two, non_negative_int, open_fraction, positive_int

from ..metrics.bootstrap import LEVEL, RESAMPLES, SEED
from ..metrics.defaults import BATCH_SIZE, CPU_BATCH_SIZE, FID_RESIZE, KID_SUBSET_SIZE, KID_SUBSETS, MIOU_AVERAGE, SUBSET_SEED
from ..metrics.fid import RESIZE_MODES
from ..utils.torch_state import default_device


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=positive_int,
                   help=f"images per network call (default {BATCH_SIZE} on a GPU, {CPU_BATCH_SIZE} on CPU)")
    p.add_argument("--workers", type=non_negative_int, help="DataLoader workers decoding images (default: several on GPU, 0 on CPU)")
    p.add_argument("--cache", help="cache folder (default $SCPDIFF_CACHE or ~/.cache/scpdiff)")


def add_fid_resize_argument(p: argparse.ArgumentParser) -> None:
    # the reference statistics and the scored images must be resized the same way
    p.add_argument("--fid-resize", default=FID_RESIZE, choices=RESIZE_MODES,
                   help="how images reach 299x299: torch-fidelity's TF1 bilinear (default) or PIL bicubic first")


def resolve_device(args) -> tuple[str, int]:
    """``(device, workers)`` from ``--device`` and ``--workers``, with the defaults filled in
    (``--batch-size`` unset stays None: the scoring loader takes the device's)."""
    from ..metrics.scoring import default_workers

    device = args.device or default_device()
    workers = args.workers if args.workers is not None else default_workers(device)
    return device, workers


def add_summary_arguments(p: argparse.ArgumentParser) -> None:
    """How a setting's images become its row (``score``, ``merge-scores``): mIoU rule, FID-infinity,
    label-map coverage, KID subsets and the bootstrap."""
    from ..metrics.segmentation import MIOU_AVERAGES

    p.add_argument("--miou-average", choices=MIOU_AVERAGES,
                   help=f"mIoU averaging rule (default: the benchmark's segmenter.miou_average, else {MIOU_AVERAGE})")
    p.add_argument("--fid-infinity", action="store_true", help="also FID-infinity (Chong & Forsyth) from the same features")
    p.add_argument("--allow-subset", action="store_true", help="allow images for only some of the label maps")
    p.add_argument("--kid-subset-size", type=at_least_two, default=KID_SUBSET_SIZE)
    p.add_argument("--kid-subsets", type=positive_int, default=KID_SUBSETS)
    p.add_argument("--seed", type=int, default=SUBSET_SEED, help="seed of KID / FID-infinity subsets")
    p.add_argument("--bootstrap-resamples", type=non_negative_int, default=RESAMPLES,
                   help=f"resamples of the label maps for 95%% intervals (default {RESAMPLES}; 0: none)")
    p.add_argument("--bootstrap-seed", type=int, default=SEED,
                   help="seed of the resamples; settings scored with the same seed and maps pair up")
    p.add_argument("--bootstrap-level", type=open_fraction, default=LEVEL, help=f"interval coverage (default {LEVEL})")


def bootstrap_options(args):
    from ..metrics.bootstrap import BootstrapOptions

    return BootstrapOptions(args.bootstrap_resamples, args.bootstrap_seed, args.bootstrap_level)
