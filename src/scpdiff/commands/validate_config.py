"""scpdiff validate-config: check a benchmark file or the workflow config before a long run."""

from __future__ import annotations

import argparse

HELP = "validate a benchmark YAML or a workflow config (with its benchmarks and overrides); exit 1 naming the problem"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="benchmarks/NAME.yaml (or a benchmark name) or config/config.yaml")
    p.add_argument("--kind", choices=["auto", "benchmark", "workflow"], default="auto",
                   help="what FILE is (auto: a workflow config has a 'benchmarks' key)")


def run(args) -> int:
    from pathlib import Path

    from ..config.benchmark import load_benchmark
    from ..config.workflow import (import_plugins, resolve_benchmark, resolve_benchmarks, resolve_extra_rules,
                                   validate_workflow_config)
    from ..config.yaml_files import read_yaml
    from ..errors import ConfigError

    path = Path(args.file)
    kind = args.kind
    data = read_yaml(path) if path.is_file() else None
    if kind == "auto":
        kind = "workflow" if isinstance(data, dict) and ("benchmarks" in data or "work_dir" in data) else "benchmark"
    if kind == "workflow":
        if data is None and not path.is_file():
            raise ConfigError(f"{path}: workflow config file does not exist")
        config = validate_workflow_config(data, source=str(path))
        import_plugins(config["plugins"], source=f"{path}: plugins")
        extra_rules = resolve_extra_rules(config, source=str(path))
        # priors written by the extra rules are known only once Snakemake reads those rules
        benches = resolve_benchmarks(config, source=str(path), check_priors=not extra_rules)
        for name, bench in benches.items():
            print(f"{path}: benchmark {name}: ok ({bench.path}; priors {', '.join(bench['priors'])}; "
                  f"protocol {bench.protocol.preset} {bench.protocol.hash})")
        if extra_rules:
            print(f"{path}: extra_rules {', '.join(extra_rules)}: priors that are not registered must be "
                  "written by these rules (checked when snakemake reads them)")
        return 0
    bench = resolve_benchmark(args.file) if path.is_file() else load_benchmark(args.file)
    print(f"{bench.path}: benchmark {bench.name}: ok (priors {', '.join(bench['priors'])}; "
          f"protocol {bench.protocol.preset} {bench.protocol.hash}: scpdiff protocol --benchmark {args.file})")
    return 0
