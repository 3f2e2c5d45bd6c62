"""Options shared by the ``train-*`` commands."""

from __future__ import annotations

import argparse

from ._numbers import positive_int


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", required=True, help="benchmark name or YAML file")
    parser.add_argument("--out", required=True, help="output model folder (written atomically)")
    parser.add_argument(
        "--resume",
        choices=("auto", "never"),
        default="auto",
        help="auto: continue from the newest checkpoint in OUT.state/ (default); never: start over",
    )
    parser.add_argument("--steps", type=positive_int, default=None, help="override training.<stage>.steps")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="override training.<stage>.batch_size")
    parser.add_argument(
        "--stop-after",
        type=positive_int,
        default=None,
        metavar="K",
        help="stop after K steps as if killed (checkpoints stay; rerun to resume)",
    )
    parser.add_argument("--keep-state", action="store_true", help="keep OUT.state/checkpoints after finishing")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (default: torch's choice); 1 is fastest when jobs share the cores",
    )


def training_kwargs(args: argparse.Namespace) -> dict:
    """The stage function's keyword arguments; also applies ``--threads``."""
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    return {
        "resume": args.resume == "auto",
        "stop_after": args.stop_after,
        "keep_state": args.keep_state,
        "steps": args.steps,
        "batch_size": args.batch_size,
    }
