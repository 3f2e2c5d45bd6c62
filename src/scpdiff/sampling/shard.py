"""One shard of a generation run: the images of one setting (prior variant, mu) of a benchmark,
written atomically as a folder of PNGs with ``generation.json`` recording the settings.

    generate_shard(GenerationRequest(benchmark="toy", base=..., controlnet=..., variant="joint", mu=0.85,
                                     out="work/toy/samples/joint/0.85/fid/0000"))

Which images, how they are named and seeded: :mod:`.plan`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..config.benchmark import load_benchmark
from ..datasets import open_benchmark_split
from ..errors import InputError
from ..models.pipeline import load_pipeline
from ..priors.for_benchmark import benchmark_prior
from ..utils.files import atomic_dir
from ..utils.sharding import shard_bounds
from ..utils.torch_state import default_device
from .denoise import sample_images
from .plan import check_scaling_factor, plan_items, read_paired_latents, setting_name
from .schedule import denoising_steps, run_timesteps
from ..utils.seeds import image_generators
from .speed import DEFAULT as DEFAULT_SPEED
from .speed import apply as apply_speed_options


@dataclass(frozen=True)
class GenerationRequest:
    """What ``scpdiff generate`` asks for (its options, one field each)."""

    benchmark: str
    base: str
    controlnet: str
    variant: str
    mu: float
    out: str
    prior: str | None = None
    latents: Sequence[str] | None = None
    split: str = "val"
    shard: int = 0
    num_shards: int = 1
    repeats: int | None = None
    maps: int | None = None
    num_images: int | None = None
    batch_size: int | None = None
    device: str | None = None
    speed: str = DEFAULT_SPEED
    seed: int | None = None  # base seed; default the benchmark's first of sampling.seeds


def generate_shard(req: GenerationRequest) -> dict:
    """Generate the shard's images into ``req.out`` (atomically); return the ``generation.json`` record."""
    from PIL import Image

    t0 = time.time()
    bench = load_benchmark(req.benchmark)
    ds = open_benchmark_split(bench, req.split)
    diversity = req.repeats is not None
    items = plan_items(len(ds), req.num_images or int(bench["counts"]["fid_samples"]), req.repeats, req.maps)
    start, stop = shard_bounds(len(items), req.shard, req.num_shards)
    items = items[start:stop]

    prior = benchmark_prior(bench, req.variant, req.prior)
    if prior.requires_latents and not req.latents:
        raise InputError(f"the {req.variant!r} prior needs the paired val latents: pass --latents (encode-latents)")
    sampling_cfg = bench["sampling"]
    steps, guidance = int(sampling_cfg["ddim_steps"]), float(sampling_cfg["guidance_scale"])
    steps_run = denoising_steps(req.mu, steps)  # validates mu before any model is loaded
    batch_size = int(req.batch_size or sampling_cfg["batch_size"])
    base_seed = bench.sampling_seeds[0] if req.seed is None else int(req.seed)
    setting = setting_name(req.variant, req.mu, diversity)
    classes = ds.classes
    device = req.device or default_device()
    pipe = apply_speed_options(load_pipeline(req.base, req.controlnet, device=device), req.speed)
    check_scaling_factor(str(req.prior), prior.provenance.get("scaling_factor"), pipe.vae)
    paired = read_paired_latents(req.latents, pipe.vae) if prior.requires_latents else None
    timesteps = run_timesteps(pipe.scheduler, req.mu, steps).tolist()

    with atomic_dir(req.out) as tmp:
        for lo in range(0, len(items), batch_size):
            batch = items[lo : lo + batch_size]
            loaded = {i.map_index: ds[i.map_index] for i in batch}
            masks = torch.from_numpy(np.stack([loaded[i.map_index][1] for i in batch]).astype(np.int64))
            map_names = [loaded[i.map_index][2] for i in batch]
            latents = None
            if paired is not None:
                missing = [n for n in map_names if n not in paired]
                if missing:
                    raise InputError(f"--latents {' '.join(req.latents)}: no latents for val images {missing[:3]}")
                latents = torch.stack([paired[n] for n in map_names])
            images = sample_images(
                pipe, prior, masks,
                palette=classes.palette, ignore_index=classes.ignore_index,
                mu=req.mu, num_steps=steps, prompt=bench["prompt"], guidance_scale=guidance,
                generators=image_generators(setting, [i.seed_index for i in batch], base_seed),
                latents=latents,
            )
            for item, name, image in zip(batch, map_names, images):
                Image.fromarray(image).save(tmp / item.file_name(name))
            done = lo + len(batch)
            print(f"{done}/{len(items)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        record = {
            "benchmark": bench.name, "variant": req.variant, "mu": req.mu, "setting": setting,
            "ddim_steps": steps, "steps_run": steps_run, "timesteps": timesteps,
            "guidance_scale": guidance, "prompt": bench["prompt"], "base_seed": base_seed,
            "shard": [req.shard, req.num_shards], "items": [start, stop], "num_images": len(items),
            "prior": req.prior, "base": str(req.base), "controlnet": str(req.controlnet),
            "device": device, "dtype": str(pipe.unet.dtype), "speed": req.speed, "wall_s": round(time.time() - t0, 2),
        }
        (tmp / "generation.json").write_text(json.dumps(record, indent=2))
    return record
