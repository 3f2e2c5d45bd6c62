"""Importing an original ControlNet / latent-diffusion checkpoint (the authors' released models).

The official SCP-Diff toolkit (AIR-DISCOVER/SCP-Diff-Toolkit @ 859f671) trains and releases its
ControlNets in the original ControlNet format of ``models/cldm_v21.yaml``: one state dict (inside a
``.ckpt`` pickle under ``state_dict``, ``cldm/model.py:8-21``, or a ``.safetensors``) holding

- ``model.diffusion_model.*``: the SD 2.1-base UNet (its decoder fine-tuned, paper App. A),
- ``control_model.*``: the ControlNet,
- ``first_stage_model.*``: the KL-f8 VAE (``scale_factor`` 0.18215),
- ``cond_stage_model.model.*``: the OpenCLIP ViT-H text tower, read at its penultimate layer
  (``ldm/modules/encoders/modules.py:173-190``).

:func:`import_controlnet` turns it into one diffusers Stable-Diffusion folder with a
``controlnet/`` sub-folder, i.e. both the ``base`` and the fine-tuned folder of
:func:`scpdiff.models.load_pipeline`. The key conversion is diffusers' own
(``diffusers.loaders.single_file_utils``: ``convert_ldm_unet_checkpoint``,
``convert_controlnet_checkpoint``, ``convert_ldm_vae_checkpoint``, ``convert_open_clip_checkpoint``
and the ``create_*_diffusers_config_from_ldm`` config builders); everything is read from local
files (the original config, given or :data:`CLDM_V21`; tokenizer, text-encoder config and
scheduler config from the local SD 2.1-base folder).

    import_controlnet("released/cityscapes.ckpt", "models/sd21-base", "work/cs/models/released",
                      trust_pickle=True)
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..utils.files import atomic_dir

# The architecture of models/cldm_v21.yaml as data (only what the converters read): SD 2.1-base's
# UNet and its ControlNet copy, the KL-f8 VAE, and the schedule the model was trained on.
_SD21_LDM_UNET = {
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 2,
    "channel_mult": [1, 2, 4, 4],
    "num_head_channels": 64,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "transformer_depth": 1,
    "context_dim": 1024,
    "legacy": False,
}
CLDM_V21: dict[str, Any] = {
    "model": {
        "target": "cldm.cldm.ControlLDM",
        "params": {
            "linear_start": 0.00085,
            "linear_end": 0.012,
            "timesteps": 1000,
            "image_size": 64,
            "channels": 4,
            "scale_factor": 0.18215,
            "control_stage_config": {"params": dict(_SD21_LDM_UNET, hint_channels=3)},
            "unet_config": {"params": dict(_SD21_LDM_UNET)},
            "first_stage_config": {
                "params": {
                    "embed_dim": 4,
                    "ddconfig": {
                        "double_z": True,
                        "z_channels": 4,
                        "resolution": 256,
                        "in_channels": 3,
                        "out_ch": 3,
                        "ch": 128,
                        "ch_mult": [1, 2, 4, 4],
                        "num_res_blocks": 2,
                        "attn_resolutions": [],
                        "dropout": 0.0,
                    },
                }
            },
            "cond_stage_config": {"params": {"layer": "penultimate"}},
        },
    }
}

PREFIXES = {
    "unet": "model.diffusion_model.",
    "controlnet": "control_model.",
    "vae": "first_stage_model.",
    "text_encoder": "cond_stage_model.model.",
}
# OpenCLIP weights the penultimate-layer text encoder never uses
_UNUSED_TEXT_KEYS = ("text_projection.weight",)


def read_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> dict:
    """The state dict of an original checkpoint: ``.safetensors`` always, a pickled ``.ckpt``/``.pt``/
    ``.pth`` only with ``trust_pickle`` (unpickling runs code the file names). A Lightning checkpoint's
    ``state_dict`` is unwrapped as ``cldm/model.py:8-21`` does."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types
            raise InputError(f"{path}: not a readable safetensors file: {exc}") from exc
    if not trust_pickle:
        raise InputError(
            f"{path}: a pickled checkpoint can run arbitrary code when loaded; pass --trust-pickle if it comes "
            "from a source you trust (e.g. the authors' release page), or convert it to .safetensors"
        )
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    while isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise InputError(f"{path}: no state dict inside (expected a dict of tensors or one under 'state_dict')")
    return dict(obj)


def load_original_config(path: str | os.PathLike | None) -> dict:
    """The original (latent-diffusion) config: a local YAML such as ``models/cldm_v21.yaml``, or
    :data:`CLDM_V21` when ``path`` is None."""
    if path is None:
        return copy.deepcopy(CLDM_V21)
    import yaml

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
        config["model"]["params"]["unet_config"]["params"]
        config["model"]["params"]["control_stage_config"]["params"]
        config["model"]["params"]["first_stage_config"]["params"]["ddconfig"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a ControlNet original config (model.params.unet_config / control_stage_config / "
            f"first_stage_config.params.ddconfig): {exc}"
        ) from exc
    return config


def diffusers_configs(original_config: Mapping, text_encoder_config: Mapping | None = None) -> dict[str, dict]:
    """The diffusers configs of the UNet, ControlNet and VAE that ``original_config`` describes,
    from diffusers' own config builders."""
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm,
    )

    params = original_config["model"]["params"]
    vae_factor = 2 ** (len(params["first_stage_config"]["params"]["ddconfig"]["ch_mult"]) - 1)
    image_size = int(params.get("image_size", 64)) * vae_factor  # latent side x VAE factor
    # the builders' image_size argument is deprecated (their default guesses from the checkpoint);
    # the native size is the config's, set afterwards
    unet = create_unet_diffusers_config_from_ldm(original_config, {})
    unet["sample_size"] = image_size // vae_factor
    vae = create_vae_diffusers_config_from_ldm(original_config, {})
    vae["sample_size"] = image_size
    # diffusers' create_controlnet_diffusers_config_from_ldm (0.3x) calls the UNet builder without its
    # checkpoint argument; the ControlNet config is the UNet's encoder settings plus the hint channels,
    # exactly as that function composes it.
    controlnet = {
        k: unet[k]
        for k in (
            "in_channels",
            "down_block_types",
            "block_out_channels",
            "layers_per_block",
            "cross_attention_dim",
            "attention_head_dim",
            "use_linear_projection",
            "class_embed_type",
            "addition_embed_type",
            "addition_time_embed_dim",
            "projection_class_embeddings_input_dim",
            "transformer_layers_per_block",
        )
    }
    controlnet["conditioning_channels"] = params["control_stage_config"]["params"]["hint_channels"]
    return {"unet": unet, "controlnet": controlnet, "vae": vae}


def _check_state(component: str, model, converted: Mapping, where: str) -> None:
    """Refuse a converted state dict that does not fill ``model`` exactly, naming what differs."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if converted.get(k) is None)
    unexpected = sorted(k for k in converted if k not in expected)
    shapes = sorted(
        f"{k} {tuple(converted[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if converted.get(k) is not None and tuple(converted[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
            problems.append(f"{len(items)} {label} ({shown})")
    if problems:
        raise InputError(
            f"{where}: the {component} weights ({PREFIXES[component]}*) do not match the architecture of the "
            f"original config: {'; '.join(problems)} (diffusers names)"
        )


def _build(cls_or_factory, state: Mapping, component: str, where: str):
    """Instantiate without allocating random weights, check ``state`` against it, load it."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls_or_factory()
    _check_state(component, model, state, where)
    model.load_state_dict(dict(state), strict=True, assign=True)
    return model.eval()


def _text_encoder(state: Mapping, config_dir: Path, where: str):
    """The OpenCLIP text tower as a :class:`~transformers.CLIPTextModel` (penultimate layer)."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    prefix = PREFIXES["text_encoder"]
    try:
        config = CLIPTextConfig.from_pretrained(config_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_dir}: no readable text-encoder config.json: {exc}") from exc
    layers = {k[len(prefix + "transformer.resblocks.") :].split(".")[0] for k in state if k.startswith(prefix + "transformer.resblocks.")}
    n_layers = len(layers)
    # the official embedder stops one block short of the last (layer="penultimate",
    # ldm/modules/encoders/modules.py:182-190); that block's weights are never used
    last = f"{prefix}transformer.resblocks.{n_layers - 1}."
    kept = {k: v for k, v in state.items() if not k.startswith(last)}
    if n_layers - 1 != config.num_hidden_layers:
        raise InputError(
            f"{where}: the text encoder has {n_layers} OpenCLIP blocks, read at the penultimate one, but "
            f"{config_dir}/config.json has num_hidden_layers={config.num_hidden_layers} (expected {n_layers - 1})"
        )
    from accelerate import init_empty_weights

    with init_empty_weights():
        probe = CLIPTextModel(config)
    converted = convert_open_clip_checkpoint(probe, kept, prefix=prefix)
    if not hasattr(probe, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    for key in _UNUSED_TEXT_KEYS:
        converted.pop(key, None)
    return _build(lambda: CLIPTextModel(config), converted, "text_encoder", where)


def _check_schedule(original_config: Mapping, scheduler_config: Mapping, where: str) -> None:
    params = original_config["model"]["params"]
    pairs = [
        ("linear_start", "beta_start", params.get("linear_start", 0.00085)),
        ("linear_end", "beta_end", params.get("linear_end", 0.012)),
        ("timesteps", "num_train_timesteps", params.get("timesteps", 1000)),
    ]
    bad = [
        f"{ours}={scheduler_config.get(ours)!r} vs {theirs}={value!r}"
        for theirs, ours, value in pairs
        if abs(float(scheduler_config.get(ours, float("nan"))) - float(value)) > 1e-9
    ]
    if scheduler_config.get("beta_schedule", "linear") != "scaled_linear":
        bad.append(f"beta_schedule={scheduler_config.get('beta_schedule')!r} vs ldm's 'linear' (sqrt-spaced betas)")
    if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
        bad.append(f"prediction_type={scheduler_config.get('prediction_type')!r} vs cldm_v21's epsilon")
    if bad:
        raise InputError(f"{where}: the base model's noise schedule differs from the checkpoint's: {'; '.join(bad)}")


def convert_components(state: Mapping, original_config: Mapping, base_dir: Path, where: str) -> dict:
    """The diffusers ``unet``, ``controlnet``, ``vae`` and ``text_encoder`` of an original state dict."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_controlnet_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    absent = [f"{p}*" for p in PREFIXES.values() if not any(k.startswith(p) for k in state)]
    if absent:
        raise InputError(
            f"{where}: not an original ControlNet checkpoint (models/cldm_v21.yaml layout): no {', '.join(absent)} "
            f"tensors among its {len(state)} keys"
        )
    configs = diffusers_configs(original_config)
    try:
        unet_state = convert_ldm_unet_checkpoint(dict(state), configs["unet"])
        controlnet_state = convert_controlnet_checkpoint(dict(state), configs["controlnet"])
        vae_state = convert_ldm_vae_checkpoint(dict(state), configs["vae"])
    except (KeyError, IndexError, AttributeError, RuntimeError) as exc:  # a layout the converters do not know
        raise InputError(f"{where}: diffusers' checkpoint converters cannot map it: {type(exc).__name__}: {exc}") from exc
    return {
        "unet": _build(lambda: UNet2DConditionModel(**configs["unet"]), unet_state, "unet", where),
        "controlnet": _build(lambda: ControlNetModel(**configs["controlnet"]), controlnet_state, "controlnet", where),
        "vae": _build(lambda: AutoencoderKL(**configs["vae"]), vae_state, "vae", where),
        "text_encoder": _text_encoder(state, base_dir / "text_encoder", where),
    }


def import_controlnet(
    checkpoint: str | os.PathLike,
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    original_config: str | os.PathLike | None = None,
    trust_pickle: bool = False,
) -> Path:
    """Write ``out_dir``: a diffusers SD folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/
    model_index.json``) plus ``controlnet/``, from an original ControlNet checkpoint.

    ``base_dir``: the local SD 2.1-base folder, source of the tokenizer, the scheduler config (checked
    against the checkpoint's schedule) and the text-encoder config. ``original_config``: the
    checkpoint's YAML (default :data:`CLDM_V21`). Refuses a checkpoint whose keys or shapes do not
    match, naming them; the folder appears only when complete.
    """
    from .paths import resolve_base_model

    where = str(checkpoint)
    base = resolve_base_model(base_dir)
    config = load_original_config(original_config)
    scheduler_path = base / "scheduler" / "scheduler_config.json"
    _check_schedule(config, json.loads(scheduler_path.read_text()), f"{where} with {scheduler_path}")
    state = read_checkpoint(checkpoint, trust_pickle=trust_pickle)
    models = convert_components(state, config, base, where)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        for name, model in models.items():
            model.save_pretrained(tmp / name, safe_serialization=True)
        for folder in ("tokenizer", "scheduler", "feature_extractor"):
            if (base / folder).is_dir():
                shutil.copytree(base / folder, tmp / folder)
        shutil.copy2(base / "model_index.json", tmp / "model_index.json")
        (tmp / "imported_from.json").write_text(
            json.dumps({"checkpoint": str(checkpoint), "base": str(base), "original_config": str(original_config or "cldm_v21 (built in)")}, indent=1)
        )
    return out
