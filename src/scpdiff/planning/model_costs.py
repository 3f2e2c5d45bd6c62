"""FLOPs of one unit of work for a benchmark's models: a UNet + ControlNet evaluation, a VAE
decode / encode, an Inception pass.

Real benchmarks run SD 2.1(-base) + ControlNet (paper, App. A): their configs
(:mod:`scpdiff.models.sd_configs`; SD 2.1 and 2.1-base have the same layers, hence the same FLOPs)
are built on the ``meta`` device at the benchmark's resolution and counted with
``torch.utils.flop_counter`` (:mod:`scpdiff.models.flops`). The toy benchmarks' tiny models are
built from their training configs (``training.base``, ``training.vae``, ``training.controlnet`` with
the trainers' defaults) exactly as the training stages build them, and counted the same way.
The Inception network of FID/KID is not built here: its cost is the stated per-pass figure below.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# Inception-v3 at 299x299: 5.7 G multiply-adds per image (Szegedy et al. 2016, "Rethinking the
# Inception Architecture", section 10: "5 billion multiply-adds"; 5.71 G in torchvision's model
# table), i.e. ~11.4 GFLOP at 2 FLOPs per multiply-add. A stated figure, not counted here.
INCEPTION_FLOPS = 11.4e9


@dataclass(frozen=True)
class ModelCosts:
    """FLOPs per unit of work of one benchmark's models, and how they were obtained."""

    denoiser_step: int  # one UNet + ControlNet evaluation of one latent
    vae_decode: int  # one latent -> image
    vae_encode: int  # one image -> latent
    inception: float  # one Inception pass (stated)
    source: str


@functools.lru_cache(maxsize=None)
def _sd_costs(configs: str, height: int, width: int) -> ModelCosts:
    from ..models.flops import denoiser_step_flops, vae_decode_flops, vae_encode_flops

    return ModelCosts(
        denoiser_step=denoiser_step_flops(configs, height, width),
        vae_decode=vae_decode_flops(configs, height, width),
        vae_encode=vae_encode_flops(configs, height, width),
        inception=INCEPTION_FLOPS,
        source=f"{configs} configs on the meta device at {height}x{width} (torch.utils.flop_counter)",
    )


def _toy_costs(bench) -> ModelCosts:
    import torch

    from ..models.controlnet import controlnet_from_unet
    from ..models.flops import controlled_unet_flops, count_flops
    from ..models.tiny import tiny_unet, tiny_vae
    from ..training.base import BaseTrainConfig
    from ..training.controlnet import ControlNetTrainConfig
    from ..training.stages import stage_config
    from ..training.vae import VaeTrainConfig

    base = stage_config(bench, "base", BaseTrainConfig)
    vae_cfg = stage_config(bench, "vae", VaeTrainConfig)
    cn_cfg = stage_config(bench, "controlnet", ControlNetTrainConfig)
    c, h, w = bench.latent_shape
    height, width = bench.resolution
    # the builders the training stages call (scpdiff.training.stages), with the same arguments
    unet = tiny_unet(sample_size=(h, w), block_out_channels=tuple(base.block_out_channels),
                     cross_attention_dim=base.text_hidden_size, layers_per_block=base.layers_per_block,
                     attention_head_dim=base.attention_head_dim)
    controlnet = controlnet_from_unet(unet, cn_cfg.conditioning_embedding_out_channels)
    vae = tiny_vae(block_out_channels=tuple(vae_cfg.block_out_channels), layers_per_block=vae_cfg.layers_per_block)
    step = controlled_unet_flops(unet, controlnet, (c, h, w), (height, width), base.text_hidden_size, device="cpu")
    decode = count_flops(lambda: vae.decode(torch.zeros(1, c, h, w)))
    encode = count_flops(lambda: vae.encode(torch.zeros(1, 3, height, width)))
    return ModelCosts(step, decode, encode, INCEPTION_FLOPS,
                      f"the toy's tiny models from its training configs at {height}x{width} (torch.utils.flop_counter)")


def model_costs(bench) -> ModelCosts:
    """FLOPs per unit of work of ``bench``'s models (module doc)."""
    height, width = bench.resolution
    if bench.is_toy:
        return _toy_costs(bench)
    return _sd_costs("sd21-base", int(height), int(width))
