"""``scpdiff train-vae``: train the toy benchmark's tiny VAE (AutoencoderKL, latent factor 8)."""

from __future__ import annotations

from ._training_args import add_training_arguments, training_kwargs

HELP = "train the toy benchmark's tiny VAE (toy benchmarks only)"


def add_arguments(parser) -> None:
    add_training_arguments(parser)


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..training.stages import train_vae

    train_vae(load_benchmark(args.benchmark), args.out, **training_kwargs(args))
    return 0
