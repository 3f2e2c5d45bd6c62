"""The Snakemake profiles: every key is an option of the installed Snakemake (and its SLURM
plugin), and profiles/local really serialises GPU rules while CPU rules run beside them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake_options() -> str:
    proc = subprocess.run([*SNAKEMAKE, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def snakemake_help() -> str:
    return _snakemake_options()


@pytest.mark.parametrize("profile", ["local", "slurm", "default"])
def test_profile_keys_are_snakemake_options(profile, snakemake_help):
    config = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    if profile == "slurm" and "--slurm-requeue" not in snakemake_help:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install 'scpdiff[slurm]')")
    unknown = [key for key in config if f"--{key}" not in snakemake_help]
    assert not unknown, f"profiles/{profile}/config.yaml: not Snakemake options: {unknown}"


def test_slurm_profile_asks_gpus_only_through_the_gpu_resource():
    config = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert config["executor"] == "slurm"
    assert "gpu=0" in config["default-resources"]  # CPU rules get no --gpus
    assert config["latency-wait"] >= 60 and config["retries"] >= 1 and config["rerun-incomplete"]


SERIALISE = textwrap.dedent(
    """
    rule all:
        input: "gpu_a.txt", "gpu_b.txt", "cpu.txt"

    rule gpu:
        output: "gpu_{name}.txt"
        resources: gpu=1
        shell: "date +%s.%N > {output}; sleep 3; date +%s.%N >> {output}"

    rule cpu:
        output: "cpu.txt"
        shell: "date +%s.%N > {output}; sleep 3; date +%s.%N >> {output}"
    """
)


def _interval(path: Path) -> tuple[float, float]:
    start, end = map(float, path.read_text().split())
    return start, end


def test_local_profile_serialises_gpu_rules(tmp_path):
    (tmp_path / "Snakefile").write_text(SERIALISE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [*SNAKEMAKE, "--profile", str(REPO / "profiles" / "local"), "--cores", "3", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b, c = (_interval(tmp_path / f) for f in ("gpu_a.txt", "gpu_b.txt", "cpu.txt"))
    assert a[1] <= b[0] or b[1] <= a[0], f"GPU rules overlapped: {a} {b}"
    # the CPU rule was not held back by the GPU limit: it ran beside one of the GPU rules
    assert min(a[1], c[1]) > max(a[0], c[0]) or min(b[1], c[1]) > max(b[0], c[0])
