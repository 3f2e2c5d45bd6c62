"""Options shared by the commands that read ``scpdiff score`` files (``collect-metrics``, ``tables``)."""

from __future__ import annotations

import argparse


def add_score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", help="benchmark name or YAML path (its name, dataset and mu for tables)")
    p.add_argument("--score", nargs=3, action="append", default=[], metavar=("PRIOR", "MU", "JSON"),
                   help="a FID/mIoU score file of one setting (repeat)")
    p.add_argument("--diversity-score", nargs=3, action="append", default=[], metavar=("PRIOR", "MU", "JSON"),
                   help="a diversity (LPIPS/MS-SSIM) score file of one setting (repeat)")


def _mu(text: str, what: str) -> float:
    from ..errors import InputError

    try:
        return float(text)
    except ValueError:
        raise InputError(f"{what}: mu {text!r} is not a number") from None


def score_triples(args) -> tuple[list, list]:
    """``(fid, diversity)`` lists of ``(prior, mu, path)`` from ``--score`` / ``--diversity-score``."""
    return ([(p, _mu(m, f), f) for p, m, f in args.score],
            [(p, _mu(m, f), f) for p, m, f in args.diversity_score])


def load_score_benchmark(args):
    """The benchmark the score files belong to (``--benchmark``, required with score files)."""
    from ..config.benchmark import load_benchmark
    from ..errors import InputError

    if not args.benchmark:
        raise InputError("--score/--diversity-score need --benchmark (its name, dataset and mu for tables)")
    return load_benchmark(args.benchmark)
