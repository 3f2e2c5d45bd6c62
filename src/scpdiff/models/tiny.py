"""Tiny, randomly initialised Stable-Diffusion components built from configs (no downloads).

They have the same classes and interfaces as SD 2.1's (CLIP tokenizer and text encoder,
``UNet2DConditionModel``, ``AutoencoderKL`` with a latent factor of 8 by default, ``ControlNetModel``), so
every code path of scpdiff runs on them: the tests use them as they are, and the toy benchmark
trains the same builders (somewhat larger) as its VAE and base model.

    tok = tiny_tokenizer()
    text = tiny_text_encoder(tok.vocab_size, bos_token_id=tok.bos_token_id, ...)
    unet = tiny_unet(sample_size=(8, 16))
    vae = tiny_vae()
    controlnet = tiny_controlnet(unet)
    save_tiny_base("work/base")        # a folder StableDiffusionPipeline.from_pretrained loads offline
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from ..utils.files import atomic_dir
from ..utils.torch_state import seeded
from .controlnet import controlnet_from_unet
from .sd_configs import sd_scheduler_config
from .tokenizer import tiny_tokenizer


def _groups(channels: Sequence[int], limit: int = 32) -> int:
    """The largest GroupNorm group count <= ``limit`` dividing every channel count."""
    g = 0
    for c in channels:
        g = math.gcd(g, int(c))
    return max(d for d in range(1, min(g, limit) + 1) if g % d == 0)


def tiny_text_encoder(
    vocab_size: int,
    hidden_size: int = 32,
    intermediate_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    max_position_embeddings: int = 77,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    seed: int = 0,
):
    """A :class:`~transformers.CLIPTextModel`; its ``hidden_size`` is the UNet's cross-attention dim.

    Token ids default to those of :func:`tiny_tokenizer` (start/end-of-text are the last two ids).
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    bos = vocab_size - 2 if bos_token_id is None else bos_token_id
    eos = vocab_size - 1 if eos_token_id is None else eos_token_id
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos if pad_token_id is None else pad_token_id,
        projection_dim=hidden_size,
    )
    with seeded(seed):
        return CLIPTextModel(config).eval()


def tiny_unet(
    sample_size: int | tuple[int, int] = (8, 16),
    block_out_channels: Sequence[int] = (32, 64),
    cross_attention_dim: int = 32,
    layers_per_block: int = 1,
    attention_head_dim: int = 8,
    in_channels: int = 4,
    norm_num_groups: int | None = None,
    levels_without_attention: int = 1,
    seed: int = 0,
):
    """A :class:`~diffusers.UNet2DConditionModel` with SD's block layout, scaled down.

    The first ``levels_without_attention`` levels (SD: 1) have no attention (``DownBlock2D``); the
    deeper levels self- and cross-attend (to the text encoder's states). A latent grid finer than
    SD's (a VAE with a smaller factor) puts more positions at every level, and self-attention's
    cost grows with their square: one more level without it keeps the attended grids at SD's size.
    ``sample_size`` is in latent pixels ([H/f, W/f] for the VAE's factor f).
    """
    from diffusers import UNet2DConditionModel

    n = len(block_out_channels)
    if not 1 <= levels_without_attention < n:
        raise ValueError(f"levels_without_attention must be in [1, {n - 1}] for {n} levels, got {levels_without_attention}")
    plain, attending = levels_without_attention, n - levels_without_attention
    down = ("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * attending
    up = ("CrossAttnUpBlock2D",) * attending + ("UpBlock2D",) * plain
    with seeded(seed):
        return UNet2DConditionModel(
            sample_size=list(sample_size) if isinstance(sample_size, (tuple, list)) else sample_size,
            in_channels=in_channels,
            out_channels=in_channels,
            down_block_types=down,
            up_block_types=up,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim,
            norm_num_groups=norm_num_groups or _groups(block_out_channels),
        ).eval()


def tiny_vae(
    block_out_channels: Sequence[int] = (8, 16, 16, 16),
    latent_channels: int = 4,
    layers_per_block: int = 1,
    norm_num_groups: int | None = None,
    scaling_factor: float = 0.18215,
    sample_size: int = 64,
    mid_block_add_attention: bool = True,
    seed: int = 0,
):
    """An :class:`~diffusers.AutoencoderKL`; ``len(block_out_channels) - 1`` downsamplings (4 -> 8x).

    ``mid_block_add_attention=False`` drops the self-attention of the encoder's and decoder's middle
    blocks: then only GroupNorm's statistics span the whole input, so a VAE trained on windows meets
    whole images with nothing new but more positions in those averages (self-attention over 4x the
    positions it was trained on is not).
    """
    from diffusers import AutoencoderKL

    n = len(block_out_channels)
    with seeded(seed):
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups or _groups(block_out_channels),
            scaling_factor=scaling_factor,
            sample_size=sample_size,
            mid_block_add_attention=mid_block_add_attention,
        ).eval()


def tiny_controlnet(unet, conditioning_embedding_out_channels: Sequence[int] = (8, 16, 16, 16), seed: int = 0):
    """A :class:`~diffusers.ControlNetModel` copied from ``unet``'s encoder (zero convolutions at 0).

    The conditioning embedding downsamples ``len(conditioning_embedding_out_channels) - 1`` times:
    4 levels (factor 8) so that a mask at image resolution meets the latent resolution of the
    default :func:`tiny_vae`; a VAE with another factor needs as many levels as it has.
    ``seed`` seeds the conditioning embedding's initialisation.
    """
    return controlnet_from_unet(unet, conditioning_embedding_out_channels, seed=seed).eval()


def tiny_pipeline_components(
    sample_size: tuple[int, int] = (8, 16),
    unet_channels: Sequence[int] = (32, 64),
    vae_channels: Sequence[int] = (8, 16, 16, 16),
    text_hidden_size: int = 32,
    prediction_type: str = "epsilon",
    seed: int = 0,
) -> dict:
    """The components of a tiny SD pipeline (``vae, text_encoder, tokenizer, unet, scheduler``)."""
    from diffusers import DDIMScheduler

    tokenizer = tiny_tokenizer()
    text_encoder = tiny_text_encoder(
        len(tokenizer),
        hidden_size=text_hidden_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=seed,
    )
    return {
        "vae": tiny_vae(vae_channels, seed=seed + 1),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "unet": tiny_unet(sample_size, unet_channels, cross_attention_dim=text_hidden_size, seed=seed + 2),
        "scheduler": DDIMScheduler(**sd_scheduler_config(prediction_type)),
    }


def save_base(path: str | os.PathLike, vae, text_encoder, tokenizer, unet, scheduler) -> Path:
    """Write the components as a diffusers Stable-Diffusion folder (atomically)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    path = Path(path)
    with atomic_dir(path) as tmp:
        pipe.save_pretrained(tmp)
    return path


def save_tiny_base(path: str | os.PathLike, **kwargs) -> Path:
    """A complete tiny SD folder (unet/ vae/ text_encoder/ tokenizer/ scheduler/ model_index.json).

    ``kwargs`` go to :func:`tiny_pipeline_components`.
    """
    return save_base(path, **tiny_pipeline_components(**kwargs))
