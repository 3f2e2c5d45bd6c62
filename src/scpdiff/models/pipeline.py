"""Loading the ControlNet pipeline from a base Stable-Diffusion folder and a fine-tuned folder.

    pipe = load_pipeline("work/toy/models/base", "work/toy/models/controlnet", device="cuda")

The base folder is a diffusers Stable-Diffusion folder (SD 2.1 on disk, or the toy base); the
fine-tuned folder holds ``controlnet/`` and, when the UNet decoder was unlocked during
fine-tuning (paper App. A), ``unet/``, which replaces the base UNet. Sampling always uses DDIM
(paper section 4.3) with the base model's noise schedule.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from .controlnet import controlnet_from_unet
from .paths import resolve_base_model

def default_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on CUDA devices that support it, else fp16 on CUDA; float32 on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_pipeline(
    base_dir: str | os.PathLike,
    finetuned_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
):
    """A :class:`~diffusers.StableDiffusionControlNetPipeline` with a :class:`~diffusers.DDIMScheduler`.

    ``finetuned_dir``: a folder with ``controlnet/`` (and optionally ``unet/``). Without it the
    ControlNet is a fresh copy of the UNet encoder (``ControlNetModel.from_unet``), whose zero
    convolutions make the pipeline exactly the base model: useful for smoke runs only.
    ``dtype``: default bf16/fp16 on CUDA, float32 on CPU. Attention runs through PyTorch's
    scaled-dot-product attention (diffusers' ``AttnProcessor2_0``).
    Everything is read offline (``local_files_only``); the safety checker is not part of SD 2.1.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    base = resolve_base_model(base_dir)
    dtype = dtype or default_dtype(device)
    try:
        pipe = _load(base, finetuned_dir, dtype)
    except InputError:
        raise
    except (OSError, ValueError) as exc:  # missing or malformed config/weight files
        raise InputError(f"cannot load the pipeline from {base} and {finetuned_dir}: {exc}") from exc
    pipe = pipe.to(device)
    if torch.device(device).type == "cuda":
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        pipe.controlnet.set_attn_processor(AttnProcessor2_0())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load(base: Path, finetuned_dir, dtype: torch.dtype):
    from diffusers import ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline, UNet2DConditionModel

    kwargs: dict = {}
    if finetuned_dir is not None:
        ft = Path(finetuned_dir)
        if not (ft / "controlnet").is_dir():
            raise InputError(f"{ft}: fine-tuned folder has no controlnet/ sub-folder")
        kwargs["controlnet"] = ControlNetModel.from_pretrained(ft / "controlnet", torch_dtype=dtype, local_files_only=True)
        if (ft / "unet").is_dir():
            kwargs["unet"] = UNet2DConditionModel.from_pretrained(ft / "unet", torch_dtype=dtype, local_files_only=True)
    else:
        unet = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=dtype, local_files_only=True)
        kwargs["unet"] = unet
        kwargs["controlnet"] = controlnet_from_unet(unet, seed=None).to(dtype)
    kwargs["scheduler"] = DDIMScheduler.from_pretrained(base / "scheduler", local_files_only=True)
    return StableDiffusionControlNetPipeline.from_pretrained(
        base,
        torch_dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=True,
        **kwargs,
    )
