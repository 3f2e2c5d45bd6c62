"""Loading a base Stable-Diffusion folder's parts for training, and the fixed prompt's embedding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import ConfigError
from ..models.paths import resolve_base_model


def base_scheduler_config(base_dir: str | os.PathLike) -> dict:
    path = Path(base_dir) / "scheduler" / "scheduler_config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the scheduler config ({exc})") from None


def load_base_components(base_dir: str | os.PathLike) -> dict:
    """``unet, vae, text_encoder, tokenizer`` (float32, eval mode) and ``scheduler_config`` of a base folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = resolve_base_model(base_dir)
    return {
        "unet": UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=torch.float32).eval(),
        "vae": AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32).eval(),
        "text_encoder": CLIPTextModel.from_pretrained(base, subfolder="text_encoder", torch_dtype=torch.float32).eval(),
        "tokenizer": CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        "scheduler_config": base_scheduler_config(base),
    }


@torch.no_grad()
def prompt_embedding(tokenizer, text_encoder, prompt: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """The text encoder's last hidden states for ``prompt`` padded to the model length: ``[1, L, D]``."""
    ids = tokenizer(
        [prompt], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return text_encoder(ids.to(device))[0].float()


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    module.requires_grad_(False)
    return module.eval()
