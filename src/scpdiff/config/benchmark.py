"""Benchmark configurations (``benchmarks/NAME.yaml``), validated against ``benchmark.schema.yaml``.

A benchmark names everything one column group of Table 1 needs: the dataset and its root, the
resolution, the fixed prompt, the model paths, the evaluation segmenter, the priors to compare,
the mu grid, the DDIM steps and guidance scale, and the sample counts.

    bench = load_benchmark("toy")               # benchmarks/toy.yaml
    bench = load_benchmark("path/to/my.yaml")
    bench["resolution"], bench.latent_shape

A file may start from another one: ``extends: toy`` (a benchmark name, or a YAML path relative to
the file) loads that benchmark and deep-merges this file onto it, a ``null`` dropping an inherited
key (JSON Merge Patch, RFC 7396). ``benchmarks/smoke.yaml`` is the toy benchmark so expressed, so a
change to the toy reaches the smoke run. Chains are followed; a cycle is an error naming the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .protocol import Protocol, knob_origins, protocol_json_schema, resolve_protocol
from .training_options import check_training_options
from .yaml_files import check_schema, deep_merge, load_schema, read_mapping

SCHEMA_PATH = Path(__file__).with_name("benchmark.schema.yaml")
LATENT_FACTOR = 8  # SD's VAE (and the toy VAE's default, 4 levels): 3 downsamplings
LATENT_CHANNELS = 4
EXTENDS = "extends"  # the key naming the benchmark a file starts from


class Benchmark(dict):
    """A validated benchmark config (a plain dict) with a few derived values."""

    path: Path | None = None
    source: str = ""  # where it was read from (its extends chain, overrides), for error messages

    _protocol: Protocol | None = None

    @property
    def protocol(self) -> Protocol:
        """The resolved protocol (:mod:`.protocol`): every knob's value and where it came from."""
        if self._protocol is None:
            self._protocol = resolve_protocol(self.get("protocol"), self["dataset"]["kind"], self.name)
        return self._protocol

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def resolution(self) -> tuple[int, int]:
        h, w = self["resolution"]
        return int(h), int(w)

    @property
    def latent_factor(self) -> int:
        """How many image pixels one latent pixel spans per side: SD's 8, or for a toy benchmark
        ``2 ** (len(training.vae.block_out_channels) - 1)`` (one downsampling between levels, as
        diffusers' ``AutoencoderKL`` and its pipelines' ``vae_scale_factor``)."""
        channels = ((self.get("training") or {}).get("vae") or {}).get("block_out_channels") if self.is_toy else None
        return 2 ** (len(channels) - 1) if channels else LATENT_FACTOR

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        h, w = self.resolution
        f = self.latent_factor
        if h % f or w % f:
            raise ConfigError(f"{self.path or self.name}: resolution {h}x{w} is not a multiple of the VAE's latent factor {f}")
        return (LATENT_CHANNELS, h // f, w // f)

    @property
    def sampling_seeds(self) -> list[int]:
        """Base seeds every FID/mIoU setting is generated under; the first is the primary one."""
        cfg = self["sampling"]
        return [int(x) for x in cfg["seeds"]] if cfg.get("seeds") else [int(cfg.get("seed", 0))]

    @property
    def uncertainty(self) -> dict:
        """Bootstrap options (``resamples``, ``seed``, ``level``) with the defaults filled in."""
        return {"resamples": 1000, "seed": 0, "level": 0.95, **(self.get("uncertainty") or {})}

    @property
    def is_toy(self) -> bool:
        return self["models"]["base"] == "toy"


def benchmark_search_path() -> list[Path]:
    env = os.environ.get("SCPDIFF_BENCHMARKS")
    paths = [Path(p) for p in env.split(os.pathsep)] if env else []
    return paths + [Path.cwd() / "benchmarks", Path(__file__).resolve().parents[3] / "benchmarks"]


def resolve_benchmark_path(name_or_path: str | os.PathLike, near: Path | None = None) -> Path:
    """The file of a benchmark given by name (``benchmarks/NAME.yaml`` on the search path) or path.

    ``near``: the folder of a file that names this one under ``extends``; a relative path is taken
    from there, and a name is looked for there first.
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if near is not None and not p.is_absolute():
            p = near / p
        if not p.is_file():
            raise ConfigError(f"benchmark file {p} does not exist")
        return p
    folders = ([near] if near is not None else []) + benchmark_search_path()
    for d in folders:
        cand = d / f"{name_or_path}.yaml"
        if cand.is_file():
            return cand
    raise ConfigError(
        f"no benchmark named {name_or_path!r}: looked for {name_or_path}.yaml in "
        + ", ".join(str(d) for d in folders)
    )


def read_benchmark(name_or_path: str | os.PathLike) -> tuple[dict, list[Path]]:
    """The unvalidated data of a benchmark file with its ``extends`` chain applied, and that chain
    (the file itself first, then the file it extends, and so on)."""
    chain = [resolve_benchmark_path(name_or_path)]
    layers = []
    while True:
        data = read_mapping(chain[-1], "a benchmark file")
        parent = data.pop(EXTENDS, None)
        layers.append(data)
        if parent is None:
            break
        where = f"{chain[-1]}: {EXTENDS}"
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f"{where}: expected a benchmark name or a YAML path, got {parent!r}")
        try:
            base = resolve_benchmark_path(parent, near=chain[-1].parent)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if any(base.resolve() == p.resolve() for p in chain):
            raise ConfigError(f"{where}: extends form a cycle: " + " -> ".join(str(p) for p in [*chain, base]))
        chain.append(base)
    data = layers.pop()
    for layer in reversed(layers):
        data = deep_merge(data, layer, null_deletes=True)
    return data, chain


def benchmark_source(chain: list[Path]) -> str:
    """How messages name a benchmark read by :func:`read_benchmark`: its file, and what it extends."""
    return str(chain[0]) + (f" (extends {' -> '.join(str(p) for p in chain[1:])})" if len(chain) > 1 else "")


def benchmark_schema() -> dict:
    """The benchmark schema, its ``protocol`` section built from the knob table (:mod:`.protocol`)."""
    schema = load_schema(SCHEMA_PATH, "benchmark")
    schema["properties"]["protocol"] = protocol_json_schema()
    return schema


def protocol_layers(chain: list[Path]) -> list[tuple[str, dict | None]]:
    """(file, its own ``protocol:`` section) along an ``extends`` chain, the file itself first; a
    file's ``mu.table`` counts as its ``table_mu`` knob (:func:`layer_protocol`)."""
    out = []
    for p in chain:
        data = read_mapping(p, "a benchmark file")
        out.append((f"benchmark file {p}", layer_protocol(data)))
    return out


def layer_protocol(data: dict) -> dict | None:
    """The ``protocol:`` section one benchmark file or override layer writes, its ``mu.table`` (the
    older spelling of Table 1's mu, which every benchmark file had) counted as ``table_mu``."""
    section, mu = data.get("protocol"), data.get("mu")
    table = mu.get("table") if isinstance(mu, dict) else None
    if table is None or not isinstance(section, (dict, type(None))):
        return section or None
    return {"table_mu": table, **(section or {})}


def protocol_with_table_mu(data: dict, source: str) -> dict | None:
    """The benchmark's ``protocol:`` section with ``mu.table``, when written, as its ``table_mu``
    knob: the one value Tables 1-3 run at (:data:`.protocol.KNOBS`, ``table_mu``). Written in both
    places with different values is an error naming both keys."""
    section = data.get("protocol")
    table = (data.get("mu") or {}).get("table")
    if table is None:
        return section
    section = dict(section or {})
    if "table_mu" in section and float(section["table_mu"]) != float(table):
        raise ConfigError(f"{source}: mu.table ({table}) and protocol/table_mu ({section['table_mu']}) "
                          "disagree: Table 1's mu is one value; write one of them")
    section["table_mu"] = table
    return section


def validate_benchmark(data: Any, source: str = "<config>", origins: dict[str, str] | None = None) -> Benchmark:
    """Validate ``data`` against the schema; raise :class:`ConfigError` naming the file and key.

    The ``protocol:`` section is resolved (preset plus knobs; ``origins``: which file or config
    set each knob) and written back with every knob explicit, so the resolved benchmark file the
    workflow's jobs read resolves to the same values.
    """
    check_schema(data, benchmark_schema(), source, "benchmark config")
    bench = Benchmark(data)
    proto = resolve_protocol(protocol_with_table_mu(data, source), data["dataset"]["kind"], source, origins)
    bench["protocol"] = proto.section()
    bench._protocol = proto
    # every stage reads Table 1's mu here: the knob's resolved value (preset, mu.table or table_mu)
    bench["mu"] = {"table": proto["table_mu"], **{k: v for k, v in bench["mu"].items() if k != "table"}}
    h, w = bench.resolution
    if h % LATENT_FACTOR or w % LATENT_FACTOR:
        raise ConfigError(f"{source}: resolution {h}x{w} must be a multiple of {LATENT_FACTOR}")
    check_training_options(bench, source)
    seeds, seed = bench["sampling"].get("seeds"), bench["sampling"].get("seed")
    if seeds and seed is not None and int(seed) != int(seeds[0]):
        raise ConfigError(f"{source}: sampling.seed {seed} differs from sampling.seeds[0] {seeds[0]} "
                          "(the first of the seeds is the primary one; drop sampling.seed or make them equal)")
    if bench["sampling"].get("batch_size") is None:
        bench["sampling"]["batch_size"] = 8
    return bench


def load_benchmark(name_or_path: str | os.PathLike) -> Benchmark:
    data, chain = read_benchmark(name_or_path)
    origins = knob_origins(protocol_layers(chain))
    bench = validate_benchmark(data, source=benchmark_source(chain), origins=origins)
    bench.path = chain[0]
    return bench
