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

from ..errors import InputError


def images_to_vae_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` RGB -> float32 ``[B, 3, H, W]`` in [-1, 1] (SD's VAE input range)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8:
        raise InputError(f"images must be uint8, got {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise InputError(f"images must be [B, H, W, 3], got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def posterior_noise(shape: Sequence[int], generators: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
    """float32 N(0, I) noise of ``shape`` for a posterior sample, on the generators' device.

    One generator draws the whole batch at once (a training micro-batch); a list draws image ``i``
    from generator ``i``, so a latent does not depend on the batch it is encoded in.
    """
    if isinstance(generators, torch.Generator):
        return torch.randn(tuple(shape), generator=generators, device=generators.device, dtype=torch.float32)
    if len(generators) != shape[0]:
        raise InputError(f"got {len(generators)} generators for {shape[0]} images")
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in generators])


def scale_latents(z: torch.Tensor, vae_config) -> torch.Tensor:
    """``x0 = scaling_factor * (z - shift_factor)``: the latent the denoiser sees (shift 0 for SD's VAE)."""
    shift = getattr(vae_config, "shift_factor", None) or 0.0
    return (z - shift) * float(vae_config.scaling_factor)


@torch.no_grad()
def encode_pixels(vae, pixel_values: torch.Tensor, generators=None) -> torch.Tensor:
    """Scaled latents (float32, on the VAE's device) of images in [-1, 1] ``[B, 3, H, W]``.

    A posterior sample with noise from ``generators`` (:func:`posterior_noise`), or the posterior
    mean when ``generators`` is None.
    """
    posterior = vae.encode(pixel_values.to(vae.device, vae.dtype)).latent_dist
    z = posterior.mean.float()
    if generators is not None:
        eps = posterior_noise(posterior.mean.shape, generators)
        z = z + posterior.std.float() * eps.to(z.device)
    return scale_latents(z, vae.config)


def encode_images(
    vae,
    images: np.ndarray | torch.Tensor,
    generators: Sequence[torch.Generator],
    batch_size: int = 16,
) -> torch.Tensor:
    """Scaled latents ``[B, C, H/8, W/8]`` (float32, CPU) of uint8 images, a posterior sample each.

    The posterior noise is drawn on the CPU per image, so it is the same on any device.
    """
    x = images_to_vae_input(images)
    if len(generators) != x.shape[0]:
        raise InputError(f"got {len(generators)} generators for {x.shape[0]} images")
    out = [encode_pixels(vae, x[i : i + batch_size], list(generators[i : i + batch_size])).cpu()
           for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out) if out else torch.zeros(0)
