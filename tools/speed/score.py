"""Scoring throughput: images/s of decoding, FID features, each protocol segmenter and LPIPS pairs.

Goal (issue 8): on a GPU, the multi-worker loader decodes PNGs faster than the Inception and the
segmenter consume them, so ``fid_features`` and ``segmentation`` are compute-bound (compare them
with the ``decode`` row at the same worker count). Issue 17: what one generation shard's score job
costs (``scpdiff score --out SHARD.npz``: decode, Inception, the segmenter on
``counts.segment_per_map`` images per map) and a diversity job (LPIPS pairs), for ``scpdiff plan``
(:func:`scpdiff.planning.throughput.scoring_rates` reads the CSV).

Synthetic smooth PNGs at ``--resolution`` are written to a temporary folder. A segmenter runs at its
protocol scales (DRN: 6, DeepLab-v2 MSC: 3, UPerNet: 5 short sides) with the published weights when
``--checkpoint`` names them, else with random weights of the same architecture (speed does not depend
on the weights; the ``weights`` column says which). ``--native-size`` runs DRN at the images' size
instead of the OASIS 1024x512 input (a reduced size for a CPU; the ``note`` column says so). FID and
LPIPS need the weights prepared by ``scpdiff weights``.

    python tools/speed/score.py --resolution 256 512 --images 256 --workers 0 4 8 --out results/speed/score.csv
    # shard scoring on this CPU: every protocol segmenter with random weights, LPIPS, small images
    python tools/speed/score.py --device cpu --resolution 128 256 --images 8 --batch-size 4 \
        --segmenter drn_d_105 deeplabv2 upernet_101 --native-size \
        --stages fid_features segmentation lpips --out results/speed/score-cpu.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import scpdiff
from scpdiff.metrics.fid import inception_features, load_inception, resize_for_inception
from scpdiff.metrics.images import ImageEntry, ScoringImages
from scpdiff.metrics.scoring import _loader


def write_images(folder: Path, n: int, hw: tuple[int, int]) -> list[ImageEntry]:
    rng = np.random.default_rng(0)
    h, w = hw
    entries = []
    for i in range(n):
        low = rng.integers(0, 256, size=(h // 16, w // 16, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((w, h), Image.BICUBIC)
        path = folder / f"img_{i:05d}.png"
        img.save(path)
        entries.append(ImageEntry(path, path.stem))
    return entries


def random_segmenter(kind: str, folder: Path, hw: tuple[int, int], device: str, native_size: bool):
    """The protocol segmenter ``kind`` with random weights of its real architecture (only speed is
    measured), wrapped in its test recipe (scales, normalisation) as :func:`load_segmenter` builds it."""
    if kind == "toy":
        from scpdiff.segmenters import load_segmenter
        from scpdiff.segmenters.toy import ToySegNet, save_toy_segmenter

        config = {"num_classes": 9, "channels": [16, 32, 64], "resolution": list(hw)}
        return load_segmenter("toy", str(save_toy_segmenter(folder / "toy_seg", ToySegNet(9, (16, 32, 64)), config)),
                              device=device)
    if kind == "drn_d_105":
        from scpdiff.segmenters.drn import NUM_CLASSES, DRNSeg, DRNSegmenter

        kw = {"input_size": None} if native_size else {}
        return DRNSegmenter(DRNSeg(NUM_CLASSES), device=device, **kw)
    if kind == "deeplabv2":
        from scpdiff.segmenters.deeplabv2 import MSC, NUM_CLASSES, DeepLabV2, DeepLabV2Segmenter

        return DeepLabV2Segmenter(MSC(DeepLabV2(NUM_CLASSES)), device=device)
    if kind == "upernet_101":
        from scpdiff.segmenters.upernet import NUM_CLASSES, CSAILUPerNet, UPerNetSegmenter

        return UPerNetSegmenter(CSAILUPerNet(NUM_CLASSES), device=device)
    raise SystemExit(f"--checkpoint is needed for segmenter {kind!r}")


def segmenter_scales(kind: str) -> int:
    from scpdiff.planning.stages import segmenter_passes_per_image

    return segmenter_passes_per_image(kind)


def timed(loader, consume, device) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    for batch in loader:
        n += consume(batch)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return n, time.perf_counter() - t0


def lpips_rate(entries, device, cache, pairs_batch: int = 32) -> tuple[int, float]:
    """LPIPS pairs per second over all pairs of the images (one diversity map's K samples)."""
    from scpdiff.datasets.folders import read_rgb_array
    from scpdiff.metrics.diversity import load_lpips, pairwise_lpips

    model, _ = load_lpips(device, cache=cache)
    samples = torch.stack([torch.from_numpy(read_rgb_array(e.path)).permute(2, 0, 1) for e in entries])
    pairwise_lpips(model, samples[:2])  # warm-up
    t0 = time.perf_counter()
    with torch.no_grad():
        pairwise_lpips(model, samples, batch_size=pairs_batch)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return len(entries) * (len(entries) - 1) // 2, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/speed/score.csv")
    ap.add_argument("--resolution", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--segmenter", nargs="+", default=["drn_d_105"],
                    help="segmenter kind(s): toy, drn_d_105, deeplabv2, upernet_101")
    ap.add_argument("--checkpoint", help="published weights of the (single) --segmenter (default: random weights)")
    ap.add_argument("--native-size", action="store_true",
                    help="DRN at the images' size instead of the OASIS 1024x512 input (a reduced size)")
    ap.add_argument("--stages", nargs="+", default=["decode", "fid_features", "segmentation"],
                    choices=["decode", "fid_features", "segmentation", "lpips"])
    ap.add_argument("--cache", help="scpdiff cache with prepared FID / LPIPS weights")
    args = ap.parse_args()
    if args.checkpoint and len(args.segmenter) != 1:
        raise SystemExit("--checkpoint belongs to one --segmenter")
    hw = tuple(args.resolution)
    rows = []
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"

    def row(stage, workers, n, sec, segmenter="", weights="", scales="", note="", unit="images"):
        r = {"stage": stage, "workers": workers, "images": n, "resolution": f"{hw[0]}x{hw[1]}",
             "batch_size": args.batch_size, "seconds": round(sec, 3), "images_per_s": round(n / sec, 4),
             "unit": unit, "device": device_name, "segmenter": segmenter, "weights": weights, "scales": scales,
             "threads": torch.get_num_threads(), "note": note, "torch": torch.__version__,
             "scpdiff": getattr(scpdiff, "__version__", ""),
             "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        print(r, flush=True)
        rows.append(r)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        entries = write_images(tmp, args.images, hw)
        fid_resize = functools.partial(resize_for_inception, mode="tf1_bilinear")
        warm = ScoringImages(entries[: min(2, len(entries))], fid_resize=fid_resize)
        for workers in args.workers:
            for stage in args.stages:
                if stage == "lpips":
                    n, sec = lpips_rate(entries, args.device, args.cache)
                    row("lpips", workers, n, sec, weights="published", unit="pairs",
                        note="LPIPS(AlexNet) over all pairs of the images (a diversity map's K samples)")
                    continue
                if stage in ("decode", "fid_features"):
                    if stage == "fid_features":
                        inception, _ = load_inception(args.device, cache=args.cache)
                        consume = lambda b: len(inception_features(inception, b["fid"]))
                        timed(_loader(warm, args.batch_size, 0, args.device), consume, args.device)
                    else:
                        consume = lambda b: len(b["image"])
                    loader = _loader(ScoringImages(entries, fid_resize=fid_resize), args.batch_size, workers, args.device)
                    n, sec = timed(loader, consume, args.device)
                    row(stage, workers, n, sec, weights="published" if stage == "fid_features" else "")
                    continue
                for kind in args.segmenter:
                    if args.checkpoint:
                        from scpdiff.segmenters import load_segmenter

                        segmenter, weights = load_segmenter(kind, args.checkpoint, device=args.device), "published"
                    else:
                        segmenter = random_segmenter(kind, tmp, hw, args.device, args.native_size)
                        weights = "random (real architecture)"
                    consume = lambda b: len(segmenter.predict(b["image"].to(args.device)))
                    timed(_loader(warm, args.batch_size, 0, args.device), consume, args.device)  # warm-up
                    loader = _loader(ScoringImages(entries, fid_resize=fid_resize), args.batch_size, workers, args.device)
                    with torch.no_grad():
                        n, sec = timed(loader, consume, args.device)
                    note = "protocol scales"
                    if kind == "drn_d_105":
                        note += "; at the images' size (reduced), not OASIS 1024x512" if args.native_size else "; OASIS 1024x512 input"
                    row("segmentation", workers, n, sec, segmenter=kind, weights=weights, scales=segmenter_scales(kind), note=note)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
