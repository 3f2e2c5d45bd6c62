"""Encoding images into the diffusion model's latent space: ``x0 = scaling_factor * z``.

The priors (Eqs. 5, 7, 8) are statistics of the clean latents ``x0`` that the denoiser was trained
on, and the oracle prior (Eq. 4) is one such ``x0``. We therefore encode exactly as latent-diffusion
training does (diffusers' SD / ControlNet training scripts): a *sample* ``z ~ q(z | image)`` of the
VAE posterior, not its mean, times ``vae.config.scaling_factor`` (after subtracting
``shift_factor`` for VAEs that have one). With the mean, the fitted variances would miss the
posterior's own variance, which is part of the x0 distribution the model learned (negligible for
SD's VAE, not for a small toy VAE). Each image's posterior sample comes from its own generator,
seeded from (split, image index), so the latents do not depend on batching or sharding.

    latents = encode_images(vae, images_uint8, generators=image_generators("encode:train", idx))
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .errors import InputError


def images_to_vae_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` RGB -> float32 ``[B, 3, H, W]`` in [-1, 1] (SD's VAE input range)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8:
        raise InputError(f"images must be uint8, got {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise InputError(f"images must be [B, H, W, 3], got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def encode_images(
    vae,
    images: np.ndarray | torch.Tensor,
    generators: Sequence[torch.Generator],
    batch_size: int = 16,
) -> torch.Tensor:
    """Scaled latents ``[B, C, H/8, W/8]`` (float32, CPU) of uint8 images, a posterior sample each."""
    x = images_to_vae_input(images)
    if len(generators) != x.shape[0]:
        raise InputError(f"got {len(generators)} generators for {x.shape[0]} images")
    device, dtype = vae.device, vae.dtype
    scale = float(vae.config.scaling_factor)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    out = []
    for i in range(0, x.shape[0], batch_size):
        posterior = vae.encode(x[i : i + batch_size].to(device, dtype)).latent_dist
        # The posterior noise is drawn on the CPU per image, so it is the same on any device.
        eps = torch.cat([torch.randn((1, *posterior.mean.shape[1:]), generator=g) for g in generators[i : i + batch_size]])
        z = posterior.mean.float() + posterior.std.float() * eps.to(device)
        out.append(((z - shift) * scale).cpu())
    return torch.cat(out) if out else torch.zeros(0)
