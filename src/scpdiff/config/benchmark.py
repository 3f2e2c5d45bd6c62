"""Benchmark configurations (``benchmarks/NAME.yaml``), validated against ``benchmark.schema.yaml``.

A benchmark names everything one column group of Table 1 needs: the dataset and its root, the
resolution, the fixed prompt, the model paths, the evaluation segmenter, the priors to compare,
the mu grid, the DDIM steps and guidance scale, and the sample counts.

    bench = load_benchmark("toy")               # benchmarks/toy.yaml
    bench = load_benchmark("path/to/my.yaml")
    bench["resolution"], bench.latent_shape
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("benchmark.schema.yaml")
LATENT_FACTOR = 8
LATENT_CHANNELS = 4


class Benchmark(dict):
    """A validated benchmark config (a plain dict) with a few derived values."""

    path: Path | None = None

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def resolution(self) -> tuple[int, int]:
        h, w = self["resolution"]
        return int(h), int(w)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h, w = self.resolution
        return (LATENT_CHANNELS, h // LATENT_FACTOR, w // LATENT_FACTOR)

    @property
    def is_toy(self) -> bool:
        return self["models"]["base"] == "toy"


def benchmark_search_path() -> list[Path]:
    env = os.environ.get("SCPDIFF_BENCHMARKS")
    paths = [Path(p) for p in env.split(os.pathsep)] if env else []
    return paths + [Path.cwd() / "benchmarks", Path(__file__).resolve().parents[3] / "benchmarks"]


def resolve_benchmark_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"benchmark file {p} does not exist")
        return p
    for d in benchmark_search_path():
        cand = d / f"{name_or_path}.yaml"
        if cand.is_file():
            return cand
    raise ConfigError(
        f"no benchmark named {name_or_path!r}: looked for {name_or_path}.yaml in "
        + ", ".join(str(d) for d in benchmark_search_path())
    )


def validate_benchmark(data: Any, source: str = "<config>") -> Benchmark:
    """Validate ``data`` against the schema; raise :class:`ConfigError` naming the file and key."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:5]:
            where = "/".join(str(x) for x in e.absolute_path) or "(top level)"
            lines.append(f"  {where}: {e.message}")
        raise ConfigError(f"{source}: invalid benchmark config:\n" + "\n".join(lines))
    bench = Benchmark(data)
    h, w = bench.resolution
    if h % LATENT_FACTOR or w % LATENT_FACTOR:
        raise ConfigError(f"{source}: resolution {h}x{w} must be a multiple of {LATENT_FACTOR}")
    if bench["sampling"].get("batch_size") is None:
        bench["sampling"]["batch_size"] = 8
    return bench


def load_benchmark(name_or_path: str | os.PathLike) -> Benchmark:
    path = resolve_benchmark_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    bench = validate_benchmark(data, source=str(path))
    bench.path = path
    return bench
