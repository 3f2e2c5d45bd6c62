"""scpdiff validate-config: check a benchmark file or the workflow config before a long run."""

from __future__ import annotations

import argparse

HELP = "validate a benchmark YAML or a workflow config (with its benchmarks and overrides); exit 1 naming the problem"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="benchmarks/NAME.yaml (or a benchmark name) or config/config.yaml")
    p.add_argument("--kind", choices=["auto", "benchmark", "workflow"], default="auto",
                   help="what FILE is (auto: a file with any workflow-config key, e.g. benchmarks or overrides, is a workflow config)")
    p.add_argument("--schema-only", action="store_true",
                   help="check the files' content only, not that the dataset roots and models they name exist")


def run(args) -> int:
    from ..config.workflow import validate_config_file

    for line in validate_config_file(args.file, args.kind, check_paths=not args.schema_only):
        print(line)
    return 0
