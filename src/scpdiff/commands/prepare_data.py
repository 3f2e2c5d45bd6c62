"""``scpdiff prepare-data``: make a benchmark's dataset ready and write its index
(:mod:`scpdiff.datasets.index`).

For the toy benchmark the dataset is generated first (unless a complete one with the same
parameters is already at ``dataset.root``).
"""

from __future__ import annotations

from ._numbers import positive_int

HELP = "generate (toy) and check a benchmark's dataset; write its index JSON"


def add_arguments(parser) -> None:
    parser.add_argument("--benchmark", required=True, help="benchmark name or YAML file")
    parser.add_argument("--out", required=True, help="index JSON to write (e.g. work/B/data/index.json)")
    parser.add_argument(
        "--workers", type=positive_int, default=1,
        help="processes that read and check the items (image decoding dominates; the workflow passes its threads)",
    )  # fmt: skip


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..datasets.index import prepare_benchmark_data

    prepare_benchmark_data(load_benchmark(args.benchmark), args.out, workers=args.workers)
    return 0
