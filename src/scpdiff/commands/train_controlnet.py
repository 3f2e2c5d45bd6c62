"""``scpdiff train-controlnet``: fine-tune a ControlNet (and the UNet decoder) from a base model."""

from __future__ import annotations

from ._training_args import add_training_arguments, training_kwargs

HELP = "fine-tune a ControlNet on (image, mask, fixed prompt) from a base diffusers folder (resumable)"


def add_arguments(parser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--base", required=True, help="base Stable-Diffusion diffusers folder (SD 2.1 or the toy base)")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..training.stages import train_controlnet

    train_controlnet(load_benchmark(args.benchmark), args.base, args.out, **training_kwargs(args))
    return 0
