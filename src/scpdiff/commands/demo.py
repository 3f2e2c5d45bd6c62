"""scpdiff demo: the whole sampling path on tiny random models, in seconds on a CPU.

Builds a tiny random Stable Diffusion + ControlNet (:mod:`scpdiff.models.tiny`), fits every
registered prior on synthetic latents and label maps (each class has its own latent mean, so the
priors differ), and samples a few images per prior at ``mu`` into ``--out``: ``{prior}_{k:02d}.png``
beside the colour-coded label maps ``mask_{k:02d}.png``. The models are untrained, so the images are
noise-like; the demo shows that the pipeline runs, not what it can do (for that run the toy
benchmark).
"""

from __future__ import annotations

import argparse

from ._numbers import positive_int, unit_fraction

HELP = "run prior fitting and prior-started sampling end to end on tiny random models (seconds, CPU)"

PALETTE = [[128, 64, 128], [70, 130, 180], [107, 142, 35], [220, 20, 60]]  # road, sky, vegetation, person
RESOLUTION = (64, 128)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder of PNGs")
    p.add_argument("--mu", type=unit_fraction, default=0.85, help="start step as a fraction of T (default 0.85)")
    p.add_argument("--steps", type=positive_int, default=10, help="DDIM steps (default 10)")
    p.add_argument("--samples", type=positive_int, default=2, help="images per prior (default 2)")
    p.add_argument("--seed", type=int, default=0)


def synthetic_scenes(n: int, seed: int):
    """``n`` label maps (sky above, road below, a vegetation band, a person box) and latents whose
    per-class means and spreads differ, at the demo resolution and its 8x smaller latent grid."""
    import torch

    g = torch.Generator().manual_seed(seed)
    H, W = RESOLUTION
    masks = torch.zeros(n, H, W, dtype=torch.long)
    for i in range(n):
        horizon = int(torch.randint(H // 3, 2 * H // 3, (1,), generator=g))
        masks[i, :horizon] = 1
        masks[i, horizon - 8 : horizon] = 2
        x0 = int(torch.randint(0, W - 16, (1,), generator=g))
        masks[i, horizon - 16 : horizon + 8, x0 : x0 + 8] = 3
    class_mean = torch.tensor([[-1.0, 0.5, 0.0, 0.2], [1.0, -0.5, 0.3, 0.0], [0.0, 1.0, -1.0, 0.5], [0.5, 0.5, 0.5, -1.0]])
    labels = masks[:, ::8, ::8]
    latents = class_mean[labels].permute(0, 3, 1, 2) + 0.3 * torch.randn(n, 4, H // 8, W // 8, generator=g)
    return latents, masks


def run(args) -> int:
    import time

    import torch
    from PIL import Image

    from .. import priors
    from ..models.conditioning import encode_mask
    from ..utils.files import atomic_dir, check_output_path, earlier_output
    from ..sampling import image_generators, sample_images
    from ..models.tiny import tiny_controlnet, tiny_pipeline_components

    from diffusers import StableDiffusionControlNetPipeline

    earlier_demo = earlier_output("mask_00.png")
    check_output_path(args.out, "folder", "--out (the demo folder)", replaceable=earlier_demo)  # before any work
    # Tiny models gain nothing from intra-op threads and lose a lot when the cores are busy.
    torch.set_num_threads(1)
    t0 = time.time()
    H, W = RESOLUTION
    comps = tiny_pipeline_components(sample_size=(H // 8, W // 8), seed=args.seed)
    pipe = StableDiffusionControlNetPipeline(
        **comps, controlnet=tiny_controlnet(comps["unet"], seed=args.seed),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    ref_latents, ref_masks = synthetic_scenes(32, args.seed)
    test_latents, test_masks = synthetic_scenes(args.samples, args.seed + 1)

    with atomic_dir(args.out, replaceable=earlier_demo) as tmp:
        cond = encode_mask(test_masks, PALETTE)
        for k in range(args.samples):
            Image.fromarray((cond[k].permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(tmp / f"mask_{k:02d}.png")
        for name in priors.available():
            if priors.get_prior_class(name).imported:
                continue  # the authors' released statistics: nothing to fit on synthetic scenes
            prior = priors.create(name, num_classes=len(PALETTE), latent_shape=(4, H // 8, W // 8), min_count=2)
            if prior.needs_fit:
                prior.update(ref_latents, ref_masks)
            images = sample_images(
                pipe, prior, test_masks, palette=PALETTE, mu=args.mu, num_steps=args.steps,
                prompt="City road scenes", guidance_scale=1.0,
                generators=image_generators(f"demo:{name}", range(args.samples), args.seed),
                latents=test_latents if prior.requires_latents else None,
            )
            for k, image in enumerate(images):
                Image.fromarray(image).save(tmp / f"{name}_{k:02d}.png")
            print(f"{name}: {len(images)} images")
    print(f"wrote {args.out} in {time.time() - t0:.1f} s")
    return 0
