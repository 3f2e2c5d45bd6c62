"""Run one ``scpdiff`` command on every GPU of a job: plain Python for one device, ``accelerate
launch`` with one process per GPU for several (multi-GPU ControlNet fine-tuning, section 5.1).

The workflow rule names the GPU count in its resources; SLURM allocates them (``sbatch --gpus=N``)
and this helper starts the matching number of data-parallel processes inside that one job::

    python -m scpdiff.training.launcher --gpus 4 -- train-controlnet --benchmark B --base DIR --out DIR --resume auto
    python -m scpdiff.training.launcher --gpus auto -- train-controlnet ...     # count what the job was given

The command replaces this process (``exec``), so SLURM's signals on preemption or at the time
limit reach the training processes directly, and ``--resume auto`` continues from the last
checkpoint when the job is requeued or retried.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence

from ..errors import ConfigError

__all__ = ["allocated_gpu_count", "build_command", "free_port", "main"]


def allocated_gpu_count(environ: Mapping[str, str] | None = None) -> int:
    """How many GPUs this process may use.

    Inside a SLURM job, ``SLURM_GPUS_ON_NODE`` (what ``--gpus`` granted on this node); otherwise
    the devices listed in ``CUDA_VISIBLE_DEVICES``; otherwise what CUDA reports (0 without CUDA).
    """
    env = os.environ if environ is None else environ
    slurm = env.get("SLURM_GPUS_ON_NODE", "").strip()
    if slurm:
        try:
            return int(slurm)
        except ValueError:
            raise ConfigError(f"SLURM_GPUS_ON_NODE={slurm!r} is not a GPU count") from None
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        # "" and "-1" hide every device
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_port() -> int:
    """A TCP port nobody listens on now, for accelerate's rendezvous: several multi-GPU jobs may
    share one node, so the fixed default (29500) would collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_command(
    args: Sequence[str],
    num_gpus: int,
    *,
    python: str | None = None,
    main_process_port: int | None = None,
) -> list[str]:
    """The command line that runs ``scpdiff ARGS`` on ``num_gpus`` GPUs of this node.

    ``num_gpus <= 1`` runs the command in one process (the training code's ``Accelerator`` then
    uses the single visible device, or the CPU); more GPUs start ``accelerate launch`` with one
    process per GPU on this one machine. The mixed precision stays the training code's choice
    (an explicit ``Accelerator(mixed_precision=...)`` overrides the launcher's ``no``).
    """
    if not args:
        raise ConfigError("scpdiff.training.launcher: no scpdiff command given (expected e.g. '-- train-controlnet ...')")
    if num_gpus < 0:
        raise ConfigError(f"scpdiff.training.launcher: GPU count must be >= 0, got {num_gpus}")
    python = python or sys.executable
    if num_gpus <= 1:
        return [python, "-m", "scpdiff", *args]
    port = free_port() if main_process_port is None else main_process_port
    return [
        python, "-m", "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes", str(num_gpus),
        "--num_machines", "1",
        "--machine_rank", "0",
        "--main_process_port", str(port),
        "--mixed_precision", "no",
        "--dynamo_backend", "no",
        "--module", "scpdiff",
        *args,
    ]  # fmt: skip


def _parse_gpus(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a GPU count or 'auto', got {value!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"GPU count must be >= 0, got {count}")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scpdiff.training.launcher",
        description="Run an scpdiff command on the job's GPUs (accelerate launch for more than one).",
    )
    parser.add_argument(
        "--gpus", type=_parse_gpus, default=None, metavar="N|auto",
        help="GPU count (the rule's `gpu` resource); 'auto' (default) counts the job's GPUs",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the scpdiff command and its options")
    ns = parser.parse_args(argv)
    args = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    try:
        gpus = allocated_gpu_count() if ns.gpus is None else ns.gpus
        cmd = build_command(args, gpus)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ns.dry_run:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
