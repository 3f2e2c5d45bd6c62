"""Sampling with a noise prior started at step mu*T (paper section 4, Eqs. 4 and 6).

    pipe = scpdiff.models.load_pipeline(base, controlnet_dir)
    gens = image_generators("joint:mu=0.85", indices, base_seed=0)
    images = sample_images(pipe, prior, masks, palette=palette, mu=0.85, num_steps=20,
                           prompt="City road scenes", guidance_scale=1.0, generators=gens)

How mu maps to DDIM steps
-------------------------
With ``S`` DDIM steps the scheduler's grid is ``timesteps = [t_0 > t_1 > ... > t_{S-1}]``
(SD's "leading" spacing: ``t_k = (S-1-k) * (T // S) + 1``, e.g. 951, 901, ..., 1 for S = 20).
For ``mu`` in (0, 1] we run the last

    n = max(1, floor(mu * S + 1/2))        (mu * S rounded half up)

steps of that grid, ``t_{S-n}, ..., t_{S-1}``: the prior sample is noised to ``t_start = t_{S-n}``
by Eq. 6, ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps`` (``scheduler.add_noise``), and the
ControlNet pipeline denoises from there. So "noise for mu*T steps, denoise the last mu*T steps"
is realised on the DDIM grid, ``t_start = (n-1) * (T // S) + 1`` (e.g. S = 20, mu = 0.85: n = 17,
t_start = 801), and mu = 1 runs all S steps from ``t_0``, exactly like the plain pipeline, which
is also where diffusers' img2img pipelines start at strength 1 (they take ``n = int(strength * S)``,
which truncates products like ``0.57 * 100 = 56.99...`` to one step fewer; we round). Each DDIM step keeps its
full-grid stride ``T // S`` (the scheduler still knows ``S``), so the steps run at mu < 1 are exactly
the tail of the steps run at mu = 1.

The normal prior is not noised: N(0, I) noised by Eq. 6 is again N(0, I), so its draw is used as
``x_t`` directly; it is drawn like the pipeline's own initial noise (one ``randn`` per image
from that image's generator), so at mu = 1 the images equal ``StableDiffusionControlNetPipeline``'s
with the same generators.

Seeds
-----
Every image has its own ``torch.Generator`` (on the CPU, so CPU and GPU runs draw the same numbers)
seeded by :func:`image_seed` from (setting, image index, base seed) through a stable hash, so
an image does not depend on the batch or shard it is generated in. Per image, the generator gives
first the prior draw and then the noise ``eps`` of Eq. 6.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Sequence

import numpy as np
import torch

from .conditioning import encode_mask
from .errors import InputError


def image_seed(setting: str, index: int, base_seed: int = 0) -> int:
    """A 63-bit seed from (setting, image index, base seed): SHA-256, stable across runs and machines."""
    digest = hashlib.sha256(f"{setting}\x1f{int(index)}\x1f{int(base_seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def image_generators(setting: str, indices: Sequence[int], base_seed: int = 0) -> list[torch.Generator]:
    """One CPU generator per image, seeded by :func:`image_seed`."""
    return [torch.Generator("cpu").manual_seed(image_seed(setting, i, base_seed)) for i in indices]


def denoising_steps(mu: float, num_steps: int) -> int:
    """``n = max(1, round_half_up(mu * S))``: the number of DDIM steps run for ``mu`` (module doc)."""
    if not 0.0 < float(mu) <= 1.0:
        raise InputError(f"mu must lie in (0, 1], got {mu}")
    if int(num_steps) < 1:
        raise InputError(f"the number of DDIM steps must be >= 1, got {num_steps}")
    # the small slack keeps products like 0.85 * 20 = 16.999999999999996 on the intended side
    return max(1, min(int(num_steps), math.floor(float(mu) * int(num_steps) + 0.5 + 1e-9)))


@functools.lru_cache(maxsize=None)
def _ddim_class():
    # defined on first use so that importing this module (for image_seed) does not import diffusers
    from diffusers import DDIMScheduler

    class LastStepsDDIMScheduler(DDIMScheduler):
        """DDIM that runs only the last ``steps_to_run`` steps of its ``S``-step grid.

        ``set_timesteps(S)`` builds the usual grid and keeps ``timesteps[S - n:]``; ``step`` still
        uses the full grid's stride ``T // S``, so each step is the one the full run would take.
        """

        steps_to_run: int | None = None

        def set_timesteps(self, num_inference_steps: int, device=None):
            super().set_timesteps(num_inference_steps, device=device)
            if self.steps_to_run is not None:
                self.timesteps = self.timesteps[num_inference_steps - self.steps_to_run :]

    return LastStepsDDIMScheduler


def last_steps_scheduler(scheduler, steps_to_run: int):
    """A DDIM scheduler with ``scheduler``'s config that runs only the last ``steps_to_run`` steps."""
    sched = _ddim_class().from_config(scheduler.config)
    sched.steps_to_run = int(steps_to_run)
    return sched


def run_timesteps(scheduler, mu: float, num_steps: int) -> torch.Tensor:
    """The timesteps denoised for ``mu`` with ``num_steps`` DDIM steps (the first is ``t_start``)."""
    sched = last_steps_scheduler(scheduler, denoising_steps(mu, num_steps))
    sched.set_timesteps(num_steps)
    return sched.timesteps


def is_standard_normal(prior) -> bool:
    from .priors.normal import NormalPrior

    return isinstance(prior, NormalPrior)


def start_latents(
    prior,
    masks: torch.Tensor,
    scheduler,
    t_start: int,
    generators: Sequence[torch.Generator],
    latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x_{t_start}`` from the prior by Eq. 6 (float32, CPU); the normal prior's draw as it is.

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
    from .priors import standard_normal

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
) -> np.ndarray:
    """Generate one image per mask: prior -> Eq. 6 at ``t_start`` -> the last n DDIM steps -> VAE.

    ``masks``: int ``[B, H, W]`` at image resolution; the ControlNet condition is
    :func:`scpdiff.conditioning.encode_mask` with ``palette``. Returns uint8 ``[B, H, W, 3]``.
    """
    masks = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).cpu()
    if masks.ndim != 3:
        raise InputError(f"masks must be [B, H, W], got shape {tuple(masks.shape)}")
    batch, height, width = masks.shape
    n = denoising_steps(mu, num_steps)
    scheduler = last_steps_scheduler(pipe.scheduler, n)
    scheduler.set_timesteps(num_steps)
    t_start = int(scheduler.timesteps[0])
    x_t = start_latents(prior, masks, scheduler, t_start, generators, latents)

    runner = _pipeline_with_scheduler(pipe, scheduler)
    device = runner._execution_device
    dtype = runner.unet.dtype
    condition = encode_mask(masks, palette, ignore_index).to(device, dtype)
    out = runner(
        prompt=[prompt] * batch,
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
