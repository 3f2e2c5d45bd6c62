"""Fixtures shared by several test modules: the smoke study, run once per test session through the
real `snakemake` command with profiles/local, so that the workflow tests and the SLURM comparison
look at the same local run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def metric_cache_dir() -> str:
    # the offline metric weights are prepared once per machine (`scpdiff weights`), not per test run
    return os.environ.get("SCPDIFF_CACHE") or str(Path.home() / ".cache" / "scpdiff")


def snakemake_env() -> dict:
    # the rules call `scpdiff` from PATH, as in an activated environment
    return dict(os.environ, PATH=os.pathsep.join([str(SNAKEMAKE.parent), os.environ.get("PATH", "")]))


def smoke_command(workdir: Path, *args: str) -> list[str]:
    """`snakemake` on the repository's Snakefile with WORKDIR as working directory (data, work and
    results below it) and its `wf_config.yaml`."""
    return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(workdir / "wf_config.yaml"), *args]


def write_smoke_config(workdir: Path, cache_dir: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "wf_config.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": ["smoke"], "cache_dir": cache_dir}))
    return path


def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(smoke_command(workdir, *args), capture_output=True, text=True, timeout=timeout, cwd=workdir,
                         env=snakemake_env())
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    return res


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole smoke study, once per session, with profiles/local: its working directory.

    The log of the run is kept as WORKDIR/snakemake.log. SCPDIFF_SMOKE_WORKDIR=DIR reuses (and
    completes) a smoke run in DIR instead of starting a fresh one (a development shortcut).
    """
    reuse = os.environ.get("SCPDIFF_SMOKE_WORKDIR")
    workdir = Path(reuse) if reuse else tmp_path_factory.mktemp("smoke")
    write_smoke_config(workdir, metric_cache_dir())
    # --ignore-incomplete: every output is atomic, so an existing one is complete (see the kill test)
    res = run_snakemake(workdir, "--profile", str(REPO / "profiles" / "local"), "--cores", "2",
                        "--ignore-incomplete", timeout=3600)
    (workdir / "snakemake.log").write_text(res.stdout + res.stderr)
    return workdir


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch CPU thread (restored afterwards): the segmenter fixtures were made
    that way, and on a shared 2-core machine more threads only add contention."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
