"""PIL-exact resizing at the protocol sizes: Pillow itself (in a loader worker) vs the torch port.

Both give the same pixels (tests/test_segmenters.py); this measures which is faster per image
for the resizes the protocol recipes do (issue 14):

* ``drn_bicubic_u8``: fyu/drn's five BICUBIC rescalings of a 512x256 RGB image;
* ``drn_bilinear_f``: its six 19-channel float score maps resized back to 512x256 (BILINEAR 'F');
* ``upernet_bilinear_u8``: CSAIL's five BILINEAR test sizes of a 256x256 (ADE20K) image.

``pil`` runs Pillow on the CPU in this process (one loader worker's cost; a loader with N workers
divides the wall time by about N); ``torch-<device>`` runs :mod:`scpdiff.segmenters.pil_resize`
on each device given (with a synchronise before the clock stops).

    python tools/speed/segmenter_resize.py --devices cpu cuda --repeats 5 --out results/speed/segmenter_resize.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import scpdiff
from scpdiff.segmenters.pil_resize import resize_float_like_pil, resize_uint8_like_pil, scaled_size
from scpdiff.segmenters.upernet import scaled_input_size

DRN_SIZE = (256, 512)
DRN_SCALES = (0.5, 0.75, 1.25, 1.5, 1.75)
ADE_SIZE = (256, 256)
ADE_SHORT_SIDES = (300, 375, 450, 525, 600)


def cases():
    """name -> (input kind, source (h, w), channels, [target (h, w)], PIL filter, mode)."""
    return {
        "drn_bicubic_u8": ("u8", DRN_SIZE, 3, [scaled_size(DRN_SIZE, s) for s in DRN_SCALES], Image.BICUBIC, "bicubic"),
        "drn_bilinear_f": (
            "f", None, 19, [(DRN_SIZE, s) for s in (1.0,) + DRN_SCALES], Image.BILINEAR, "bilinear"
        ),
        "upernet_bilinear_u8": (
            "u8", ADE_SIZE, 3, [scaled_input_size(ADE_SIZE, s) for s in ADE_SHORT_SIDES], Image.BILINEAR, "bilinear"
        ),
    }


def drn_output_size(size, scale):
    """The DRN output size for one scale: 8 x ceil(side / 8) of the rescaled image."""
    h, w = scaled_size(size, scale)
    return 8 * -(-h // 8), 8 * -(-w // 8)


def time_it(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up (coefficient tables, CUDA context)
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(name, spec, devices, repeats, rng):
    kind, src, channels, targets, resample, mode = spec
    rows = []
    if kind == "u8":
        img = rng.integers(0, 256, size=(*src, 3), dtype=np.uint8)
        pil_img = Image.fromarray(img)

        def pil():
            for h, w in targets:
                np.asarray(pil_img.resize((w, h), resample))

        rows.append(("pil", time_it(pil, repeats)))
        for device in devices:
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().to(device)

            def port():
                for size in targets:
                    resize_uint8_like_pil(x, size, mode, backend="torch")

            rows.append((f"torch-{device}", time_it(port, repeats, _sync(device))))
    else:
        maps = [
            rng.normal(size=(channels, *drn_output_size(size, s))).astype(np.float32) for size, s in targets
        ]
        h, w = DRN_SIZE

        def pil():
            for m in maps:
                if m.shape[-2:] != (h, w):
                    np.stack([np.asarray(Image.fromarray(c).resize((w, h), resample)) for c in m])

        rows.append(("pil", time_it(pil, repeats)))
        for device in devices:
            tensors = [torch.from_numpy(m)[None].to(device) for m in maps]

            def port():
                for t in tensors:
                    resize_float_like_pil(t, (h, w), mode, backend="torch")

            rows.append((f"torch-{device}", time_it(port, repeats, _sync(device))))
    return [{"case": name, "backend": b, "seconds_per_image": round(t, 6)} for b, t in rows]


def _sync(device: str):
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", nargs="+", default=["cpu"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (a loader worker has one)")
    p.add_argument("--out", default="results/speed/segmenter_resize.csv")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, spec in cases().items():
        rows += measure(name, spec, args.devices, args.repeats, rng)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": platform.processor() or platform.machine(), "threads": args.threads,
        "torch": torch.__version__, "pillow": Image.__version__, "scpdiff": scpdiff.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) + list(meta))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **meta})
            print(f"{row['case']:>22} {row['backend']:>12} {row['seconds_per_image'] * 1e3:9.2f} ms")
    print("->", out)


if __name__ == "__main__":
    main()
