"""scpdiff collect-metrics: one benchmark's score files as one tidy metrics CSV (a row per setting)."""

from __future__ import annotations

import argparse

from ._score_args import add_score_arguments

HELP = "collect score JSON files of one benchmark into a metrics CSV (the input of tables and plots)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_score_arguments(p)
    p.add_argument("--out", required=True, help="the metrics CSV to write")


def run(args) -> int:
    from ..reporting.tables import write_benchmark_metrics
    from ._score_args import load_score_benchmark, score_triples

    fid, diversity, seeds, references = score_triples(args)
    metrics = write_benchmark_metrics(load_score_benchmark(args), fid, diversity, args.out, seeds, references)
    print(f"{len(metrics)} settings -> {args.out}")
    return 0
