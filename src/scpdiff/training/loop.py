"""The one training loop behind every ``scpdiff train-*`` command (toy and real runs alike).

It runs a :class:`TrainingTask` with accelerate (multi-GPU, bf16 on CUDA, gradient
accumulation), logs the loss to CSV, and writes resumable checkpoints atomically. A killed run
restarted with the same arguments continues from its last checkpoint and ends with the same
weights as an uninterrupted run: the batches and the noise of step ``s`` depend only on ``s``
(see :mod:`scpdiff.training.data` and :func:`step_generator`), and the checkpoint holds the
weights, the optimiser, the LR schedule and the RNG states.

State directory layout (beside the final output, e.g. ``work/toy/models/controlnet.state/``)::

    checkpoints/step-00000500/      accelerate.save_state() + scpdiff_state.json (renamed into place)
    train_log.csv                   step, loss, lr, seconds
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch

from ..datasets.base import SegmentationDataset
from ..errors import ConfigError
from ..utils.files import atomic_path
from .data import step_batches

CHECKPOINT_PREFIX = "step-"
# settings that may change between a run and its resumption (they do not change the trajectory)
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "cache_decoded_mb"}
STATE_FILE = "scpdiff_state.json"
LOG_FIELDS = ("step", "loss", "lr", "seconds")


@dataclass
class LoopConfig:
    """Optimisation settings shared by all stages (a stage's config adds its own fields)."""

    steps: int = 1000
    batch_size: int = 16  # per process and micro-batch
    lr: float = 1e-4
    gradient_accumulation: int = 1
    mixed_precision: str = "bf16"  # used on CUDA only; CPU runs in float32
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    num_workers: int = 0
    # decoded training samples kept in memory per loader process (MiB; 0: read every batch from disk)
    cache_decoded_mb: int = 1024

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, source: str = "training config", **overrides):
        """Build from a benchmark's ``training.<stage>`` mapping; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = dict(values or {})
        values.pop("gpus", None)  # a resource hint for the workflow, not for the loop
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown training option(s) {unknown}; known: {sorted(names)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)
        if int(cfg.cache_decoded_mb) < 0:
            raise ConfigError(f"{source}: cache_decoded_mb must be >= 0, got {cfg.cache_decoded_mb}")
        for key in ("steps", "batch_size", "gradient_accumulation", "checkpoint_every", "log_every", "keep_checkpoints"):
            if int(getattr(cfg, key)) < 1:
                raise ConfigError(f"{source}: {key} must be >= 1, got {getattr(cfg, key)}")
        if cfg.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"{source}: mixed_precision must be no, bf16 or fp16, got {cfg.mixed_precision!r}")
        return cfg


class TrainingTask(Protocol):
    """What a stage provides to the loop."""

    def trainable(self) -> torch.nn.Module:
        """The module whose parameters with ``requires_grad`` are optimised (and checkpointed)."""

    def setup(self, device: torch.device, weight_dtype: torch.dtype) -> None:
        """Move the frozen parts to ``device`` (in ``weight_dtype``); called once before training."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """The scalar loss of one micro-batch; all randomness must come from ``generator``."""


@dataclass
class LoopResult:
    step: int  # the last completed step
    finished: bool  # step == cfg.steps
    seconds: float  # training time summed over all (resumed) runs
    log: list[dict]


def step_generator(seed: int, step: int, micro: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of one micro-batch's noise: a function of its position only, for exact resumes."""
    g = torch.Generator(device=device)
    g.manual_seed(((seed * 1_000_003 + step) * 997 + micro) * 257 + rank)
    return g


def checkpoints(state_dir: Path) -> list[tuple[int, Path]]:
    """Finished checkpoints in ``state_dir`` sorted by step (half-written ``.tmp`` ones are ignored)."""
    found = []
    root = state_dir / "checkpoints"
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(CHECKPOINT_PREFIX) and (p / STATE_FILE).is_file():
                try:
                    found.append((int(p.name[len(CHECKPOINT_PREFIX):]), p))
                except ValueError:
                    continue
    return sorted(found)


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= upto]


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)


def run_training(
    task: TrainingTask,
    dataset: SegmentationDataset,
    cfg: LoopConfig,
    state_dir: str | os.PathLike,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
) -> tuple[LoopResult, torch.nn.Module]:
    """Train ``task`` on ``dataset`` for ``cfg.steps`` optimiser steps; return the unwrapped module.

    ``resume``: continue from the newest checkpoint in ``state_dir`` (else start over).
    ``stop_after``: return after this many steps as if killed there (to test resuming).
    """
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler

    state_dir = Path(state_dir)
    cuda = torch.cuda.is_available()
    mixed = cfg.mixed_precision if cuda else "no"
    accelerator = Accelerator(mixed_precision=mixed, gradient_accumulation_steps=cfg.gradient_accumulation, cpu=not cuda)
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed, torch.float32)
    task.setup(accelerator.device, weight_dtype)

    model = task.trainable()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: the task has no parameter with requires_grad")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_scheduler = get_scheduler(
        "constant_with_warmup", optimizer, num_warmup_steps=cfg.warmup_steps * accelerator.num_processes
    )
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)

    start, seconds_before = 0, 0.0
    found = checkpoints(state_dir) if resume else []
    if found:
        start, path = found[-1]
        saved = json.loads((path / STATE_FILE).read_text())
        _check_same_settings(saved.get("config", {}), cfg, path)
        accelerator.load_state(str(path))
        seconds_before = float(saved.get("seconds", 0.0))
        accelerator.print(f"resuming from {path} (step {start})")
    elif not resume and state_dir.exists() and accelerator.is_main_process:
        shutil.rmtree(state_dir / "checkpoints", ignore_errors=True)
    log_path = state_dir / "train_log.csv"
    log = _read_log(log_path, start) if found else []

    batches = step_batches(
        dataset,
        cfg.batch_size,
        cfg.seed,
        start_micro=start * cfg.gradient_accumulation,
        num_replicas=accelerator.num_processes,
        rank=accelerator.process_index,
        num_workers=cfg.num_workers,
        cache_bytes=int(cfg.cache_decoded_mb) * 2**20,
    )
    model.train()
    step, t0, window = start, time.perf_counter(), []
    while step < cfg.steps:
        for micro in range(cfg.gradient_accumulation):
            batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in next(batches).items()}
            g = step_generator(cfg.seed, step, micro, accelerator.process_index, accelerator.device)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = task.loss(model, batch, g)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            window.append(loss.detach().float())
        step += 1
        seconds = seconds_before + time.perf_counter() - t0
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean_loss = accelerator.reduce(torch.stack(window).mean(), reduction="mean").item()
            window = []
            log.append({"step": step, "loss": f"{mean_loss:.6g}", "lr": f"{lr_scheduler.get_last_lr()[0]:.3g}", "seconds": f"{seconds:.2f}"})
            if accelerator.is_main_process:
                _write_log(log_path, log)
                if progress:
                    print(f"step {step}/{cfg.steps} loss {mean_loss:.4f} ({seconds:.0f} s)", flush=True)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(accelerator, state_dir, step, seconds, cfg)
        if stop_after is not None and step >= stop_after and step < cfg.steps:
            break
    accelerator.wait_for_everyone()
    result = LoopResult(step, step >= cfg.steps, seconds_before + time.perf_counter() - t0, log)
    return result, accelerator.unwrap_model(model)


def _check_same_settings(saved: dict, cfg: LoopConfig, path: Path) -> None:
    now = dataclasses.asdict(cfg)
    changed = sorted(k for k in saved if k not in RESUMABLE_CHANGES and k in now and saved[k] != now[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise ConfigError(f"{path}: cannot resume, the training settings changed ({diffs}); rerun with --resume never")


def _save_checkpoint(accelerator, state_dir: Path, step: int, seconds: float, cfg: LoopConfig) -> None:
    """``accelerate.save_state`` into a temporary folder, renamed into place by the main process."""
    root = state_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:08d}"
    tmp = root / f".{final.name}.tmp"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"step": step, "seconds": seconds, "config": dataclasses.asdict(cfg)}
        (tmp / STATE_FILE).write_text(json.dumps(state))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in checkpoints(state_dir)[: -cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
