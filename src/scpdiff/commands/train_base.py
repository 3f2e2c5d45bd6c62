"""``scpdiff train-base``: train the toy benchmark's tiny text-to-image base (UNet + CLIP + VAE)."""

from __future__ import annotations

from ._training_args import add_training_arguments, training_kwargs

HELP = "train the toy benchmark's tiny base model on the toy VAE's latents (toy benchmarks only)"


def add_arguments(parser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--vae", required=True, help="VAE folder written by `scpdiff train-vae`")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..training.stages import train_base

    train_base(load_benchmark(args.benchmark), args.vae, args.out, **training_kwargs(args))
    return 0
