"""Fine-tuning a ControlNet on (image, mask, fixed prompt) triples, from a pretrained base UNet.

Following the paper (section 5.1: batch 16, lr 1e-5, 100k steps, "the decoder in the original
Stable Diffusion branch is also unlocked") and the original ControlNet code's ``sd_locked=False``
(which adds the UNet's ``output_blocks`` and ``out`` to the optimised parameters), the ControlNet
is trained together with the UNet decoder (``up_blocks``, ``conv_norm_out``, ``conv_out``) when
``unlock_decoder`` is set; the UNet encoder and middle block, the VAE and the text encoder stay
frozen. The objective (epsilon or v) is the one the base model's scheduler declares.
The mask condition is the palette rendering of :func:`scpdiff.models.conditioning.encode_mask`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.conditioning import encode_mask
from .components import freeze, prompt_embedding
from .diffusion import LatentSource, diffusion_loss, training_scheduler
from .loop import LoopConfig
from .windows import latent_window


@dataclass
class ControlNetTrainConfig(LoopConfig):
    steps: int = 100_000
    batch_size: int = 16
    lr: float = 1e-5
    checkpoint_every: int = 500
    unlock_decoder: bool = True
    prompt_dropout: float = 0.0  # probability of training a sample on the empty prompt
    gradient_checkpointing: bool = False
    conditioning_embedding_out_channels: list[int] | None = None  # None: diffusers' (16, 32, 96, 256)
    cache_latents: bool = False  # encode the training set once (fits memory for the toy)
    crop: list[int] | None = None  # [h, w] image pixels: one random window of latents and conditions per batch


def decoder_modules(unet) -> list[torch.nn.Module]:
    """The UNet decoder that ``sd_locked=False`` unlocks (ControlNet's ``output_blocks`` + ``out``)."""
    return [m for m in (unet.up_blocks, unet.conv_norm_out, unet.conv_out) if m is not None]


class ControlledUNet(torch.nn.Module):
    """The base UNet with the ControlNet residuals added: ``forward(x_t, t, context, cond) -> prediction``."""

    def __init__(self, controlnet, unet):
        super().__init__()
        self.controlnet = controlnet
        self.unet = unet

    def forward(self, sample, timestep, context, cond):
        down, mid = self.controlnet(sample, timestep, encoder_hidden_states=context, controlnet_cond=cond, return_dict=False)
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample


class ControlNetTask:
    def __init__(
        self,
        controlnet,
        unet,
        vae,
        text_encoder,
        tokenizer,
        prompt: str,
        scheduler_config: dict,
        palette,
        ignore_index: int = 255,
        unlock_decoder: bool = True,
        prompt_dropout: float = 0.0,
        gradient_checkpointing: bool = False,
        cache_dataset=None,
        condition_source=None,
        crop: tuple[int, int] | None = None,
        latent_factor: int = 8,
    ):
        unet.requires_grad_(False)
        if unlock_decoder:
            for m in decoder_modules(unet):
                m.requires_grad_(True)
        controlnet.requires_grad_(True)
        if gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            controlnet.enable_gradient_checkpointing()
        self.model = ControlledUNet(controlnet, unet)
        self.latents = LatentSource(freeze(vae), cache_dataset)
        self.text_encoder = freeze(text_encoder)
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.scheduler = training_scheduler(scheduler_config)
        self.palette = palette
        self.ignore_index = ignore_index
        # indices -> [B, 3, H, W] conditions, where they are not the resized masks colour-coded
        # (protocol condition_resize: bilinear_antialias; scpdiff.models.conditioning)
        self.condition_source = condition_source
        self.crop, self.latent_factor = (tuple(crop) if crop else None), latent_factor
        self.unlock_decoder = unlock_decoder
        self.prompt_dropout = prompt_dropout
        self.contexts: torch.Tensor | None = None

    def trainable(self) -> torch.nn.Module:
        return self.model

    def setup(self, device, weight_dtype) -> None:
        self.latents.setup(device, weight_dtype)
        self.text_encoder.to(device)
        # row 0: the fixed prompt; row 1: the empty prompt (for prompt dropout)
        self.contexts = torch.cat(
            [prompt_embedding(self.tokenizer, self.text_encoder, p, device) for p in (self.prompt, "")]
        )

    def loss(self, model, batch, generator) -> torch.Tensor:
        latents = self.latents(batch, generator)
        if self.condition_source is not None:
            cond = self.condition_source(batch["index"].tolist()).to(latents.device)
        else:
            cond = encode_mask(batch["mask"], self.palette, self.ignore_index).to(latents.device)
        latents, cond = latent_window(latents, self.crop, self.latent_factor, generator, images=cond)
        b = latents.shape[0]
        if self.prompt_dropout > 0:
            drop = torch.rand(b, generator=generator, device=generator.device) < self.prompt_dropout
            context = self.contexts[drop.long().to(self.contexts.device)]
        else:
            context = self.contexts[:1].expand(b, -1, -1)
        return diffusion_loss(lambda x, t: model(x, t, context, cond), latents, self.scheduler, generator)


def save_finetuned(path: str | os.PathLike, model: ControlledUNet, unlock_decoder: bool, extra_files: dict[str, str] | None = None) -> Path:
    """The fine-tuned folder: ``controlnet/`` and, when the decoder was trained, ``unet/`` (atomically)."""
    from ..utils.files import atomic_dir

    path = Path(path)
    with atomic_dir(path) as tmp:
        model.controlnet.save_pretrained(tmp / "controlnet")
        if unlock_decoder:
            model.unet.save_pretrained(tmp / "unet")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return path
