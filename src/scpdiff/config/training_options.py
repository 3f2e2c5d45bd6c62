"""Checks of a toy benchmark's ``training:`` options that need no model, made when it is loaded.

A window or a layout that cannot work should stop ``scpdiff validate-config`` and the DAG before
any job starts, not the third training stage a quarter of an hour in. The trainers make the same
checks against the models they load (:mod:`scpdiff.training.stages`).
"""

from __future__ import annotations

from ..errors import ConfigError


def check_crop(source: str, stage: str, crop, factor: int, resolution: tuple[int, int]) -> None:
    """``training.<stage>.crop``: ``[h, w]``, positive multiples of the latent factor within the resolution."""
    h, w = resolution
    ok = (isinstance(crop, (list, tuple)) and len(crop) == 2
          and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 and c % factor == 0 for c in crop)
          and crop[0] <= h and crop[1] <= w)
    if not ok:
        raise ConfigError(f"{source}: training.{stage}.crop {crop!r} must be [h, w], positive multiples of "
                          f"the VAE's latent factor {factor}, at most the resolution {h}x{w}")


def check_levels_without_attention(source: str, levels_without_attention, levels: int) -> None:
    """``training.base.levels_without_attention``: the UNet keeps at least one attending level."""
    if not (isinstance(levels_without_attention, int) and 1 <= levels_without_attention < levels):
        raise ConfigError(f"{source}: training.base.levels_without_attention must be between 1 and {levels - 1} for "
                          f"{levels} levels (block_out_channels), got {levels_without_attention!r}")


def check_hint_factor(source: str, hint_channels, factor: int) -> None:
    """The ControlNet's conditioning embedding brings a mask at image resolution to the latents':
    ``len(hint_channels) - 1`` downsamplings (diffusers' default: 4 entries) for the VAE's factor."""
    hint_factor = 2 ** (len(hint_channels or (16, 32, 96, 256)) - 1)
    if hint_factor != factor:
        raise ConfigError(
            f"{source}: training.controlnet.conditioning_embedding_out_channels downsamples the "
            f"mask {hint_factor}x but the VAE's latents are {factor}x smaller than the image "
            f"(give it {factor.bit_length()} entries)"
        )


def check_training_options(bench, source: str) -> None:
    """The checks above for every stage a toy benchmark configures (real benchmarks: nothing here)."""
    if not bench.is_toy:
        return
    stages = {name: opts for name, opts in (bench.get("training") or {}).items() if isinstance(opts, dict)}
    factor = bench.latent_factor
    for stage in ("vae", "base", "controlnet"):
        crop = stages.get(stage, {}).get("crop")
        if crop is not None:
            check_crop(source, stage, crop, factor, bench.resolution)
    base = stages.get("base", {})
    if "levels_without_attention" in base and base.get("block_out_channels"):
        check_levels_without_attention(source, base["levels_without_attention"], len(base["block_out_channels"]))
    controlnet = stages.get("controlnet", {})
    if controlnet.get("conditioning_embedding_out_channels"):
        check_hint_factor(source, controlnet["conditioning_embedding_out_channels"], factor)
