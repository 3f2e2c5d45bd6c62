"""Training the toy's tiny VAE (an :class:`~diffusers.AutoencoderKL`, 4 latent channels).

Its latent factor is ``2 ** (len(block_out_channels) - 1)`` (8 by default, as SD's; the toy uses a
smaller one, see ``Benchmark.latent_factor``): the base UNet, the priors and the ControlNet's
conditioning embedding follow it.

The objective is LDM's first-stage loss:
``|x - D(z)|_1 + |x - D(z)|_2^2 + w_p * LPIPS(x, D(z)) + w * KL(q(z|x) || N(0, I))`` with
``z ~ q(z|x)``, plus, when ``adversarial_weight > 0``, the patch discriminator's hinge terms from
step ``adversarial_start`` on (:mod:`.adversarial`; ``train_log.csv``'s loss then includes the
discriminator's). The perceptual term (``perceptual_weight``; LDM uses 1.0) is LPIPS on the AlexNet
trunk ``scpdiff weights`` prepares offline (:mod:`scpdiff.models.perceptual`), frozen; without it
the pixel losses alone give blurred reconstructions whose FID sits far above the real images'.
As in SD, the latents are afterwards scaled by ``scaling_factor = 1 / std(z)`` so the diffusion
model sees roughly unit-variance latents (SD's 0.18215 was found the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..datasets.base import SegmentationDataset
from .loop import LoopConfig
from .windows import cut, window_offset


@dataclass
class VaeTrainConfig(LoopConfig):
    steps: int = 1200
    batch_size: int = 16
    lr: float = 1e-3
    mixed_precision: str = "no"
    checkpoint_every: int = 200
    block_out_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    layers_per_block: int = 1
    mid_block_add_attention: bool = True  # False: no middle-block attention (convolutional but for GroupNorm)
    kl_weight: float = 1e-4  # per element of the latent, relative to the per-pixel reconstruction terms
    perceptual_weight: float = 0.0  # LPIPS term (LDM: 1.0); > 0 needs the prepared LPIPS weights
    scaling_images: int = 256  # training images whose latents set scaling_factor
    adversarial_weight: float = 0.0  # LDM's disc_weight (0.5); 0: no discriminator
    adversarial_start: int = 0  # optimiser steps before the adversarial term starts (LDM: disc_start)
    discriminator_channels: int = 32
    # [h, w]: train on one random window of each batch (image pixels, multiples of the latent factor;
    # scpdiff.training.windows); None: whole images
    crop: list[int] | None = None


class VaeWithKl(torch.nn.Module):
    """``forward(x, generator) -> (reconstruction, KL per latent element)`` so DDP sees one call."""

    def __init__(self, vae, adversarial: torch.nn.Module | None = None):
        super().__init__()
        self.vae = vae
        self.adversarial = adversarial  # trained beside the VAE, saved in checkpoints only

    def forward(self, x: torch.Tensor, generator: torch.Generator):
        dist = self.vae.encode(x).latent_dist
        eps = torch.randn(dist.mean.shape, generator=generator, device=generator.device, dtype=torch.float32)
        z = dist.mean + dist.std * eps.to(dist.mean.device, dist.mean.dtype)
        kl = 0.5 * (dist.mean.pow(2) + dist.var - 1.0 - dist.logvar).mean()
        return self.vae.decode(z).sample, kl


class VaeTask:
    """The loss of the module doc; ``perceptual``: a frozen LPIPS network (inputs in [-1, 1])."""

    def __init__(self, vae, kl_weight: float, perceptual: torch.nn.Module | None = None, perceptual_weight: float = 0.0,
                 adversarial: torch.nn.Module | None = None, crop: tuple[int, int] | None = None, latent_factor: int = 1):
        self.model = VaeWithKl(vae, adversarial)
        self.crop, self.latent_factor = (tuple(crop) if crop else None), latent_factor
        self.kl_weight = kl_weight
        self.perceptual = perceptual.eval().requires_grad_(False) if perceptual is not None else None
        self.perceptual_weight = perceptual_weight if perceptual is not None else 0.0

    def trainable(self) -> torch.nn.Module:
        return self.model

    def setup(self, device, weight_dtype) -> None:
        if self.perceptual is not None:
            self.perceptual.to(device)

    def window(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The batch cut to ``crop`` at one random offset on the latent grid (drawn from ``generator``)."""
        if self.crop is None:
            return x
        return cut(x, window_offset(tuple(x.shape[-2:]), self.crop, self.latent_factor, generator), self.crop)

    def loss(self, model, batch, generator) -> torch.Tensor:
        x = self.window(batch["pixel_values"], generator)
        rec, kl = model(x, generator)
        rec_loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        if self.perceptual_weight:
            rec_loss = rec_loss + self.perceptual_weight * self.perceptual(rec.float(), x.float()).mean()
        loss = rec_loss + self.kl_weight * kl
        inner = getattr(model, "module", model)  # unwrapped (DDP) for the decoder's last layer
        if inner.adversarial is not None:
            loss = loss + inner.adversarial(x, rec, rec_loss, inner.vae.decoder.conv_out.weight)
        return loss


def load_perceptual(backbone_path) -> torch.nn.Module:
    """LPIPS(AlexNet) from the prepared trunk file, for the perceptual term."""
    from ..models.perceptual import build_lpips

    return build_lpips(torch.load(backbone_path, map_location="cpu", weights_only=True))


def build_vae(cfg: VaeTrainConfig, seed: int = 0):
    from ..models.tiny import tiny_vae

    return tiny_vae(block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
                    mid_block_add_attention=cfg.mid_block_add_attention, seed=seed)


def build_adversarial(cfg: VaeTrainConfig, seed: int = 0):
    """The discriminator term of ``cfg`` (None without one); it counts micro-batches."""
    if cfg.adversarial_weight <= 0:
        return None
    from ..utils.torch_state import seeded
    from .adversarial import AdversarialTerm, PatchDiscriminator

    with seeded(seed):
        disc = PatchDiscriminator(cfg.discriminator_channels)
    return AdversarialTerm(disc, cfg.adversarial_start * cfg.gradient_accumulation, cfg.adversarial_weight)


@torch.no_grad()
def fit_scaling_factor(vae, dataset: SegmentationDataset, num_images: int, batch_size: int = 32) -> float:
    """``1 / std`` of the posterior means of the first ``num_images`` images (SD's convention)."""
    from .data import ImageMaskSamples

    samples = ImageMaskSamples(dataset)
    vae = vae.eval()
    n = min(num_images, len(samples))
    device = next(vae.parameters()).device
    values = []
    for start in range(0, n, batch_size):
        x = torch.stack([samples[i]["pixel_values"] for i in range(start, min(n, start + batch_size))]).to(device)
        values.append(vae.encode(x).latent_dist.mean.double().flatten())
    return float(1.0 / torch.cat(values).std())
