"""Options shared by the commands that read ``scpdiff score`` files (``collect-metrics``, ``tables``)."""

from __future__ import annotations

import argparse


def add_score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", help="benchmark name or YAML path (its name, dataset and mu for tables)")
    p.add_argument("--score", nargs=3, action="append", default=[], metavar=("PRIOR", "MU", "JSON"),
                   help="a FID/mIoU score file of one setting (repeat)")
    p.add_argument("--diversity-score", nargs=3, action="append", default=[], metavar=("PRIOR", "MU", "JSON"),
                   help="a diversity (LPIPS/MS-SSIM) score file of one setting (repeat)")
    p.add_argument("--seed-score", nargs=4, action="append", default=[], metavar=("PRIOR", "MU", "SEED", "JSON"),
                   help="a FID/mIoU score file of one setting generated under another base seed (repeat)")
    p.add_argument("--reference-score", nargs=2, action="append", default=[], metavar=("ROW", "JSON"),
                   help="a score file of a reference row: real_images (the segmenter on real val images, or "
                        "real train images for the FID floor) or vae_reconstruction (repeat)")


def _mu(text: str, what: str) -> float:
    from ..errors import InputError

    try:
        return float(text)
    except ValueError:
        raise InputError(f"{what}: mu {text!r} is not a number") from None


def _seed(text: str, what: str) -> int:
    from ..errors import InputError

    try:
        return int(text)
    except ValueError:
        raise InputError(f"{what}: seed {text!r} is not an integer") from None


def has_scores(args) -> bool:
    return bool(args.score or args.diversity_score or args.seed_score or args.reference_score)


def score_triples(args) -> tuple[list, list, list, list]:
    """``(fid, diversity, seeds, references)``: ``(prior, mu, path)`` from ``--score`` /
    ``--diversity-score``, ``(prior, mu, seed, path)`` from ``--seed-score``, ``(row, path)`` from
    ``--reference-score``."""
    return ([(p, _mu(m, f), f) for p, m, f in args.score],
            [(p, _mu(m, f), f) for p, m, f in args.diversity_score],
            [(p, _mu(m, f), _seed(s, f), f) for p, m, s, f in args.seed_score],
            [(r, f) for r, f in args.reference_score])


def load_score_benchmark(args):
    """The benchmark the score files belong to (``--benchmark``, required with score files)."""
    from ..config.benchmark import load_benchmark
    from ..errors import InputError

    if not args.benchmark:
        raise InputError("--score/--diversity-score/--seed-score/--reference-score need --benchmark "
                         "(its name, dataset and mu for tables)")
    return load_benchmark(args.benchmark)
