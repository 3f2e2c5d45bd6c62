"""Configuration: benchmark files (``benchmarks/NAME.yaml``) and the workflow config (``config/config.yaml``).

Owns reading YAML and validating it against its JSON schema (:mod:`.yaml_files`, one loader for
every file), a benchmark's ``extends:`` chain, and the resolved :class:`Benchmark` every stage
receives, and what a benchmark asks the workflow to run (:mod:`.settings`: generation settings and
shard counts, shared by the ``Snakefile`` and ``scpdiff plan``). May import :mod:`scpdiff.errors`, :mod:`scpdiff.utils`, and the registries of
:mod:`scpdiff.priors` (to check that a benchmark's priors exist); no pipeline stage.

    bench = load_benchmark("toy")               # benchmarks/toy.yaml
    bench["resolution"], bench.latent_shape
"""

from .benchmark import Benchmark, load_benchmark, resolve_benchmark_path, validate_benchmark

__all__ = ["Benchmark", "load_benchmark", "resolve_benchmark_path", "validate_benchmark"]
