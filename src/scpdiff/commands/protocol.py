"""scpdiff protocol: the fully resolved evaluation protocol of a benchmark, as JSON, before a run."""

from __future__ import annotations

import argparse

HELP = "print a benchmark's resolved protocol (every knob, its value and where it came from) as JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name (benchmarks/NAME.yaml) or YAML path")
    p.add_argument("--configfile", help="a workflow config whose `overrides:` apply (as in the Snakemake run)")


def run(args) -> int:
    import json

    from ..config.workflow import benchmark_protocol

    print(json.dumps(benchmark_protocol(args.benchmark, args.configfile), indent=2))
    return 0
