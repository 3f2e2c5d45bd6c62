"""What the ``scpdiff train-*`` commands run: each stage reads its settings from the benchmark's
``training.<stage>`` mapping, trains with :func:`~scpdiff.training.loop.run_training` (resuming
from ``OUT.state/``), and writes its model folder atomically, with ``train_log.csv`` and
``training.json`` (settings, steps, wall time, final loss) inside.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch

from ..config.benchmark import Benchmark
from ..config.training_options import check_crop as check_stage_crop
from ..config.training_options import check_hint_factor, check_levels_without_attention
from ..datasets import open_benchmark_split
from ..errors import ConfigError
from ..utils.files import check_output_path, earlier_output
from ..utils.torch_state import seeded
from .loop import LoopConfig, LoopResult, run_training

# a model folder an earlier training run wrote (diffusers' config.json / model_index.json, our
# training.json) or an empty one may be replaced; any other folder is the user's
EARLIER_MODEL = earlier_output("training.json", "config.json", "model_index.json")


# ControlNet fine-tuning settings that are protocol knobs (docs/protocol.md): knob -> LoopConfig field
PROTOCOL_TRAINING = {"training_mixed_precision": "mixed_precision", "training_weight_decay": "weight_decay",
                     "training_grad_clip": "max_grad_norm"}


def stage_config(bench: Benchmark, stage: str, cls: type[LoopConfig], **overrides) -> LoopConfig:
    values = dict((bench.get("training") or {}).get(stage) or {})
    source = f"{bench.path or bench.name}: training.{stage}"
    if stage == "controlnet":
        for knob, name in PROTOCOL_TRAINING.items():
            if name in values:
                raise ConfigError(f"{source}: {name} is the protocol knob `protocol: {knob}` (docs/protocol.md)")
            values[name] = bench.protocol[knob]
    return cls.from_mapping(values, source=source, **overrides)


def state_dir_for(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".state")


def require_toy(bench: Benchmark, command: str) -> None:
    if not bench.is_toy:
        raise ConfigError(f"{bench.path or bench.name}: `scpdiff {command}` trains the toy models only (models.base is {bench['models']['base']!r})")


def _summary(cfg: LoopConfig, result: LoopResult, **extra) -> str:
    last = result.log[-1] if result.log else {}
    info = {
        "config": dataclasses.asdict(cfg),
        "steps": result.step,
        "seconds": round(result.seconds, 2),
        "final_loss": float(last["loss"]) if last else None,
        "torch_threads": torch.get_num_threads(),
        **extra,
    }
    return json.dumps(info, indent=1)


def _save_finished(out, cfg: LoopConfig, result: LoopResult, keep_state: bool, save: Callable[[Path], object],
                   **extra) -> None:
    """Write the model (``save(folder)``), its training log and ``training.json`` into one folder
    renamed onto ``out`` at once, so that a job killed at any point leaves no model folder that
    looks finished; then drop the checkpoints unless asked not to."""
    from ..utils.files import atomic_dir

    state = state_dir_for(out)
    with atomic_dir(out) as tmp:
        save(tmp)
        log = state / "train_log.csv"
        if log.is_file():
            shutil.copyfile(log, tmp / "train_log.csv")
        (tmp / "training.json").write_text(_summary(cfg, result, **extra))
    if not keep_state:
        shutil.rmtree(state / "checkpoints", ignore_errors=True)
    print(f"wrote {out} ({result.step} steps, {result.seconds:.0f} s)")


def _stopped(result: LoopResult) -> bool:
    if not result.finished:
        print(f"stopped after step {result.step}; rerun the same command to resume")
        return True
    return False


# ------------------------------------------------------------------------------------------ stages
def check_crop(bench: Benchmark, stage: str, crop, factor: int) -> None:
    """``training.<stage>.crop`` against the factor of the VAE the stage trains or loads."""
    check_stage_crop(bench.path or bench.name, stage, crop, factor, bench.resolution)


def vae_factor(vae) -> int:
    """Image pixels per latent pixel (per side) of a diffusers ``AutoencoderKL``: one downsampling between levels."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def train_vae(bench: Benchmark, out, resume=True, stop_after=None, keep_state=False, lpips_backbone=None,
              **overrides) -> LoopResult:
    """``lpips_backbone``: the prepared LPIPS AlexNet file, needed when ``perceptual_weight > 0``."""
    check_output_path(out, "folder", "--out (the model folder)", replaceable=EARLIER_MODEL)  # before any work
    from .vae import VaeTask, VaeTrainConfig, build_adversarial, build_vae, fit_scaling_factor, load_perceptual

    require_toy(bench, "train-vae")
    cfg = stage_config(bench, "vae", VaeTrainConfig, **overrides)
    perceptual = None
    if cfg.perceptual_weight > 0:
        if lpips_backbone is None:
            raise ConfigError(f"{bench.path or bench.name}: training.vae.perceptual_weight needs the LPIPS weights "
                              "(`scpdiff weights`, then `scpdiff train-vae --cache DIR`)")
        perceptual = load_perceptual(lpips_backbone)
    vae = build_vae(cfg, seed=cfg.seed)
    if cfg.crop is not None:
        check_crop(bench, "vae", cfg.crop, vae_factor(vae))
    dataset = open_benchmark_split(bench, "train")
    task = VaeTask(vae, cfg.kl_weight, perceptual, cfg.perceptual_weight,
                   build_adversarial(cfg, seed=cfg.seed + 1), crop=cfg.crop, latent_factor=vae_factor(vae))
    result, model = run_training(task, dataset, cfg, state_dir_for(out), resume=resume, stop_after=stop_after)
    if _stopped(result):
        return result
    vae = model.vae.eval()
    vae.register_to_config(scaling_factor=fit_scaling_factor(vae, dataset, cfg.scaling_images))
    _save_finished(out, cfg, result, keep_state, vae.save_pretrained, scaling_factor=vae.config.scaling_factor)
    return result


def train_base(bench: Benchmark, vae_dir, out, resume=True, stop_after=None, keep_state=False, **overrides) -> LoopResult:
    check_output_path(out, "folder", "--out (the model folder)", replaceable=EARLIER_MODEL)  # before any work
    from diffusers import AutoencoderKL, DDIMScheduler

    from ..models.sd_configs import sd_scheduler_config
    from ..models.tiny import save_base, tiny_text_encoder, tiny_unet
    from ..models.tokenizer import tiny_tokenizer
    from .base import BaseTask, BaseTrainConfig

    require_toy(bench, "train-base")
    cfg = stage_config(bench, "base", BaseTrainConfig, **overrides)
    check_levels_without_attention(bench.path or bench.name, cfg.levels_without_attention, len(cfg.block_out_channels))
    if not (Path(vae_dir) / "config.json").is_file():
        raise ConfigError(f"{vae_dir}: not a VAE folder (run `scpdiff train-vae` first)")
    vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch.float32).eval()
    if cfg.crop is not None:
        check_crop(bench, "base", cfg.crop, vae_factor(vae))
    tokenizer = tiny_tokenizer()
    text_encoder = tiny_text_encoder(
        len(tokenizer),
        hidden_size=cfg.text_hidden_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=cfg.seed,
    )
    _, h, w = bench.latent_shape
    unet = tiny_unet(
        sample_size=(h, w),
        block_out_channels=tuple(cfg.block_out_channels),
        cross_attention_dim=cfg.text_hidden_size,
        layers_per_block=cfg.layers_per_block,
        attention_head_dim=cfg.attention_head_dim,
        levels_without_attention=cfg.levels_without_attention,
        seed=cfg.seed + 1,
    )
    scheduler_config = sd_scheduler_config(bench["models"].get("prediction_type", "epsilon"))
    dataset = open_benchmark_split(bench, "train")
    task = BaseTask(
        unet, vae, text_encoder, tokenizer, bench["prompt"], scheduler_config, cache_dataset=dataset if cfg.cache_latents else None,
        crop=cfg.crop, latent_factor=vae_factor(vae),
    )
    result, unet = run_training(task, dataset, cfg, state_dir_for(out), resume=resume, stop_after=stop_after)
    if _stopped(result):
        return result
    parts = (vae.to("cpu"), text_encoder.to("cpu"), tokenizer, unet.to("cpu").eval(), DDIMScheduler(**scheduler_config))
    _save_finished(out, cfg, result, keep_state, lambda folder: save_base(folder, *parts), vae=str(vae_dir))
    return result


def train_controlnet(bench: Benchmark, base_dir, out, resume=True, stop_after=None, keep_state=False, **overrides) -> LoopResult:
    check_output_path(out, "folder", "--out (the model folder)", replaceable=EARLIER_MODEL)  # before any work
    from .components import load_base_components
    from ..models.conditioning import condition_palette, conditions_from_sources
    from ..models.controlnet import controlnet_from_unet
    from .controlnet import ControlNetTask, ControlNetTrainConfig, save_finetuned

    cfg = stage_config(bench, "controlnet", ControlNetTrainConfig, **overrides)
    parts = load_base_components(base_dir)
    declared = bench["models"].get("prediction_type")
    actual = parts["scheduler_config"].get("prediction_type", "epsilon")
    if declared and declared != actual:
        raise ConfigError(
            f"{bench.path or bench.name}: models.prediction_type is {declared!r} but the base model's scheduler "
            f"({base_dir}/scheduler) declares {actual!r}"
        )
    check_hint_factor(bench.path or bench.name, cfg.conditioning_embedding_out_channels, vae_factor(parts["vae"]))
    if cfg.crop is not None:
        check_crop(bench, "controlnet", cfg.crop, vae_factor(parts["vae"]))
    dataset = open_benchmark_split(bench, "train")
    palette = condition_palette(bench["dataset"]["kind"], dataset.classes.palette, bench.protocol["condition_colours"])

    def soft_conditions(indices):  # the official soft-edged conditions
        return conditions_from_sources([dataset.source_mask(i) for i in indices], palette, bench.resolution,
                                       dataset.classes.ignore_index)

    condition_source = soft_conditions if bench.protocol["condition_resize"] == "bilinear_antialias" else None
    controlnet = controlnet_from_unet(parts["unet"], cfg.conditioning_embedding_out_channels, seed=cfg.seed)
    task = ControlNetTask(
        controlnet,
        parts["unet"],
        parts["vae"],
        parts["text_encoder"],
        parts["tokenizer"],
        bench.protocol["training_prompt"] or bench["prompt"],  # official: with a full stop (docs/protocol.md)
        parts["scheduler_config"],
        palette,
        dataset.classes.ignore_index,
        unlock_decoder=cfg.unlock_decoder,
        prompt_dropout=cfg.prompt_dropout,
        gradient_checkpointing=cfg.gradient_checkpointing,
        cache_dataset=dataset if cfg.cache_latents else None,
        condition_source=condition_source,
        crop=cfg.crop,
        latent_factor=vae_factor(parts["vae"]),
    )
    result, model = run_training(task, dataset, cfg, state_dir_for(out), resume=resume, stop_after=stop_after)
    if _stopped(result):
        return result
    model = model.to("cpu").eval()
    _save_finished(out, cfg, result, keep_state, lambda folder: save_finetuned(folder, model, cfg.unlock_decoder),
                   base=str(base_dir), prediction_type=actual)
    return result


def train_segmenter(bench: Benchmark, out, resume=True, stop_after=None, keep_state=False, **overrides) -> LoopResult:
    check_output_path(out, "folder", "--out (the model folder)", replaceable=EARLIER_MODEL)  # before any work
    from ..segmenters.toy import ToySegNet, save_toy_segmenter
    from .segmenter import SegmenterTask, SegmenterTrainConfig, evaluate_miou

    require_toy(bench, "train-segmenter")
    cfg = stage_config(bench, "segmenter", SegmenterTrainConfig, **overrides)
    dataset = open_benchmark_split(bench, "train")
    with seeded(cfg.seed):
        net = ToySegNet(dataset.num_classes, tuple(cfg.channels))
    task = SegmenterTask(net, dataset.ignore_index, cfg.augment)
    result, net = run_training(task, dataset, cfg, state_dir_for(out), resume=resume, stop_after=stop_after)
    if _stopped(result):
        return result
    net = net.to("cpu").eval()
    val = open_benchmark_split(bench, "val")
    val_miou = evaluate_miou(net, val)
    config = {
        "kind": "toy",
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.classes.names),
        "channels": list(cfg.channels),
        "resolution": list(bench.resolution),
        "ignore_index": dataset.ignore_index,
        "val_miou": val_miou,
    }
    _save_finished(out, cfg, result, keep_state, lambda folder: save_toy_segmenter(folder, net, config),
                   val_miou=val_miou)
    return result
