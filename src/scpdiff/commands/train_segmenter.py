"""``scpdiff train-segmenter``: train the toy benchmark's evaluation segmenter."""

from __future__ import annotations

from ._training_args import add_training_arguments, training_kwargs

HELP = "train the toy evaluation segmenter (a checkpoint folder for `--segmenter-checkpoint`)"


def add_arguments(parser) -> None:
    add_training_arguments(parser)


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..training.stages import train_segmenter

    train_segmenter(load_benchmark(args.benchmark), args.out, **training_kwargs(args))
    return 0
