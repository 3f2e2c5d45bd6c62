"""environment.yml (conda, for clusters) mirrors pyproject.toml's dependencies exactly."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> tuple[str, str]:
    """('torch', '<2.15,>=2.4'): the canonical name and the sorted specifier set."""
    req = requirement.split(";")[0].replace(" ", "")
    m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?(.*)$", req)
    assert m, requirement
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s for s in m.group(3).split(",") if s))
    return name, spec


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_environment_yml_pins_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    expected = dict(_normalise(r) for r in project["dependencies"])
    got = dict(_normalise(r) for r in pip)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing and not extra, f"environment.yml lacks {missing}, has extra {extra}"
    differ = {n: (expected[n], got[n]) for n in expected if expected[n] != got[n]}
    assert not differ, f"version ranges differ (pyproject, environment.yml): {differ}"


def test_environment_yml_python_matches_requires_python():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "", 1).replace(" ", "") == _pyproject()["project"]["requires-python"]


def test_normalise_compares_names_and_ranges_not_spelling():
    assert _normalise("Torch_Fidelity >=0.3, <0.4") == _normalise("torch-fidelity<0.4,>=0.3")
    assert _normalise("pandas>=2") != _normalise("pandas>=2,<3")
