"""The reference images of Table 1's bound rows, as folders ``scpdiff score`` reads like any method's.

* real images (``base=None``): the first ``num`` images of a split, unchanged. On the val split the
  segmenter's mIoU/Acc on them is the ceiling of any generated image; the train split's images at
  the generated sample size give the FID/KID floor against the val reference statistics.
* VAE reconstructions (``base`` given): the same val images encoded with the base model's VAE (the
  posterior *mean*, ``x0 = scaling_factor * z``) and decoded. Every latent method ends with this
  decoder, so their FID is the floor of any prior's (issue: the toy VAE alone sat at FID 314).

Images are named after their label maps (``{name}.png``), as generated images are, and the folder
is written atomically with ``reference.json`` saying what it holds.

    write_reference_images(bench, "val", 150, "work/toy/reference/vae_reconstruction", base="work/toy/models/base")
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..datasets import open_benchmark_split
from ..errors import InputError
from ..models.paths import resolve_base_model
from ..utils.files import atomic_dir
from ..utils.torch_state import default_device
from .encoding import encode_pixels, images_to_vae_input


@torch.no_grad()
def reconstruct(vae, images: np.ndarray) -> np.ndarray:
    """uint8 ``[B, H, W, 3]`` -> the VAE's decoding of its posterior mean, uint8 ``[B, H, W, 3]``
    (rounded the way diffusers' image processor turns a decoded image into pixels)."""
    x0 = encode_pixels(vae, images_to_vae_input(images))
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    z = x0 / float(vae.config.scaling_factor) + shift
    decoded = vae.decode(z.to(vae.device, vae.dtype)).sample.float().cpu()
    pixels = ((decoded / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def write_reference_images(bench, split: str, num: int, out: str | os.PathLike, base: str | os.PathLike | None = None,
                           device: str | None = None, batch_size: int = 16) -> dict:
    """Write the first ``num`` images of ``split`` (or their VAE reconstructions with ``base``) to
    ``out``; returns the ``reference.json`` record."""
    from PIL import Image

    t0 = time.time()
    ds = open_benchmark_split(bench, split)
    n = min(int(num), len(ds))
    if n < 1:
        raise InputError(f"benchmark {bench.name}: split {split} has no images to write")
    vae = None
    if base is not None:
        from diffusers import AutoencoderKL

        # a folder with vae/ is enough (the VAE alone); otherwise a full base model or its repo id
        base = Path(base) if (Path(base) / "vae" / "config.json").is_file() else resolve_base_model(base)
        device = device or default_device()
        vae = AutoencoderKL.from_pretrained(base / "vae", torch_dtype=torch.float32, local_files_only=True).to(device)
    with atomic_dir(out) as tmp:
        for lo in range(0, n, batch_size):
            items = [ds[i] for i in range(lo, min(lo + batch_size, n))]
            images = np.stack([np.asarray(im, dtype=np.uint8) for im, _, _ in items])
            if vae is not None:
                images = reconstruct(vae, images)
            for image, (_, _, name) in zip(images, items):
                Image.fromarray(image).save(tmp / f"{name}.png")
        record = {"benchmark": bench.name, "split": split, "num_images": n,
                  "kind": "vae_reconstruction" if vae is not None else "real",
                  "vae": str(Path(base) / "vae") if vae is not None else None, "posterior": "mean" if vae else None,
                  "wall_s": round(time.time() - t0, 2)}
        (tmp / "reference.json").write_text(json.dumps(record, indent=2))
    return record
