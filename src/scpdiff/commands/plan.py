"""scpdiff plan: what a study costs before launch (jobs, images, evaluations, FLOPs, GPU-hours, disk)."""

from __future__ import annotations

import argparse

HELP = "the cost of a study per benchmark and stage, printed and written as CSV (nothing is run)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configfile", help="workflow config (its benchmarks and overrides); default config/config.yaml "
                                        "when no --benchmark is given")
    p.add_argument("--benchmark", action="append", help="benchmark name or YAML path (repeatable)")
    p.add_argument("--gpu", help="GPU name to look up in results/speed/*.csv, or 'paper-a100' "
                                 "(the paper's 2.34 s/image; the default)")
    p.add_argument("--tflops", type=float, help="GPU rate in TFLOPS instead of a measured one (e.g. 989 for H100 SXM bf16)")
    p.add_argument("--utilisation", type=float, default=1.0, help="assumed fraction of --tflops reached (default 1: the FLOP limit)")
    p.add_argument("--png-bytes-per-pixel", type=float, default=1.4, help="PNG size estimate per pixel (default 1.4)")
    p.add_argument("--scoring-device", help="device name to look up in the scoring speed CSVs of results/speed "
                   "(tools/speed/score.py): the score, segmentation and diversity hours at its measured rates")
    p.add_argument("--out", help="CSV file to write (default: print only)")


def run(args) -> int:
    from ..planning import plan_study

    configfile = args.configfile or (None if args.benchmark else "config/config.yaml")
    print(plan_study(args.benchmark, configfile, args.gpu, args.tflops, args.utilisation, args.out, args.png_bytes_per_pixel,
                     scoring_device=args.scoring_device))
    return 0
