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
import re
from pathlib import Path
from typing import Any

import yaml

from .benchmark import (Benchmark, benchmark_source, layer_protocol, protocol_layers, read_benchmark,
                        validate_benchmark)
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
    data = _command_line_booleans(data, schema)
    check_schema(data, schema, source, "workflow config")
    config = copy.deepcopy(data)
    for key, spec in schema.get("properties", {}).items():
        if key not in config and "default" in spec:
            config[key] = copy.deepcopy(spec["default"])
    return config


def _command_line_booleans(data: Any, schema: dict) -> Any:
    """``--config forkserver=false`` as YAML reads it: Snakemake turns only ``True``/``False`` into
    booleans and leaves ``false`` a string, which a boolean key would reject."""
    if not isinstance(data, dict):
        return data
    words = {"true": True, "false": False}
    booleans = {key for key, spec in schema.get("properties", {}).items() if spec.get("type") == "boolean"}
    return {key: words.get(value.strip().lower(), value) if key in booleans and isinstance(value, str) else value
            for key, value in data.items()}


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


def resolve_benchmark(entry: str, overrides: dict | None = None, check_priors: bool = True) -> Benchmark:
    """Load one benchmark (a name under benchmarks/ or a YAML path, its ``extends`` applied), apply
    its overrides, validate it and (``check_priors``) check that every prior it compares is
    registered; the workflow checks later, when it knows the priors its rules write
    (:func:`check_benchmark_priors`)."""
    data, chain = read_benchmark(entry)
    name = data.get("name", str(entry))
    over = (overrides or {}).get(name, (overrides or {}).get(str(entry)))
    source = benchmark_source(chain)
    layers = protocol_layers(chain)
    if over:
        data = deep_merge(data, over)
        source += f" (with the workflow config's overrides for {name!r})"
        if layer_protocol(over):
            layers.insert(0, (f"workflow config overrides for {name!r}", layer_protocol(over)))
    bench = validate_benchmark(data, source=source, origins=knob_origins(layers))
    bench.source = source
    bench.path = chain[0]
    if check_priors:
        check_benchmark_priors({bench.name: bench}, {})
    return bench


def check_benchmark_priors(benches: dict[str, Benchmark], rule_made: dict[str, set[str]],
                           source: str = "") -> None:
    """Every prior a benchmark compares is either a registered variant or a prior file some rule of
    the config's ``extra_rules`` writes (``rule_made``: benchmark name -> prior names); a rule may
    not take the name of a registered variant (the workflow fits that one itself)."""
    from ..priors import available, get_prior_class

    where = f"{source}: " if source else ""
    for name, bench in benches.items():
        made = rule_made.get(name, set())
        for prior in bench["priors"]:
            if prior in made:
                if prior in available():
                    raise ConfigError(
                        f"{where}extra_rules: a rule writes the prior file of {prior!r}, a registered variant "
                        f"the workflow fits itself; give the rule's prior another name")
                continue
            try:
                get_prior_class(prior)
            except ScpdiffError as exc:
                rules = f" nor written by a rule of extra_rules (they write {sorted(made)})" if made else (
                    " nor written by a rule listed under extra_rules")
                raise ConfigError(f"{where}{bench.source}: priors: {exc}; {prior!r} is not registered{rules}") from None


def rule_made_priors(outputs, work_dir: str, benches) -> dict[str, set[str]]:
    """Which benchmark gets which prior from a user rule: ``outputs`` are output file patterns of the
    ``extra_rules`` rules; ``{work_dir}/{bench}/priors/NAME.safetensors`` gives NAME to every
    benchmark, ``{work_dir}/BENCH/priors/NAME.safetensors`` to BENCH only."""
    pattern = re.compile(
        rf"^{re.escape(os.path.normpath(work_dir))}/(?P<bench>[^/]+)/priors/(?P<name>[A-Za-z0-9_]+)\.safetensors$")
    made: dict[str, set[str]] = {b: set() for b in benches}
    for out in outputs:
        m = pattern.match(os.path.normpath(str(out)))
        if m is None:
            continue
        for bench in benches if m["bench"] == "{bench}" else [m["bench"]]:
            if bench in made:
                made[bench].add(m["name"])
    return made


def resolve_extra_rules(config: dict, source: str = "workflow config") -> list[str]:
    """The ``extra_rules`` files as absolute paths (relative ones: to the working directory)."""
    paths = []
    for entry in config.get("extra_rules") or []:
        path = Path(entry).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{source}: extra_rules: {entry!r} is not a file ({path})")
        paths.append(str(path))
    return paths


def resolve_benchmarks(config: dict, source: str = "workflow config", check_priors: bool = True) -> dict[str, Benchmark]:
    """Every benchmark the config runs, by name; overrides must name one of them."""
    benches: dict[str, Benchmark] = {}
    for entry in config["benchmarks"]:
        bench = resolve_benchmark(entry, config.get("overrides"), check_priors=check_priors)
        if bench.name in benches:
            raise ConfigError(f"{source}: benchmarks: {bench.name!r} is listed twice")
        benches[bench.name] = bench
    unknown = sorted(set(config.get("overrides") or {}) - set(benches) - set(config["benchmarks"]))
    if unknown:
        raise ConfigError(f"{source}: overrides for {unknown} name no benchmark in 'benchmarks' {sorted(benches)}")
    return benches


GENERATED_DATASETS = ("toy",)  # dataset kinds that prepare-data writes at dataset.root


def workflow_keys() -> set[str]:
    """Top-level keys of a workflow config (its schema's properties)."""
    return set(load_schema(SCHEMA_PATH, "workflow config").get("properties", {}))


def check_input_paths(bench: Benchmark, source: str) -> None:
    """What ``validate-config`` adds to the schema: the files a run will read exist now.

    The dataset root must be a folder (except for a generated dataset, written by ``prepare-data``);
    a base model given as a folder must be a diffusers folder and a segmenter checkpoint must exist,
    so a long run does not fail at its first job. Relative paths are taken from the working
    directory, as the jobs take them.
    """
    from ..models.paths import resolve_base_model

    d = bench["dataset"]
    if d["kind"] not in GENERATED_DATASETS and not Path(d["root"]).is_dir():
        raise ConfigError(f"{source}: dataset.root {d['root']} is not a folder (from {Path.cwd()}); "
                          "point it at the dataset (or use the workflow config's overrides)")
    base = bench["models"].get("base")
    if base and base != "toy":
        try:
            resolve_base_model(base)  # a diffusers folder, or a repo id in the local HF cache
        except ScpdiffError as exc:
            raise ConfigError(f"{source}: models.base: {exc}") from None
    checkpoint = (bench.get("segmenter") or {}).get("checkpoint")
    if checkpoint and not Path(checkpoint).exists():
        raise ConfigError(f"{source}: segmenter.checkpoint {checkpoint} does not exist (from {Path.cwd()})")


def validate_config_file(file: str, kind: str = "auto", check_paths: bool = True) -> list[str]:
    """``scpdiff validate-config``: check a benchmark file (or name) or a workflow config with its
    benchmarks, overrides, plugins and input paths; return one "ok" line per benchmark.

    ``kind="auto"``: a file with any top-level key of the workflow config (``benchmarks``,
    ``overrides``, ``work_dir``, ...) is a workflow config, never a benchmark.
    """
    from .benchmark import load_benchmark
    from .yaml_files import read_yaml

    path = Path(file)
    data = read_yaml(path) if path.is_file() else None
    if kind == "auto":
        kind = "workflow" if isinstance(data, dict) and set(data) & workflow_keys() else "benchmark"
    if kind == "workflow":
        if not path.is_file():
            raise ConfigError(f"{path}: workflow config file does not exist")
        config = validate_workflow_config(data, source=str(path))
        import_plugins(config["plugins"], source=f"{path}: plugins")
        extra_rules = resolve_extra_rules(config, source=str(path))
        lines = []
        # priors written by the extra rules are known only once Snakemake reads those rules
        for name, bench in resolve_benchmarks(config, source=str(path), check_priors=not extra_rules).items():
            if check_paths:
                check_input_paths(bench, f"{path}: benchmark {name} ({bench.path})")
            lines.append(f"{path}: benchmark {name}: ok ({bench.path}; priors {', '.join(bench['priors'])}; "
                         f"protocol {bench.protocol.preset} {bench.protocol.hash})")
        if extra_rules:
            lines.append(f"{path}: extra_rules {', '.join(extra_rules)}: priors that are not registered must be "
                         "written by these rules (checked when snakemake reads them)")
        return lines
    bench = resolve_benchmark(file) if path.is_file() else load_benchmark(file)
    if check_paths:
        check_input_paths(bench, str(bench.path))
    return [f"{bench.path}: benchmark {bench.name}: ok (priors {', '.join(bench['priors'])}; "
            f"protocol {bench.protocol.preset} {bench.protocol.hash}: scpdiff protocol --benchmark {file})"]


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
    seg = bench["segmenter"]
    # the scorer's segmenter settings sit in the benchmark's `segmenter:` section, not in `protocol:`
    # (the official code has no evaluation code); shown here so one command shows what a run does
    segmenter = {"kind": seg["kind"], "backend": seg.get("backend") or "torch",
                 "normalization": seg.get("normalization"), "miou_average": seg.get("miou_average", "accumulated")}
    # the bootstrap's settings (`uncertainty:`) decide every interval the tables print
    return {"benchmark": bench.name, "file": str(bench.path), **bench.protocol.as_json(), "segmenter": segmenter,
            "uncertainty": bench.uncertainty}
