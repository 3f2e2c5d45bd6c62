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
from ..models.conditioning import condition_palette, conditions_from_sources
from ..models.pipeline import load_pipeline
from ..priors.for_benchmark import benchmark_prior
from ..utils.files import atomic_dir, check_output_path, earlier_output
from ..utils.sharding import shard_bounds
from ..utils.torch_state import default_device
from .denoise import is_standard_normal, sample_images
from .plan import SAMPLES, SINGLE, benchmark_items, check_scaling_factor, read_paired_latents, setting_name
from .schedule import run_timesteps, start_plan
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


# a folder ``generate`` may replace: an earlier shard (it holds ``generation.json``) or an empty one
is_earlier_shard = earlier_output("generation.json")


def generate_shard(req: GenerationRequest) -> dict:
    """Generate the shard's images into ``req.out`` (atomically); return the ``generation.json`` record."""
    from PIL import Image

    t0 = time.time()
    # before any work: --out must not be a user's file or folder of another kind
    check_output_path(req.out, "folder", "--out (the shard's image folder)", replaceable=is_earlier_shard)
    bench = load_benchmark(req.benchmark)
    ds = open_benchmark_split(bench, req.split)
    diversity = req.repeats is not None
    items, draw = benchmark_items(bench, len(ds), req.num_images, req.repeats, req.maps)
    start, stop = shard_bounds(len(items), req.shard, req.num_shards)
    items = items[start:stop]

    prior = benchmark_prior(bench, req.variant, req.prior)
    if prior.requires_latents and not req.latents:
        raise InputError(f"the {req.variant!r} prior needs the paired val latents: pass --latents (encode-latents)")
    sampling_cfg = bench["sampling"]
    proto = bench.protocol
    steps, guidance = int(proto["ddim_steps"]), float(proto["guidance_scale"])
    plan = start_plan(req.mu, steps, proto["start_rule"], normal=is_standard_normal(prior),
                      normal_start=proto["normal_prior_start"])  # validates mu before any model is loaded
    prompt = (proto["inference_prompt"] or bench["prompt"]) + proto["prompt_suffix"]
    batch_size = int(req.batch_size if req.batch_size is not None else sampling_cfg["batch_size"])
    if batch_size < 1:
        raise InputError(f"the batch size must be >= 1, got {batch_size}")
    base_seed = bench.sampling_seeds[0] if req.seed is None else int(req.seed)
    setting = setting_name(req.variant, req.mu, diversity)
    classes = ds.classes
    palette = condition_palette(bench["dataset"]["kind"], classes.palette, proto["condition_colours"])
    device = req.device or default_device()
    pipe = apply_speed_options(load_pipeline(req.base, req.controlnet, device=device), req.speed)
    check_scaling_factor(str(req.prior), prior.provenance.get("scaling_factor"), pipe.vae)
    paired = read_paired_latents(req.latents, pipe.vae, bench.resolution) if prior.requires_latents else None
    timesteps = run_timesteps(pipe.scheduler, req.mu, steps, plan).tolist()

    with atomic_dir(req.out, replaceable=is_earlier_shard) as tmp:
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
                palette=palette, ignore_index=classes.ignore_index,
                mu=req.mu, num_steps=steps, prompt=prompt, guidance_scale=guidance,
                generators=image_generators(setting, [i.seed_index for i in batch], base_seed),
                latents=latents, start_rule=proto["start_rule"], normal_start=proto["normal_prior_start"],
                negative_prompt=proto["negative_prompt"], eta=proto["ddim_eta"],
                conditions=(conditions_from_sources([ds.source_mask(i.map_index) for i in batch], palette,
                                                    bench.resolution, classes.ignore_index)
                            if proto["condition_resize"] == "bilinear_antialias" else None),
            )
            for item, name, image in zip(batch, map_names, images):
                Image.fromarray(image).save(tmp / item.file_name(name))
            done = lo + len(batch)
            print(f"{done}/{len(items)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        record = {
            "benchmark": bench.name, "variant": req.variant, "mu": req.mu, "setting": setting,
            "ddim_steps": steps, "steps_run": plan.steps, "timesteps": timesteps, "noise_step": plan.noise_step,
            "guidance_scale": guidance, "prompt": prompt, "negative_prompt": proto["negative_prompt"],
            "eta": proto["ddim_eta"], "base_seed": base_seed, "protocol_hash": proto.hash, "mask_draw": draw,
            "shard": [req.shard, req.num_shards], "items": [start, stop], "num_images": len(items),
            "file_names": SAMPLES if any(i.suffix is not None for i in items) else SINGLE,
            "prior": req.prior, "base": str(req.base), "controlnet": str(req.controlnet),
            "device": device, "dtype": str(pipe.unet.dtype), "speed": req.speed, "wall_s": round(time.time() - t0, 2),
        }
        (tmp / "generation.json").write_text(json.dumps(record, indent=2))
    return record
