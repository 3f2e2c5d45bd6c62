"""Finding the published models a benchmark names, on disk only (nothing is ever downloaded).

The base model (SD 2.1 or 2.1-base, paper Appendix A) is given in a benchmark's ``models.base`` as

- a local diffusers folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/ model_index.json``), or
- a Hugging Face repo id, ``owner/name`` or ``owner/name@revision`` (``hf:`` forces this reading),
  found in the local Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``) with a local-only lookup,
  as if ``HF_HUB_OFFLINE=1``.

    path = resolve_base_model("stabilityai/stable-diffusion-2-1-base")
    info = base_model_info("models/sd21", expected_prediction_type="epsilon")
    info.prediction_type, info.resolution       # 'epsilon', 512

A missing folder or file is a :class:`~scpdiff.errors.ConfigError` naming the file expected and
where the model is published. (Segmenter checkpoints: :mod:`scpdiff.segmenters.protocol`.)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

SD_PUBLISHED = {
    "stabilityai/stable-diffusion-2-1-base": "https://huggingface.co/stabilityai/stable-diffusion-2-1-base "
    "(SD 2.1-base: 512 px, epsilon prediction)",
    "stabilityai/stable-diffusion-2-1": "https://huggingface.co/stabilityai/stable-diffusion-2-1 "
    "(SD 2.1: 768 px, v prediction)",
}
_WHERE_SD = (
    "a diffusers Stable Diffusion 2.1 folder, published at "
    + " or ".join(SD_PUBLISHED.values())
    + "; fetch it once on a machine with network access, e.g. "
    "`huggingface-cli download stabilityai/stable-diffusion-2-1-base --local-dir DIR`, "
    "then set models.base to DIR or to the repo id (looked up in the local Hugging Face cache)"
)

# files a diffusers StableDiffusionPipeline folder must hold, besides weights
REQUIRED_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
)
# component -> weight file stem; accepted as .safetensors or .bin, optionally .fp16, or sharded (index.json)
WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
_ALT_STEMS = {"text_encoder": ("pytorch_model",)}

_REPO_ID = re.compile(r"^(hf:)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(@(?P<rev>[\w./-]+))?$")


@dataclass(frozen=True)
class BaseModelInfo:
    """What the harness needs to know about a base model folder."""

    path: Path
    prediction_type: str  # "epsilon" | "v_prediction" (scheduler/scheduler_config.json)
    resolution: int  # native image side in pixels: unet sample_size x VAE downsampling factor
    variant: str | None  # "fp16" when only fp16 weight files are present (diffusers' ``variant``)


def _looks_like_repo_id(spec: str) -> re.Match | None:
    if spec.startswith((".", "/", "~")):
        return None
    return _REPO_ID.match(spec)


def _weights_variant(folder: Path, component: str) -> str | None | bool:
    """``None`` (full precision present), ``"fp16"`` (only fp16), or ``False`` (no weights)."""
    stems = (WEIGHT_STEMS[component], *_ALT_STEMS.get(component, ()))
    for stem in stems:
        for ext in (".safetensors", ".bin"):
            if (folder / component / f"{stem}{ext}").is_file() or (
                folder / component / f"{stem}{ext}.index.json"
            ).is_file():
                return None
    for stem in stems:
        for ext in (".safetensors", ".bin"):
            if (folder / component / f"{stem}.fp16{ext}").is_file() or (
                folder / component / f"{stem}{ext}.index.fp16.json"
            ).is_file():
                return "fp16"
    return False


def check_base_folder(folder: Path, spec: str | None = None) -> str | None:
    """Raise :class:`ConfigError` listing what a diffusers SD folder lacks; return the weights variant."""
    where = f"base model {spec!r} ({folder})" if spec and str(spec) != str(folder) else f"base model folder {folder}"
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    variants = {}
    for component, stem in WEIGHT_STEMS.items():
        v = _weights_variant(folder, component)
        if v is False:
            missing.append(f"{component}/{stem}.safetensors (or .bin)")
        else:
            variants[component] = v
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}; expected {_WHERE_SD}")
    return "fp16" if "fp16" in variants.values() else None


def _from_hf_cache(repo: str, revision: str | None, cache_dir: str | os.PathLike | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, or a malformed id / cache
        cache = cache_dir or HF_HUB_CACHE
        published = SD_PUBLISHED.get(repo, f"https://huggingface.co/{repo}")
        raise ConfigError(
            f"base model {repo!r}{'@' + revision if revision else ''} is neither a local folder nor in the "
            f"Hugging Face cache {cache} (looked up offline: {type(exc).__name__}); expected "
            f"{cache}/models--{repo.replace('/', '--')}/snapshots/<commit>/model_index.json. "
            f"It is published at {published}; fetch it once with `huggingface-cli download {repo}` "
            "(or set HF_HUB_CACHE / models.base to where it already is)"
        ) from exc


def resolve_base_model(spec: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local folder of the base model ``spec`` (a diffusers folder or a cached HF repo id), checked."""
    text = str(spec)
    if text == "toy":
        raise ConfigError("models.base 'toy' is trained inside the workflow (work/{bench}/models/base), not resolved")
    local = Path(text).expanduser()
    forced_hub = text.startswith("hf:")
    if not forced_hub and local.exists():
        if not local.is_dir():
            raise ConfigError(f"base model {local} is a file; expected {_WHERE_SD}")
        check_base_folder(local, text)
        return local
    match = _looks_like_repo_id(text)
    if match is None:
        raise ConfigError(f"base model folder {local} does not exist; expected {_WHERE_SD}")
    folder = _from_hf_cache(match["repo"], match["rev"], cache_dir)
    check_base_folder(folder, text)
    return folder


def describe_base_model(folder: str | os.PathLike) -> BaseModelInfo:
    """Prediction type and native resolution of a (checked) diffusers SD folder."""
    folder = Path(folder)
    variant = check_base_folder(folder)

    def config(name: str) -> dict:
        path = folder / name
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON config: {exc}") from exc

    scheduler = config("scheduler/scheduler_config.json")
    unet = config("unet/config.json")
    vae = config("vae/config.json")
    prediction_type = scheduler.get("prediction_type", "epsilon")  # diffusers' default when absent
    if "sample_size" not in unet:
        raise ConfigError(f"{folder / 'unet/config.json'}: no sample_size; not a diffusers UNet config")
    vae_factor = 2 ** (len(vae.get("block_out_channels", (0, 0, 0, 0))) - 1)
    sample = unet["sample_size"]
    side = int(sample[0] if isinstance(sample, (list, tuple)) else sample) * vae_factor
    return BaseModelInfo(folder, prediction_type, side, variant)


def base_model_info(
    spec: str | os.PathLike,
    expected_prediction_type: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> BaseModelInfo:
    """:func:`resolve_base_model` then :func:`describe_base_model`; checks the benchmark's prediction type."""
    info = describe_base_model(resolve_base_model(spec, cache_dir=cache_dir))
    if expected_prediction_type is not None and info.prediction_type != expected_prediction_type:
        raise ConfigError(
            f"base model {spec!r}: its scheduler predicts {info.prediction_type!r} but the benchmark says "
            f"models.prediction_type: {expected_prediction_type!r} (SD 2.1 is v_prediction at 768 px, "
            "SD 2.1-base epsilon at 512 px)"
        )
    return info
