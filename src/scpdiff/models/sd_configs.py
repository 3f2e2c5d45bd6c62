"""Stable Diffusion 2.1 architectures as data: UNet, ControlNet, VAE, text encoder and scheduler configs.

SCP-Diff initialises ControlNet's Stable-Diffusion branch from SD 2.1 (paper, App. A). The configs
below are the published ``stabilityai/stable-diffusion-2-1`` (768 px, v-prediction) and
``stable-diffusion-2-1-base`` (512 px, epsilon) model configs, written out so that models of the
exact size (and therefore the exact FLOPs) can be built with random weights and no download: the
speed benchmark (``tools/speed/generate.py``) times them, and the tests count their parameters
on the meta device.

    configs = get_configs("sd21")
    unet = build_unet(configs, device="meta")          # 865,910,724 parameters, nothing allocated
    pipe = build_pipeline(configs, device="cuda", dtype=torch.bfloat16)   # random weights

``sd21-tiny`` has the same block layout at toy width, for CPU smoke runs.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import torch

from ..errors import ConfigError
from ..utils.torch_state import seeded
from .tokenizer import tiny_tokenizer

_SD21_UNET: dict[str, Any] = {
    "sample_size": 96,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    # SD 2.x's UNet config calls the number of heads per level "attention_head_dim" (64-dim heads)
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
    "upcast_attention": True,
    "dual_cross_attention": False,
    "only_cross_attention": False,
}

# The VAE is SD 1.x/2.x's KL-f8 autoencoder.
_SD21_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}

# OpenCLIP ViT-H/14's text tower as a CLIPTextModel (penultimate layer: 23 of 24 layers kept).
_SD21_TEXT_ENCODER: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}

def sd_scheduler_config(prediction_type: str = "epsilon") -> dict:
    """Stable Diffusion's noise schedule (``scaled_linear`` betas 0.00085..0.012 over 1000 steps),
    shared by SD 2.1 and the toy models: the paper's effect comes from this schedule's leaked
    signal at t = T."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "prediction_type": prediction_type,
    }


# ControlNet copies the UNet's encoder and middle block; the keys are the UNet's that
# ControlNetModel shares, plus its hint encoder (a 4-level conv stack from 512 px to 64 latent px).
_CONTROLNET_SHARED_KEYS = (
    "in_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "down_block_types",
    "only_cross_attention",
    "block_out_channels",
    "layers_per_block",
    "downsample_padding",
    "mid_block_scale_factor",
    "act_fn",
    "norm_num_groups",
    "norm_eps",
    "cross_attention_dim",
    "attention_head_dim",
    "use_linear_projection",
    "upcast_attention",
)


def _controlnet_config(unet: Mapping[str, Any], hint_channels: list[int]) -> dict[str, Any]:
    cfg = {k: copy.deepcopy(unet[k]) for k in _CONTROLNET_SHARED_KEYS}
    cfg.update(
        conditioning_channels=3,
        controlnet_conditioning_channel_order="rgb",
        conditioning_embedding_out_channels=hint_channels,
        global_pool_conditions=False,
    )
    return cfg


@dataclass(frozen=True)
class StableDiffusionConfigs:
    """The component configs of one Stable Diffusion + ControlNet model family."""

    name: str
    unet: Mapping[str, Any]
    controlnet: Mapping[str, Any]
    vae: Mapping[str, Any]
    text_encoder: Mapping[str, Any]
    scheduler: Mapping[str, Any]
    resolution: int  # the native (training) image side in pixels
    description: str = ""
    expected_parameters: Mapping[str, int] = field(default_factory=dict)

    @property
    def prediction_type(self) -> str:
        return self.scheduler["prediction_type"]

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae["latent_channels"])

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of the latent of an ``height`` x ``width`` image; sides must divide by the VAE factor."""
        f = self.vae_scale_factor
        if height % f or width % f:
            raise ConfigError(f"{self.name}: image size {height}x{width} is not a multiple of the VAE factor {f}")
        return (self.latent_channels, height // f, width // f)


def _sd21(name: str, base: bool) -> StableDiffusionConfigs:
    unet = copy.deepcopy(_SD21_UNET)
    vae = copy.deepcopy(_SD21_VAE)
    scheduler = sd_scheduler_config("epsilon" if base else "v_prediction")
    if base:
        # 2.1-base is trained at 512 px and runs attention without fp32 upcasting
        unet.update(sample_size=64, upcast_attention=False)
        vae.update(sample_size=512)
    return StableDiffusionConfigs(
        name=name,
        unet=unet,
        controlnet=_controlnet_config(unet, [16, 32, 96, 256]),
        vae=vae,
        text_encoder=copy.deepcopy(_SD21_TEXT_ENCODER),
        scheduler=scheduler,
        resolution=512 if base else 768,
        description=(
            "Stable Diffusion 2.1-base (512 px, epsilon prediction)"
            if base
            else "Stable Diffusion 2.1 (768 px, v-prediction)"
        ),
        expected_parameters={"unet": 865_910_724, "controlnet": 364_228_240, "vae": 83_653_863, "text_encoder": 340_387_840},
    )


def _sd21_tiny() -> StableDiffusionConfigs:
    """SD 2.1's block layout (linear projections, cross-attention in the first levels) at toy width."""
    unet = copy.deepcopy(_SD21_UNET)
    unet.update(
        sample_size=8,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        block_out_channels=[32, 64],
        layers_per_block=1,
        attention_head_dim=[2, 4],
        cross_attention_dim=32,
        norm_num_groups=8,
        upcast_attention=False,
    )
    vae = copy.deepcopy(_SD21_VAE)
    vae.update(block_out_channels=[8, 16, 16, 16], layers_per_block=1, norm_num_groups=8, sample_size=64)
    text = dict(_SD21_TEXT_ENCODER, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
    return StableDiffusionConfigs(
        name="sd21-tiny",
        unet=unet,
        controlnet=_controlnet_config(unet, [8, 16, 16, 16]),
        vae=vae,
        text_encoder=text,
        scheduler=sd_scheduler_config("v_prediction"),
        resolution=64,
        description="SD 2.1's layout at toy width (CPU smoke runs of the speed benchmark)",
    )


CONFIGS: dict[str, StableDiffusionConfigs] = {
    "sd21": _sd21("sd21", base=False),
    "sd21-base": _sd21("sd21-base", base=True),
    "sd21-tiny": _sd21_tiny(),
}


def get_configs(name: str | StableDiffusionConfigs) -> StableDiffusionConfigs:
    """The configs registered as ``name`` (``sd21``, ``sd21-base``, ``sd21-tiny``)."""
    if isinstance(name, StableDiffusionConfigs):
        return name
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown Stable Diffusion config {name!r}; known: {', '.join(CONFIGS)}") from None


@contextlib.contextmanager
def _init_context(device: str | torch.device | None, seed: int | None) -> Iterator[None]:
    """Build on ``device`` directly (no CPU copy of SD-size weights; 'meta' allocates nothing)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(seeded(seed, device))
        if device is not None:
            stack.enter_context(torch.device(device))
        yield


def _finish(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    model.requires_grad_(False).eval()
    return model.to(dtype=dtype) if dtype is not None else model


def build_unet(configs, device=None, dtype: torch.dtype | None = None, seed: int | None = 0):
    """A randomly initialised :class:`~diffusers.UNet2DConditionModel` of ``configs``' architecture."""
    from diffusers import UNet2DConditionModel

    configs = get_configs(configs)
    with _init_context(device, seed):
        return _finish(UNet2DConditionModel(**copy.deepcopy(dict(configs.unet))), dtype)


def build_controlnet(configs, device=None, dtype: torch.dtype | None = None, seed: int | None = 1):
    """A randomly initialised :class:`~diffusers.ControlNetModel` (its zero convolutions at 0)."""
    from diffusers import ControlNetModel

    configs = get_configs(configs)
    with _init_context(device, seed):
        return _finish(ControlNetModel(**copy.deepcopy(dict(configs.controlnet))), dtype)


def build_vae(configs, device=None, dtype: torch.dtype | None = None, seed: int | None = 2):
    """A randomly initialised :class:`~diffusers.AutoencoderKL`."""
    from diffusers import AutoencoderKL

    configs = get_configs(configs)
    with _init_context(device, seed):
        return _finish(AutoencoderKL(**copy.deepcopy(dict(configs.vae))), dtype)


def build_text_encoder(configs, device=None, dtype: torch.dtype | None = None, seed: int | None = 3, **overrides):
    """A randomly initialised :class:`~transformers.CLIPTextModel`; ``overrides`` change config fields
    (e.g. the token ids of the tokenizer it is paired with)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    configs = get_configs(configs)
    config = CLIPTextConfig(**dict(configs.text_encoder, **overrides))
    with _init_context(device, seed):
        return _finish(CLIPTextModel(config), dtype)


def build_scheduler(configs):
    """The DDIM scheduler SCP-Diff samples with, on SD's noise schedule."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(dict(get_configs(configs).scheduler))


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_pipeline(configs, device="cpu", dtype: torch.dtype | None = None, seed: int = 0):
    """A :class:`~diffusers.StableDiffusionControlNetPipeline` of random weights at SD 2.1 size.

    The tokenizer is scpdiff's byte-level tiny CLIP tokenizer (no vocabulary download); the text
    encoder has SD 2.1's size with that tokenizer's special-token ids, so prompts work end to end.
    """
    from diffusers import StableDiffusionControlNetPipeline

    configs = get_configs(configs)
    tokenizer = tiny_tokenizer()
    text_encoder = build_text_encoder(
        configs,
        device=device,
        dtype=dtype,
        seed=seed + 3,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    pipe = StableDiffusionControlNetPipeline(
        vae=build_vae(configs, device, dtype, seed + 2),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=build_unet(configs, device, dtype, seed),
        controlnet=build_controlnet(configs, device, dtype, seed + 1),
        scheduler=build_scheduler(configs),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
