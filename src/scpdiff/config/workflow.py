"""The Snakemake workflow's configuration (``config/config.yaml``): validation and the resolved
benchmarks the rules run on.

The config names the benchmarks to run, the work/results/cache folders, plugin modules and
per-benchmark ``overrides`` deep-merged onto ``benchmarks/NAME.yaml`` (dataset roots, model paths)
so a site never edits the shipped benchmark files. Used by the ``Snakefile`` and by
``scpdiff validate-config``, so both reject a bad config with the same message.

    config = validate_workflow_config(read_yaml("config/config.yaml"), "config/config.yaml")
    import_plugins(config["plugins"])
    benches = resolve_benchmarks(config)            # {name: Benchmark}, validated
"""

from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path
from typing import Any

import yaml

from .benchmark import Benchmark, benchmark_source, protocol_layers, read_benchmark, validate_benchmark
from .protocol import knob_origins
from .yaml_files import check_schema, deep_merge, load_schema
from ..errors import ConfigError, ScpdiffError
from ..utils.files import write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
PLUGINS_ENV = "SCPDIFF_PLUGINS"


def validate_workflow_config(data: Any, source: str = "<workflow config>") -> dict:
    """Validate against ``workflow/schemas/config.schema.yaml``; return a copy with defaults filled.

    Raises :class:`ConfigError` naming ``source``, the offending key and the rule it breaks.
    """
    schema = load_schema(SCHEMA_PATH, "workflow config")
    if data is None:
        data = {}
    check_schema(data, schema, source, "workflow config")
    config = copy.deepcopy(data)
    for key, spec in schema.get("properties", {}).items():
        if key not in config and "default" in spec:
            config[key] = copy.deepcopy(spec["default"])
    return config


def import_plugins(modules, source: str = "plugins") -> None:
    """Import the config's plugin modules (they register prior variants, datasets, segmenters)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{source}: plugin module {module!r} cannot be imported ({exc}); put it on PYTHONPATH") from exc


def import_plugins_from_env() -> None:
    """What every ``scpdiff`` job does first: import ``$SCPDIFF_PLUGINS`` (comma separated)."""
    import_plugins([m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()], source=PLUGINS_ENV)


def resolve_benchmark(entry: str, overrides: dict | None = None) -> Benchmark:
    """Load one benchmark (a name under benchmarks/ or a YAML path, its ``extends`` applied), apply
    its overrides, validate it and check that every prior it compares is registered."""
    from ..priors import get_prior_class

    data, chain = read_benchmark(entry)
    name = data.get("name", str(entry))
    over = (overrides or {}).get(name, (overrides or {}).get(str(entry)))
    source = benchmark_source(chain)
    layers = protocol_layers(chain)
    if over:
        data = deep_merge(data, over)
        source += f" (with the workflow config's overrides for {name!r})"
        if isinstance(over.get("protocol"), dict):
            layers.insert(0, (f"workflow config overrides for {name!r}", over["protocol"]))
    bench = validate_benchmark(data, source=source, origins=knob_origins(layers))
    for prior in bench["priors"]:
        try:
            get_prior_class(prior)
        except ScpdiffError as exc:
            raise ConfigError(f"{source}: priors: {exc}") from None
    bench.path = chain[0]
    return bench


def resolve_benchmarks(config: dict, source: str = "workflow config") -> dict[str, Benchmark]:
    """Every benchmark the config runs, by name; overrides must name one of them."""
    benches: dict[str, Benchmark] = {}
    for entry in config["benchmarks"]:
        bench = resolve_benchmark(entry, config.get("overrides"))
        if bench.name in benches:
            raise ConfigError(f"{source}: benchmarks: {bench.name!r} is listed twice")
        benches[bench.name] = bench
    unknown = sorted(set(config.get("overrides") or {}) - set(benches) - set(config["benchmarks"]))
    if unknown:
        raise ConfigError(f"{source}: overrides for {unknown} name no benchmark in 'benchmarks' {sorted(benches)}")
    return benches


def write_resolved_benchmark(bench: Benchmark, work_dir: str | os.PathLike) -> Path:
    """Write the resolved benchmark to ``WORK/NAME/benchmark.yaml``, the file every job reads.

    Rewritten only when its content changed, so an unchanged config never looks newer than outputs
    (the rules track the settings they use through params instead of this file's time stamp).
    """
    resolved = Path(work_dir) / bench.name / "benchmark.yaml"
    text = yaml.safe_dump(dict(bench), sort_keys=False)
    if not resolved.is_file() or resolved.read_text() != text:
        write_text_atomic(resolved, text)
    return resolved


def benchmark_protocol(benchmark: str, configfile: str | os.PathLike | None = None) -> dict:
    """``scpdiff protocol``: the resolved protocol of ``benchmark`` as JSON, with the workflow
    config ``configfile``'s overrides applied when given (so it is what the DAG will run)."""
    from .yaml_files import read_yaml

    overrides = None
    if configfile is not None:
        config = validate_workflow_config(read_yaml(configfile), source=str(configfile))
        import_plugins(config["plugins"], source=f"{configfile}: plugins")
        overrides = config.get("overrides")
    bench = resolve_benchmark(benchmark, overrides)
    return {"benchmark": bench.name, "file": str(bench.path), **bench.protocol.as_json()}
