"""Generating images from a noise prior started at step mu*T (paper section 4, Eqs. 4 and 6).

    pipe = scpdiff.models.load_pipeline(base, controlnet_dir)
    gens = image_generators("joint:mu=0.85", indices, base_seed=0)
    images = sample_images(pipe, prior, masks, palette=palette, mu=0.85, num_steps=20,
                           prompt="City road scenes", guidance_scale=1.0, generators=gens)

The prior sample is noised by Eq. 6 and the ControlNet pipeline denoises the last n steps of its
DDIM grid; which n and which noise step, under the ``official`` or ``grid_tail`` start rule, is
:func:`scpdiff.sampling.schedule.start_plan` (the first step is ``t_start``; grid_tail noises to
``t_start``, official to the script's D = round(mu*T) - 1). The normal prior is not
noised: N(0, I) noised by Eq. 6 is again N(0, I), so its draw is used as ``x_t`` directly; it is
drawn like the pipeline's own initial noise (one ``randn`` per image from that image's generator),
so at mu = 1 the images equal ``StableDiffusionControlNetPipeline``'s with the same generators.
Per image, the generator (:mod:`scpdiff.utils.seeds`) gives first the prior draw and then the
noise ``eps`` of Eq. 6. The prompt and ``negative_prompt`` are the two branches of classifier-free
guidance (the official run: noise_prior_inference.py:253-254).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..models.conditioning import encode_mask
from ..errors import InputError
from .schedule import last_steps_scheduler, start_plan


def is_standard_normal(prior) -> bool:
    from ..priors.normal import NormalPrior

    return isinstance(prior, NormalPrior)


def start_latents(
    prior,
    masks: torch.Tensor,
    scheduler,
    t_start: int,
    generators: Sequence[torch.Generator],
    latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """The prior draw noised to step ``t_start`` by Eq. 6 (float32, CPU); the normal prior's draw as it is.

    ``latents``: the paired real latents, for priors that need them (oracle, Eq. 4).
    """
    masks = torch.as_tensor(masks).cpu()
    if len(generators) != masks.shape[0]:
        raise InputError(f"got {len(generators)} generators for {masks.shape[0]} masks")
    if getattr(prior, "requires_latents", False):
        if latents is None:
            raise InputError(f"the {prior.name!r} prior needs the paired real latents (generate --latents)")
        x = prior.sample(masks, generator=list(generators), latents=latents.cpu())
    else:
        x = prior.sample(masks, generator=list(generators))
    x = x.float().cpu()
    if is_standard_normal(prior):
        return x
    from ..priors import standard_normal

    eps = standard_normal(tuple(x.shape), list(generators))
    t = torch.full((x.shape[0],), int(t_start), dtype=torch.long)
    return scheduler.add_noise(x, eps, t)


def _pipeline_with_scheduler(pipe, scheduler):
    """The same pipeline (shared modules) with another scheduler; ``pipe`` itself is unchanged."""
    components = {**pipe.components, "scheduler": scheduler}
    new = type(pipe)(**components, requires_safety_checker=False)
    new.set_progress_bar_config(disable=True)
    return new


@torch.no_grad()
def sample_images(
    pipe,
    prior,
    masks: torch.Tensor | np.ndarray,
    *,
    palette,
    mu: float,
    num_steps: int,
    prompt: str,
    guidance_scale: float,
    generators: Sequence[torch.Generator],
    ignore_index: int = 255,
    latents: torch.Tensor | None = None,
    start_rule: str = "grid_tail",
    normal_start: str = "mu",
    negative_prompt: str | None = None,
    eta: float = 0.0,
    conditions: torch.Tensor | None = None,
) -> np.ndarray:
    """Generate one image per mask: prior -> Eq. 6 -> the last n DDIM steps -> VAE.

    ``masks``: int ``[B, H, W]`` at image resolution; the ControlNet condition is
    :func:`scpdiff.models.conditioning.encode_mask` with ``palette``, or ``conditions`` ``[B, 3, H, W]``
    made from the maps otherwise (the protocol's ``condition_resize``,
    :func:`~scpdiff.models.conditioning.conditions_from_sources`). ``start_rule``,
    ``normal_start``: :func:`~scpdiff.sampling.schedule.start_plan`; ``negative_prompt``: the
    unconditional branch's prompt (None: ""); ``eta``: DDIM's eta. Returns uint8 ``[B, H, W, 3]``.
    """
    masks = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).cpu()
    if masks.ndim != 3:
        raise InputError(f"masks must be [B, H, W], got shape {tuple(masks.shape)}")
    batch, height, width = masks.shape
    T = int(pipe.scheduler.config.num_train_timesteps)
    plan = start_plan(mu, num_steps, start_rule, normal=is_standard_normal(prior), normal_start=normal_start,
                      num_train_timesteps=T)
    scheduler = last_steps_scheduler(pipe.scheduler, plan.steps)
    scheduler.set_timesteps(num_steps)
    noise_step = plan.noise_step if plan.noise_step is not None else int(scheduler.timesteps[0])
    x_t = start_latents(prior, masks, scheduler, noise_step, generators, latents)

    runner = _pipeline_with_scheduler(pipe, scheduler)
    device = runner._execution_device
    dtype = runner.unet.dtype
    if conditions is not None and tuple(conditions.shape) != (batch, 3, height, width):
        raise InputError(f"conditions must be [{batch}, 3, {height}, {width}], got {tuple(conditions.shape)}")
    condition = (encode_mask(masks, palette, ignore_index) if conditions is None else conditions).to(device, dtype)
    out = runner(
        prompt=[prompt] * batch,
        negative_prompt=[negative_prompt] * batch if negative_prompt else None,
        eta=float(eta),
        image=condition,
        height=height,
        width=width,
        num_inference_steps=num_steps,
        guidance_scale=guidance_scale,
        generator=list(generators),
        latents=x_t.to(device, dtype),
        output_type="np",
    )
    return (np.clip(out.images, 0.0, 1.0) * 255.0).round().astype(np.uint8)
