"""Training the toy's base text-to-image model: a tiny ``UNet2DConditionModel`` on the toy VAE's
latents, conditioned on a tiny frozen CLIP text encoder's embedding of the benchmark's fixed prompt.

It plays the role SD 2.1 plays for the real benchmarks, so the toy ControlNet is fine-tuned from
a pretrained base as in the paper (section 3.1). The noise schedule is SD's (``scaled_linear``,
1000 steps): the paper's effect comes from the signal this schedule leaks at ``t = T``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .components import freeze, prompt_embedding
from .diffusion import LatentSource, diffusion_loss, training_scheduler
from .loop import LoopConfig
from .windows import latent_window


@dataclass
class BaseTrainConfig(LoopConfig):
    steps: int = 1500
    batch_size: int = 32
    lr: float = 5e-4
    mixed_precision: str = "no"
    checkpoint_every: int = 250
    block_out_channels: list[int] = field(default_factory=lambda: [64, 128])
    layers_per_block: int = 1
    attention_head_dim: int = 8
    levels_without_attention: int = 1  # SD's UNet: the finest level only
    text_hidden_size: int = 32
    cache_latents: bool = True  # encode the training set once (frozen VAE)
    crop: list[int] | None = None  # [h, w] image pixels: train on one random latent window per batch


class BaseTask:
    """Denoising on VAE latents with the fixed prompt's embedding as cross-attention context."""

    def __init__(self, unet, vae, text_encoder, tokenizer, prompt: str, scheduler_config: dict, cache_dataset=None,
                 crop: tuple[int, int] | None = None, latent_factor: int = 8):
        self.unet = unet
        self.crop, self.latent_factor = (tuple(crop) if crop else None), latent_factor
        self.latents = LatentSource(freeze(vae), cache_dataset)
        self.text_encoder = freeze(text_encoder)
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.scheduler = training_scheduler(scheduler_config)
        self.context: torch.Tensor | None = None

    def trainable(self) -> torch.nn.Module:
        return self.unet

    def setup(self, device, weight_dtype) -> None:
        self.latents.setup(device, weight_dtype)
        self.text_encoder.to(device)
        self.context = prompt_embedding(self.tokenizer, self.text_encoder, self.prompt, device)

    def loss(self, model, batch, generator) -> torch.Tensor:
        latents, _ = latent_window(self.latents(batch, generator), self.crop, self.latent_factor, generator)
        context = self.context.expand(latents.shape[0], -1, -1)
        return diffusion_loss(lambda x, t: model(x, t, encoder_hidden_states=context).sample, latents, self.scheduler, generator)
