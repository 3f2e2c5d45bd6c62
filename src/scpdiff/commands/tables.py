"""scpdiff tables: the paper's Tables 1-3 (CSV + booktabs LaTeX) from scored settings."""

from __future__ import annotations

import argparse

from ._score_args import add_score_arguments

HELP = "write Tables 1-3 (CSV and LaTeX) from score JSON files or metrics CSVs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_score_arguments(p)
    p.add_argument("--metrics", nargs="+", default=[], metavar="CSV",
                   help="metrics CSVs (collect-metrics, results/*/metrics.csv); one column group per benchmark")
    p.add_argument("--table", type=int, nargs="+", default=[1, 2, 3], metavar="N",
                   help="which tables to write (default: 1 2 3)")
    p.add_argument("--literature", help="CSV of Table 2 literature values (default: the paper's, shipped)")
    p.add_argument("--out-dir", required=True, help="folder for metrics.csv (with --score) and table{N}.{csv,tex}")


def run(args) -> int:
    from pathlib import Path

    from ..reporting import tables
    from ._score_args import has_scores, load_score_benchmark, score_triples

    metrics_files = list(args.metrics)
    if has_scores(args):
        fid, diversity, seeds, references = score_triples(args)
        path = Path(args.out_dir) / "metrics.csv"
        tables.write_benchmark_metrics(load_score_benchmark(args), fid, diversity, path, seeds, references)
        metrics_files.insert(0, path)
    for path in tables.write_metrics_tables(metrics_files, args.out_dir, args.table, args.literature):
        print(path)
    return 0
