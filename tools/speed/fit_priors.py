"""Prior-fitting throughput: latent tokens per second of ``update`` for each fitted variant.

Goal (issue 2): the joint prior's ``update`` at >= 10 million latent tokens/s on a 2-core CPU, i.e. a
Cityscapes-size fit (10,000 latents of 4x64x128, 19 classes) in under 10 s, VAE excluded.

    python tools/speed/fit_priors.py --out results/speed/fit_priors.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import time

import torch

import scpdiff
from scpdiff import priors


def measure(variant: str, num_latents: int, batch: int, classes: int, latent_hw, factor: int, repeats: int) -> dict:
    h, w = latent_hw
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, 4, h, w, generator=g)
    # blocky masks at image size, as real label maps (nearest selection reads one pixel per block)
    lab = torch.randint(0, classes, (batch, h, w), generator=g).to(torch.uint8)
    masks = lab.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    best = float("inf")
    for _ in range(repeats):
        prior = priors.create(variant, num_classes=classes, latent_shape=(4, h, w))
        steps = max(1, num_latents // batch)
        t0 = time.perf_counter()
        for _ in range(steps):
            prior.update(latents, masks)
        best = min(best, time.perf_counter() - t0)
    tokens = steps * batch * h * w
    return {
        "variant": variant,
        "latents": steps * batch,
        "latent_shape": f"4x{h}x{w}",
        "classes": classes,
        "batch": batch,
        "seconds": round(best, 3),
        "tokens_per_s": round(tokens / best),
        "seconds_per_10k_latents": round(best * 10_000 / (steps * batch), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/speed/fit_priors.csv")
    ap.add_argument("--latents", type=int, default=1024, help="latents per measurement (scaled to 10k in the CSV)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--latent-hw", type=int, nargs=2, default=(64, 128))
    ap.add_argument("--factor", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["spatial", "categorical", "joint"])
    args = ap.parse_args()
    rows = []
    for v in args.variants:
        row = measure(v, args.latents, args.batch, args.classes, args.latent_hw, args.factor, args.repeats)
        row.update(
            date=dt.date.today().isoformat(),
            torch=torch.__version__,
            scpdiff=scpdiff.__version__,
            threads=torch.get_num_threads(),
            cpu=platform.processor() or platform.machine(),
            cpus=os.cpu_count(),
        )
        print(row)
        rows.append(row)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
