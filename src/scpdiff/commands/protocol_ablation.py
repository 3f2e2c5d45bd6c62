"""scpdiff protocol-ablation: the protocol ablation (docs/protocol.md, "The toy ablation").

Two steps of the workflow's ablation rules (workflow/rules/ablation.smk):
``--flip KNOB --out FILE`` writes the benchmark with that one knob flipped, the file the flip's
jobs read; ``--default-score PRIOR FILE ... --flip-score KNOB FILE ... --out CSV`` writes the table.
"""

from __future__ import annotations

import argparse

HELP = "write a benchmark with one protocol knob flipped (--flip), or the protocol ablation table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help="benchmark name or YAML path (its resolved protocol)")
    p.add_argument("--flip", metavar="KNOB", help="write the benchmark with KNOB flipped to --out")
    p.add_argument("--default-score", nargs=2, action="append", default=[], metavar=("PRIOR", "FILE"),
                   help="score JSON of the default run of PRIOR (Table 1's setting)")
    p.add_argument("--flip-score", nargs=2, action="append", default=[], metavar=("KNOB", "FILE"),
                   help="score JSON of the run with KNOB flipped")
    p.add_argument("--out", required=True, help="the flipped benchmark YAML (--flip) or the table CSV")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..errors import InputError

    bench = load_benchmark(args.benchmark)
    if args.flip:
        if args.default_score or args.flip_score:
            raise InputError("--flip writes a benchmark file: give no score files with it")
        from ..config.ablation import write_flipped_benchmark

        write_flipped_benchmark(bench, args.flip, args.out)
        print(f"{bench.name} with {args.flip} flipped -> {args.out}")
        return 0
    from ..reporting.protocol_ablation import write_protocol_ablation

    frame = write_protocol_ablation(bench, dict(args.default_score), dict(args.flip_score), args.out)
    print(f"{len(frame)} rows -> {args.out}")
    return 0
