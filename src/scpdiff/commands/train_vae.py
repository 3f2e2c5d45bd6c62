"""``scpdiff train-vae``: train the toy benchmark's tiny VAE (AutoencoderKL; its latent factor follows ``training.vae.block_out_channels``)."""

from __future__ import annotations

from ._training_args import add_training_arguments, training_kwargs

HELP = "train the toy benchmark's tiny VAE (toy benchmarks only)"


def add_arguments(parser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--cache", help="cache folder of `scpdiff weights` (the LPIPS weights of a perceptual term)")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..metrics.weights import LPIPS_ALEXNET, weight_path
    from ..training.stages import train_vae

    backbone = weight_path(LPIPS_ALEXNET, cache=args.cache)[0] if args.cache else None
    train_vae(load_benchmark(args.benchmark), args.out, lpips_backbone=backbone, **training_kwargs(args))
    return 0
