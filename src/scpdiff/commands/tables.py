"""scpdiff tables: the paper's Tables 1-3 (CSV + booktabs LaTeX) from scored settings."""

from __future__ import annotations

import argparse

HELP = "write Tables 1-3 (CSV and LaTeX) from score JSON files or metrics CSVs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", help="benchmark name or YAML path (its name, dataset and mu for tables); with --score")
    p.add_argument("--score", nargs=3, action="append", default=[], metavar=("PRIOR", "MU", "JSON"),
                   help="a FID/mIoU score file of one setting (repeat)")
    p.add_argument("--diversity-score", nargs=3, action="append", default=[], metavar=("PRIOR", "MU", "JSON"),
                   help="a diversity (LPIPS/MS-SSIM) score file of one setting (repeat)")
    p.add_argument("--seed-score", nargs=4, action="append", default=[], metavar=("PRIOR", "MU", "SEED", "JSON"),
                   help="a FID/mIoU score file of one setting generated under another base seed (repeat)")
    p.add_argument("--reference-score", nargs=2, action="append", default=[], metavar=("ROW", "JSON"),
                   help="a score file of a reference row: real_images (the segmenter on real val images, or "
                        "real train images for the FID floor) or vae_reconstruction (repeat)")
    p.add_argument("--metrics", nargs="+", default=[], metavar="CSV",
                   help="metrics CSVs written by earlier runs (results/*/metrics.csv); one column group each")
    p.add_argument("--literature", help="CSV of Table 2 literature values (default: the paper's, shipped)")
    p.add_argument("--out-dir", required=True, help="folder for metrics.csv (with --score) and table{1,2,3}.{csv,tex}")


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


def run(args) -> int:
    from pathlib import Path

    import pandas as pd

    from ..errors import InputError
    from ..reporting import tables

    frames = []
    if args.score or args.diversity_score or args.seed_score or args.reference_score:
        if not args.benchmark:
            raise InputError("--score/--diversity-score/--seed-score/--reference-score need --benchmark "
                             "(its name, dataset and mu for tables)")
        from ..config.benchmark import load_benchmark

        bench = load_benchmark(args.benchmark)
        metrics = tables.collect_metrics(
            bench.name,
            bench["dataset"]["kind"],
            bench["mu"]["table"],
            [(p, _mu(m, f), f) for p, m, f in args.score],
            [(p, _mu(m, f), f) for p, m, f in args.diversity_score],
            [(p, _mu(m, f), _seed(s, f), f) for p, m, s, f in args.seed_score],
            [(r, f) for r, f in args.reference_score],
        )
        tables.write_metrics(metrics, Path(args.out_dir) / "metrics.csv")
        frames.append(metrics)
    if args.metrics:
        frames.append(tables.read_metrics(args.metrics))
    if not frames:
        raise InputError("nothing to tabulate: give --score files (with --benchmark) or --metrics CSVs")
    metrics = pd.concat(frames, ignore_index=True)
    literature = tables.load_literature(args.literature) if args.literature else None
    for path in tables.write_tables(metrics, args.out_dir, literature):
        print(path)
    return 0
