"""The adversarial term of latent-diffusion autoencoders: a small patch discriminator and hinge losses.

LDM trains its first stage (Rombach et al. 2022, sec. 3 and App. G; taming-transformers'
``LPIPSWithDiscriminator``) with ``L_rec + w_p LPIPS + lambda * L_G + L_D`` once a start step
is passed: a PatchGAN discriminator ``D`` scores overlapping patches of real and reconstructed
images, ``L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))`` (hinge), the decoder gets
``L_G = -mean(D(x_hat))``, and ``lambda = ||grad L_rec|| / ||grad L_G||`` at the decoder's last
layer (clamped, times ``weight``) keeps the adversarial gradient on the scale of the
reconstruction's. Pixel and perceptual losses alone leave textures blurred, which FID punishes.

:class:`AdversarialTerm` returns both losses as one sum whose gradient reaches each side only
through its own term: ``L_G`` is computed with detached discriminator weights, ``L_D`` on a
detached reconstruction, so the training loop's single optimiser step updates the autoencoder
by ``lambda L_G`` and the discriminator by ``L_D``. It counts its own calls in a buffer (saved with
the checkpoint, so a resumed run starts the term at the same step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """pix2pix's N-layer PatchGAN (LDM's ``NLayerDiscriminator``), scaled down: 4x4 convolutions,
    stride 2 for ``layers`` levels, GroupNorm instead of BatchNorm (no running statistics that the
    detached pass would update), one logit per patch."""

    def __init__(self, channels: int = 32, layers: int = 2, in_channels: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for i in range(1, layers + 1):
            out = channels * min(2**i, 8)
            mods += [nn.Conv2d(c, out, 4, 2 if i < layers else 1, 1), nn.GroupNorm(min(32, out // 4), out), nn.LeakyReLU(0.2)]
            c = out
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


class AdversarialTerm(nn.Module):
    """``forward(real, fake, rec_loss, last_layer) -> lambda * L_G + L_D`` (0 before ``start``).

    ``rec_loss``/``last_layer``: the reconstruction loss and the decoder's last weight, for the
    adaptive ``lambda`` of the module doc; ``start``: calls (micro-batches) before the term starts.
    """

    def __init__(self, discriminator: nn.Module, start: int, weight: float = 0.5, max_lambda: float = 1e4):
        super().__init__()
        self.discriminator = discriminator
        self.start = int(start)
        self.weight = float(weight)
        self.max_lambda = float(max_lambda)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def frozen_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``D(x)`` with the discriminator's weights detached: gradients reach ``x`` only."""
        params = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return torch.func.functional_call(self.discriminator, params, (x,))

    def adaptive_lambda(self, rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
        rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        lam = rec_grad.norm() / (g_grad.norm() + 1e-4)
        return self.weight * lam.clamp(0.0, self.max_lambda).detach()

    def forward(self, real: torch.Tensor, fake: torch.Tensor, rec_loss: torch.Tensor, last_layer: torch.Tensor):
        if self.training:
            self.calls += 1
        if int(self.calls) <= self.start:
            return fake.new_zeros(())
        real, fake = real.float(), fake.float()
        g_loss = generator_loss(self.frozen_logits(fake))
        lam = self.adaptive_lambda(rec_loss, g_loss, last_layer) if torch.is_grad_enabled() else self.weight
        d_loss = hinge_discriminator_loss(self.discriminator(real), self.discriminator(fake.detach()))
        return lam * g_loss + d_loss
