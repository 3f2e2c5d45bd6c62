"""Scoring throughput: images/s of decoding, FID features and segmentation through the scoring loader.

Goal (issue 8): on a GPU, the multi-worker loader decodes PNGs faster than the Inception and the
segmenter consume them, so ``fid_features`` and ``segmentation`` are compute-bound (compare them
with the ``decode`` row at the same worker count). Synthetic smooth PNGs at the benchmark size are
written to a temporary folder; the segmenter may run with random weights (speed does not depend on
them). FID needs the weights prepared by ``scpdiff weights``.

    python tools/speed/score.py --resolution 256 512 --images 256 --workers 0 4 8 --out results/speed/score.csv
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


def random_segmenter_checkpoint(kind: str, folder: Path, hw: tuple[int, int]) -> str:
    """A checkpoint with random weights in the kind's own format (only speed is measured)."""
    if kind == "toy":
        from scpdiff.segmenters.toy import ToySegNet, save_toy_segmenter

        config = {"num_classes": 9, "channels": [16, 32, 64], "resolution": list(hw)}
        return str(save_toy_segmenter(folder / "toy_seg", ToySegNet(9, (16, 32, 64)), config))
    if kind == "drn_d_105":
        from scpdiff.segmenters.drn import NUM_CLASSES, PUBLISHED, DRNSeg

        path = folder / PUBLISHED.filename
        torch.save(DRNSeg(NUM_CLASSES).state_dict(), path)
        return str(path)
    raise SystemExit(f"--checkpoint is needed for segmenter {kind!r}")


def timed(loader, consume, device) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    for batch in loader:
        n += consume(batch)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/speed/score.csv")
    ap.add_argument("--resolution", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--segmenter", default="drn_d_105", help="segmenter kind (toy, drn_d_105, ...)")
    ap.add_argument("--checkpoint", help="segmenter checkpoint (default: random weights for toy/drn_d_105)")
    ap.add_argument("--stages", nargs="+", default=["decode", "fid_features", "segmentation"])
    ap.add_argument("--cache", help="scpdiff cache with prepared FID weights")
    args = ap.parse_args()
    hw = tuple(args.resolution)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        entries = write_images(tmp, args.images, hw)
        inception = segmenter = None
        if "fid_features" in args.stages:
            inception, _ = load_inception(args.device, cache=args.cache)
        if "segmentation" in args.stages:
            from scpdiff.segmenters import load_segmenter

            ckpt = args.checkpoint or random_segmenter_checkpoint(args.segmenter, tmp, hw)
            segmenter = load_segmenter(args.segmenter, ckpt, device=args.device)
        fid_resize = functools.partial(resize_for_inception, mode="tf1_bilinear")
        for workers in args.workers:
            for stage in args.stages:
                data = ScoringImages(entries, fid_resize=fid_resize)
                loader = _loader(data, args.batch_size, workers, args.device)
                if stage == "decode":
                    consume = lambda b: len(b["image"])
                elif stage == "fid_features":
                    consume = lambda b: len(inception_features(inception, b["fid"]))
                else:
                    consume = lambda b: len(segmenter.predict(b["image"].to(args.device)))
                timed(_loader(ScoringImages(entries[: args.batch_size], fid_resize=fid_resize), args.batch_size, 0,
                              args.device), consume, args.device)  # warm-up (cudnn autotune, lazy init)
                n, sec = timed(loader, consume, args.device)
                row = {"stage": stage, "workers": workers, "images": n, "resolution": f"{hw[0]}x{hw[1]}",
                       "batch_size": args.batch_size, "seconds": round(sec, 3), "images_per_s": round(n / sec, 2),
                       "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
                       "segmenter": args.segmenter if stage == "segmentation" else "", "torch": torch.__version__,
                       "scpdiff": scpdiff.__version__ if hasattr(scpdiff, "__version__") else "",
                       "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
                print(row)
                rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
