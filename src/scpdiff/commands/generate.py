"""scpdiff generate: one shard of images for one setting (prior variant, mu) of a benchmark.

FID/mIoU run (default): ``counts.fid_samples`` images, image ``i`` from val label map
``i mod L`` (L val maps), named ``{name}.png``, or ``{name}_{r:02d}.png`` (r = i div L) when more
images than maps are asked for. Diversity run (``--repeats K --maps M``, Table 3): K samples of
each of the first M val maps, named ``{name}_{k:02d}.png``. Image ``i`` (diversity: item
``j*K + k``) has its own seed, ``image_seed(setting, i, sampling.seed)`` with setting
``"{variant}:mu={mu}"`` (diversity: ``"...:diversity"``), so any sharding gives the same images.
The shard's folder is written atomically, with ``generation.json`` recording the settings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

HELP = "generate one shard of images with a noise prior started at mu*T (ControlNet + DDIM)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path")
    p.add_argument("--base", required=True, help="base Stable-Diffusion folder or cached HF repo id")
    p.add_argument("--controlnet", required=True, help="fine-tuned folder with controlnet/ (and optionally unet/)")
    p.add_argument("--variant", required=True, help="prior variant (normal, spatial, categorical, joint, oracle, ...)")
    p.add_argument("--prior", default=None, help="fitted prior file (fit-prior / merge-priors) for fitted variants")
    p.add_argument("--latents", nargs="+", default=None, help="val latent shards (encode-latents) for the oracle prior")
    p.add_argument("--mu", type=float, required=True, help="start step as a fraction of T, in (0, 1]")
    p.add_argument("--split", default="val", help="split whose label maps condition the images (default val)")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None, help="diversity run: samples per label map (K)")
    p.add_argument("--maps", type=int, default=None, help="diversity run: the first M label maps")
    p.add_argument("--num-images", type=int, default=None, help="override counts.fid_samples")
    p.add_argument("--batch-size", type=int, default=None, help="override sampling.batch_size")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, help="output folder of PNGs")
    from ..acceleration import add_argument as add_speed_argument

    add_speed_argument(p)


@dataclass(frozen=True)
class Item:
    """One image to generate: the label map it is drawn for, its name suffix and its seed index."""

    map_index: int
    suffix: int | None  # None: "{name}.png"; k: "{name}_{k:02d}.png"
    seed_index: int

    def file_name(self, map_name: str) -> str:
        return f"{map_name}.png" if self.suffix is None else f"{map_name}_{self.suffix:02d}.png"


def plan_items(num_maps: int, num_images: int | None, repeats: int | None, maps: int | None) -> list[Item]:
    """Every image of the run, in order (module doc); shards take contiguous slices of this list."""
    from ..errors import InputError

    L = num_maps
    if L == 0:
        raise InputError("the split has no label maps")
    if (repeats is None) != (maps is None):
        raise InputError("--repeats and --maps go together (a diversity run)")
    if repeats is not None:
        if repeats < 1 or maps < 1:
            raise InputError(f"--repeats and --maps must be >= 1, got {repeats}, {maps}")
        return [Item(j, k, j * repeats + k) for j in range(min(maps, L)) for k in range(repeats)]
    if num_images is None or num_images < 1:
        raise InputError(f"the number of images must be >= 1, got {num_images}")
    if num_images <= L:
        return [Item(i, None, i) for i in range(num_images)]
    return [Item(i % L, i // L, i) for i in range(num_images)]


def setting_name(variant: str, mu: float, diversity: bool) -> str:
    return f"{variant}:mu={mu:g}" + (":diversity" if diversity else "")


def load_prior(bench, variant: str, prior_path: str | None):
    """The prior for ``variant``: read from ``prior_path`` when it must be fitted, else built."""
    from .. import priors
    from ..errors import InputError
    from .fit_prior import prior_for_benchmark

    cls = priors.get_prior_class(variant)
    if cls.needs_fit:
        if prior_path is None:
            raise InputError(f"the {variant!r} prior must be fitted: pass --prior FILE (scpdiff fit-prior)")
        prior = priors.load(prior_path, variant=variant)
    else:
        prior = prior_for_benchmark(bench, variant)
    if tuple(prior.latent_shape) != tuple(bench.latent_shape):
        raise InputError(
            f"{prior_path}: prior latent shape {tuple(prior.latent_shape)} is not the benchmark's {bench.latent_shape}"
        )
    return prior


def check_scaling_factor(source: str, recorded: str | None, vae) -> None:
    """Latents scaled for another VAE would put the prior on the wrong scale: refuse them."""
    from ..errors import InputError

    if recorded:
        expected = float(vae.config.scaling_factor)
        if abs(float(recorded) - expected) > 1e-6 * max(1.0, abs(expected)):
            raise InputError(
                f"{source}: latents were scaled by {recorded}, but this model's VAE uses {expected} "
                "(encoded with another VAE?)"
            )


def read_paired_latents(paths: list[str], vae) -> dict:
    """Image name -> latent ``[4, h, w]`` from encode-latents shards (the oracle's x0, Eq. 4)."""
    from ..latent_shards import read_latent_shard

    by_name = {}
    for path in paths:
        shard = read_latent_shard(path)
        check_scaling_factor(str(path), shard.metadata.get("scaling_factor"), vae)
        by_name.update(zip(shard.names, shard.latents))
    return by_name


def run(args) -> int:
    import json
    import sys
    import time

    import numpy as np
    import torch
    from PIL import Image

    from ..acceleration import apply as apply_speed_options
    from ..benchmark import load_benchmark
    from ..errors import InputError
    from ..io import atomic_dir
    from ..models import load_pipeline
    from ..sampling import denoising_steps, image_generators, run_timesteps, sample_images
    from ..sharding import shard_bounds

    t0 = time.time()
    bench = load_benchmark(args.benchmark)
    from ..datasets import open_benchmark_split

    ds = open_benchmark_split(bench, args.split)
    diversity = args.repeats is not None
    items = plan_items(len(ds), args.num_images or int(bench["counts"]["fid_samples"]), args.repeats, args.maps)
    start, stop = shard_bounds(len(items), args.shard, args.num_shards)
    items = items[start:stop]

    prior = load_prior(bench, args.variant, args.prior)
    if prior.requires_latents and not args.latents:
        raise InputError(f"the {args.variant!r} prior needs the paired val latents: pass --latents (encode-latents)")
    sampling_cfg = bench["sampling"]
    steps, guidance = int(sampling_cfg["ddim_steps"]), float(sampling_cfg["guidance_scale"])
    steps_run = denoising_steps(args.mu, steps)  # validates mu before any model is loaded
    batch_size = int(args.batch_size or sampling_cfg["batch_size"])
    base_seed = int(sampling_cfg.get("seed", 0))
    setting = setting_name(args.variant, args.mu, diversity)
    classes = ds.classes
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = apply_speed_options(load_pipeline(args.base, args.controlnet, device=device), args.speed)
    check_scaling_factor(str(args.prior), prior.provenance.get("scaling_factor"), pipe.vae)
    paired = read_paired_latents(args.latents, pipe.vae) if prior.requires_latents else None
    timesteps = run_timesteps(pipe.scheduler, args.mu, steps).tolist()

    with atomic_dir(args.out) as tmp:
        for lo in range(0, len(items), batch_size):
            batch = items[lo : lo + batch_size]
            loaded = {i.map_index: ds[i.map_index] for i in batch}
            masks = torch.from_numpy(np.stack([loaded[i.map_index][1] for i in batch]).astype(np.int64))
            map_names = [loaded[i.map_index][2] for i in batch]
            latents = None
            if paired is not None:
                missing = [n for n in map_names if n not in paired]
                if missing:
                    raise InputError(f"--latents {' '.join(args.latents)}: no latents for val images {missing[:3]}")
                latents = torch.stack([paired[n] for n in map_names])
            images = sample_images(
                pipe, prior, masks,
                palette=classes.palette, ignore_index=classes.ignore_index,
                mu=args.mu, num_steps=steps, prompt=bench["prompt"], guidance_scale=guidance,
                generators=image_generators(setting, [i.seed_index for i in batch], base_seed),
                latents=latents,
            )
            for item, name, image in zip(batch, map_names, images):
                Image.fromarray(image).save(tmp / item.file_name(name))
            done = lo + len(batch)
            print(f"{done}/{len(items)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        record = {
            "benchmark": bench.name, "variant": args.variant, "mu": args.mu, "setting": setting,
            "ddim_steps": steps, "steps_run": steps_run, "timesteps": timesteps,
            "guidance_scale": guidance, "prompt": bench["prompt"], "base_seed": base_seed,
            "shard": [args.shard, args.num_shards], "items": [start, stop], "num_images": len(items),
            "prior": args.prior, "base": str(args.base), "controlnet": str(args.controlnet),
            "device": device, "dtype": str(pipe.unet.dtype), "speed": args.speed, "wall_s": round(time.time() - t0, 2),
        }
        (tmp / "generation.json").write_text(json.dumps(record, indent=2))
    print(f"generated {len(items)} images ({setting}, {record['steps_run']}/{steps} DDIM steps) -> {args.out}")
    return 0
