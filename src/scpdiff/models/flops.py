"""FLOPs of the generation models, counted with ``torch.utils.flop_counter`` (nothing timed).

FLOPs are 2 per multiply-add of the matmuls, convolutions and attention that
:class:`~torch.utils.flop_counter.FlopCounterMode` sees; normalisations, activations and the
scheduler are not counted (bandwidth-bound and small). On the ``meta`` device nothing is
allocated, so SD 2.1's 866 M-parameter UNet is counted in seconds on a laptop:

    step = denoiser_step_flops("sd21-base", 512, 512)     # one UNet + ControlNet evaluation, ~1.09e12
    decode = vae_decode_flops("sd21-base", 512, 512)      # one latent to pixels, ~2.5e12

Used by ``tools/speed/generate.py`` (FLOP limit of a measured row) and ``scpdiff plan``.
"""

from __future__ import annotations

from typing import Callable

import torch


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of the matmuls, convolutions and attention run by ``fn()``.

    Attention is forced through the math SDPA kernel, whose matmuls ``FlopCounterMode`` counts on
    every device (the CPU flash kernel has no FLOP formula); the count is the same for all kernels.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def controlled_unet_flops(unet, controlnet, latent_shape, image_size, cross_attention_dim: int,
                          batch: int = 1, tokens: int = 77, device: str | torch.device = "meta") -> int:
    """FLOPs of one ControlNet + UNet evaluation of ``batch`` latents ``[C, h, w]`` (one denoising
    step without guidance; classifier-free guidance evaluates two latents per image)."""
    height, width = image_size
    x = torch.zeros(batch, *latent_shape, device=device)
    t = torch.full((batch,), 500, device=device, dtype=torch.long)
    text = torch.zeros(batch, tokens, cross_attention_dim, device=device)
    cond = torch.zeros(batch, 3, height, width, device=device)

    def step():
        down, mid = controlnet(x, t, text, controlnet_cond=cond, return_dict=False)
        unet(x, t, text, down_block_additional_residuals=down, mid_block_additional_residual=mid)

    return count_flops(step)


def denoiser_step_flops(configs, height: int, width: int, batch: int = 1, device: str = "meta") -> int:
    """FLOPs of one ControlNet + UNet evaluation (one denoising step) for ``batch`` latents of the
    named Stable Diffusion configs (:mod:`scpdiff.models.sd_configs`)."""
    from . import sd_configs

    configs = sd_configs.get_configs(configs)
    unet = sd_configs.build_unet(configs, device=device, seed=None)
    controlnet = sd_configs.build_controlnet(configs, device=device, seed=None)
    return controlled_unet_flops(unet, controlnet, configs.latent_shape(height, width), (height, width),
                                 configs.cross_attention_dim, batch=batch, device=device)


def vae_decode_flops(configs, height: int, width: int, device: str = "meta") -> int:
    """FLOPs of decoding one latent to an ``height`` x ``width`` image."""
    from . import sd_configs

    configs = sd_configs.get_configs(configs)
    vae = sd_configs.build_vae(configs, device=device, seed=None)
    z = torch.zeros(1, *configs.latent_shape(height, width), device=device)
    return count_flops(lambda: vae.decode(z))


def vae_encode_flops(configs, height: int, width: int, device: str = "meta") -> int:
    """FLOPs of encoding one ``height`` x ``width`` image to its latent (the prior's reference set)."""
    from . import sd_configs

    configs = sd_configs.get_configs(configs)
    vae = sd_configs.build_vae(configs, device=device, seed=None)
    x = torch.zeros(1, 3, height, width, device=device)
    return count_flops(lambda: vae.encode(x))
