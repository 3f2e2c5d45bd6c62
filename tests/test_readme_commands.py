"""The README's usage lines run as written, after the README's own set-up (`make setup`, which
installs the Snakemake profiles), in a folder laid out like a checkout, so that a renamed target,
profile or config key breaks the tests.

Every `snakemake` line of the README's bash blocks is run as a dry run (`-n`): a real run of any of
them is the toy study or needs a cluster; the smoke study (tests/test_workflow_smoke.py) runs the
same DAG for real. `scpdiff validate-config` and `scpdiff install-profiles` lines run as they are.
The files the README shows (blocks whose first line is `# PATH`) are written where it says, with
the site's data and model paths pointed at small fixtures in the official layouts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SCPDIFF = Path(sys.executable).with_name("scpdiff")
CHECKOUT = ("Snakefile", "workflow", "config", "benchmarks", "profiles")
FIXTURE_COUNTS = {"reference": 8, "fid_samples": 8, "diversity_maps": 2, "diversity_samples": 2, "shard_size": 4}


def readme_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def usage_lines() -> list[str]:
    """The commands of the README's bash blocks that this test runs, comments dropped."""
    lines = []
    for lang, body in readme_blocks():
        if lang != "bash":
            continue
        for line in body.splitlines():
            cmd = line.split(" #", 1)[0].strip()
            if cmd.startswith("snakemake ") and "--report" not in cmd:  # --report needs a finished study
                lines.append(cmd)
            elif cmd.startswith(("scpdiff validate-config", "scpdiff install-profiles")):
                lines.append(cmd)
    # a line and its `-n` twin are one dry run
    key = {line: frozenset(shlex.split(line)) | ({"-n"} if line.startswith("snakemake") else set()) for line in lines}
    return list({key[line]: line for line in reversed(lines)}.values())[::-1]


def readme_files() -> dict[str, str]:
    """Files the README shows: blocks whose first line is a comment naming a .yaml or .smk path."""
    files = {}
    for _, body in readme_blocks():
        first = body.splitlines()[0] if body.strip() else ""
        m = re.fullmatch(r"#\s*(\S+\.(?:yaml|smk))\s*", first)
        if m:
            files[m.group(1)] = body
    return files


def setup_commands() -> list[str]:
    """The scpdiff commands of the Makefile's `setup` recipe (what `make toy` / `make test` run)."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^setup:.*\n((?:\t.*\n)+)", text, flags=re.M).group(1)
    return [line.strip().replace("$(BIN)/", "") for line in recipe.splitlines() if "scpdiff" in line]


def _point_at_fixtures(config: dict, sandbox: Path) -> dict:
    """A README site config with its absolute folders moved into the sandbox and its real
    benchmarks' data, base model and segmenter pointed at fixtures (counts made small)."""
    for key in ("work_dir", "results_dir", "cache_dir"):
        if str(config.get(key, "")).startswith("/"):
            config[key] = str(sandbox / config[key].lstrip("/"))
    real = [b for b in config.get("benchmarks", []) if b in ("cityscapes", "ade20k", "cocostuff")]
    # the released-model benchmarks (`cityscapes-released` extends `cityscapes`, named `cityscapes_released`)
    released = {b.removesuffix("-released"): b.replace("-", "_") for b in config.get("benchmarks", [])
                if b.endswith("-released")}
    if real or released:
        from test_workflow_dryrun import _real_config

        fixtures = _real_config(sandbox / "fixtures", sorted(set(real) | set(released)), counts=FIXTURE_COUNTS)["overrides"]
        for dataset, name in released.items():
            over = fixtures.pop(dataset)
            release = sandbox / "fixtures" / "released" / dataset
            (release / "statistics").mkdir(parents=True, exist_ok=True)
            (release / "controlnet.ckpt").write_bytes(b"checkpoint")  # a dry run needs the files to exist only
            for kind in ("spatial", "categorical", "spatial_class"):
                (release / "statistics" / f"{dataset}_{kind}_mean_std.npy").write_bytes(b"npy")
            over["models"]["controlnet_checkpoint"] = str(release / "controlnet.ckpt")
            over["priors_from"] = {"official_stats": str(release / "statistics"), "name": dataset}
            fixtures[name] = over
        for name, over in fixtures.items():
            mine = config.setdefault("overrides", {}).setdefault(name, {})
            for section, values in over.items():
                mine[section] = {**(mine.get(section) or {}), **values} if isinstance(values, dict) else values
    return config


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A checkout-like folder after the README's set-up; (folder, environment)."""
    root = tmp_path_factory.mktemp("readme")
    checkout = root / "checkout"
    checkout.mkdir()
    for name in CHECKOUT:
        (checkout / name).symlink_to(REPO / name)
    env = dict(os.environ, XDG_CONFIG_HOME=str(root / "xdg"), HOME=str(root / "home"),
               PATH=os.pathsep.join([str(SNAKEMAKE.parent), os.environ.get("PATH", "")]))
    commands = setup_commands()
    assert "scpdiff install-profiles" in commands, "make setup no longer installs the profiles"
    for cmd in commands:
        res = subprocess.run(shlex.split(cmd), cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    for name, text in readme_files().items():
        path = root / name.lstrip("/") if name.startswith("/") else checkout / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = yaml.safe_load(text) if name.endswith(".yaml") else None
        path.write_text(yaml.safe_dump(_point_at_fixtures(data, root)) if isinstance(data, dict) else text)
    return checkout, env


def _as_run(cmd: str, checkout: Path) -> list[str]:
    args = shlex.split(cmd)
    # the README's absolute site files live under the sandbox root
    args = [str(checkout.parent / a.lstrip("/")) if a.startswith("/shared/") else a for a in args]
    if args[0] == "snakemake":
        args[0] = str(SNAKEMAKE)
        if "-n" not in args and "--dry-run" not in args:
            args.insert(1, "-n")
    else:
        args[0] = str(SCPDIFF)
    return args


def test_the_readme_shows_the_commands_the_study_is_used_by():
    lines = usage_lines()
    for expected in ("snakemake --cores all", "snakemake results/table1.tex", "snakemake results/mu_sweep.pdf",
                     "--profile slurm", "--profile local"):
        assert any(expected in line for line in lines), expected
    assert {"my_site.yaml", "/shared/scpdiff-site.yaml", "my_variants.yaml", "my_rules/priors.smk",
            "released.yaml"} <= set(readme_files())


def _check(cmd: str, checkout: Path, env: dict) -> str | None:
    """None when ``cmd`` ran as the README promises, else what went wrong."""
    res = subprocess.run(_as_run(cmd, checkout), cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        return f"exit {res.returncode}\n{out[-3000:]}"
    if cmd.startswith("snakemake"):
        if "This was a dry-run" not in out:
            return f"not a dry run\n{out[-2000:]}"
        missing = [a for a in shlex.split(cmd)[1:] if a.startswith("results/") and a not in out]
        if missing:
            return f"targets {missing} are not planned"
        if "--profile slurm" in cmd and not re.search(r"Using profiles? slurm", out):
            return "the installed slurm profile was not used"
    return None


def test_readme_commands_run_as_written(sandbox):
    checkout, env = sandbox
    # two at a time: each is mostly one Python process building the DAG
    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = dict(zip(usage_lines(), pool.map(lambda cmd: _check(cmd, checkout, env), usage_lines())))
    failed = {cmd: why for cmd, why in problems.items() if why}
    assert not failed, "\n\n".join(f"{cmd}: {why}" for cmd, why in failed.items())
