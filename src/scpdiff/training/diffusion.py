"""The denoising objective the base UNet and the ControlNet are trained with (latent diffusion).

With ``alpha_bar_t`` from SD's schedule (``scaled_linear``, 1000 steps), a clean latent ``x0`` is
noised as ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` (the forward process the
paper's Eq. 6 restarts from) and the network regresses ``eps`` (epsilon objective, SD 2.1-base)
or ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0`` (v objective, SD 2.1 at 768).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..latents.encoding import encode_pixels, posterior_noise, scale_latents

PREDICTION_TYPES = ("epsilon", "v_prediction")


def training_scheduler(scheduler_config: dict):
    """A DDPM scheduler on the base model's schedule (used only for ``add_noise``/``get_velocity``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config)


def diffusion_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type {kind!r}; expected one of {PREDICTION_TYPES}")


def diffusion_loss(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    scheduler,
    generator: torch.Generator,
) -> torch.Tensor:
    """MSE between ``predict(x_t, t)`` and the objective's target, ``t`` uniform over the schedule."""
    noise = torch.randn(latents.shape, generator=generator, device=generator.device, dtype=torch.float32)
    noise = noise.to(latents.device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator, device=generator.device)
    t = t.to(latents.device)
    latents = latents.float()
    noisy = scheduler.add_noise(latents, noise, t)
    target = diffusion_target(scheduler, latents, noise, t)
    return F.mse_loss(predict(noisy, t).float(), target.float())


class LatentCache:
    """The VAE posterior (mean, std) of every training image, computed once in a fixed order.

    With a frozen VAE, encoding each image at every step repeats the same work; the cache keeps
    the posterior so each step only draws ``z = mean + std * eps`` (the same distribution as
    :func:`scpdiff.latents.encoding.encode_pixels`). Encoding in a fixed order (not in training batches) keeps the cached
    values independent of where a run was resumed.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, vae_config):
        self.mean, self.std, self.vae_config = mean, std, vae_config

    @classmethod
    @torch.no_grad()
    def build(cls, vae, dataset, device, batch_size: int = 32) -> "LatentCache":
        from .data import ImageMaskSamples

        samples = ImageMaskSamples(dataset)
        means, stds = [], []
        for start in range(0, len(samples), batch_size):
            x = torch.stack([samples[i]["pixel_values"] for i in range(start, min(len(samples), start + batch_size))])
            dist = vae.encode(x.to(device, vae.dtype)).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        return cls(torch.cat(means), torch.cat(stds), vae.config)

    def sample(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mean, std = self.mean[index.to(self.mean.device)], self.std[index.to(self.mean.device)]
        return scale_latents(mean + std * posterior_noise(mean.shape, generator).to(mean.device), self.vae_config)


class LatentSource:
    """Training latents of a batch: from a :class:`LatentCache` when a dataset is given, else encoded."""

    def __init__(self, vae, cache_dataset=None):
        self.vae = vae
        self.cache_dataset = cache_dataset
        self.cache: LatentCache | None = None

    def setup(self, device, weight_dtype) -> None:
        self.vae.to(device)
        if weight_dtype != torch.float32:  # a frozen VAE may run in bf16 on CUDA
            self.vae.to(dtype=weight_dtype)
        if self.cache_dataset is not None:
            self.cache = LatentCache.build(self.vae, self.cache_dataset, device)

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        if self.cache is not None:
            return self.cache.sample(batch["index"], generator)
        return encode_pixels(self.vae, batch["pixel_values"], generator)
