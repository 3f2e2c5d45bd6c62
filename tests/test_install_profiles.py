"""`scpdiff install-profiles`: the project's profiles linked into the user's Snakemake config folder
(where `snakemake --profile NAME` looks), never over a profile the user already has there."""

from __future__ import annotations

from pathlib import Path

import pytest

from scpdiff.cli import main
from scpdiff.config.profiles import install_profiles, user_profile_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_links_local_and_slurm_under_xdg_config_home(home, capsys):
    assert main(["install-profiles"]) == 0
    target = home / "xdg" / "snakemake"
    assert sorted(p.name for p in target.iterdir()) == ["local", "slurm"]  # not the workflow profile
    for name in ("local", "slurm"):
        link = target / name
        assert link.is_symlink() and link.resolve() == (REPO / "profiles" / name).resolve()
        assert (link / "config.yaml").read_text() == (REPO / "profiles" / name / "config.yaml").read_text()
    assert "installed profile 'slurm'" in capsys.readouterr().out
    # a second run changes nothing and says so
    assert main(["install-profiles"]) == 0
    assert "profile 'local' already installed" in capsys.readouterr().out


def test_an_existing_profile_of_the_same_name_is_left_alone(home, capsys):
    mine = home / "xdg" / "snakemake" / "slurm"
    mine.mkdir(parents=True)
    (mine / "config.yaml").write_text("executor: slurm\njobs: 7\n")
    other = home / "xdg" / "snakemake" / "local"
    other.symlink_to(home, target_is_directory=True)  # someone else's link
    assert main(["install-profiles"]) == 0
    out = capsys.readouterr().out
    assert f"left {mine} as it is" in out and "--profile " + str((REPO / "profiles" / "slurm").resolve()) in out
    assert (mine / "config.yaml").read_text() == "executor: slurm\njobs: 7\n" and not mine.is_symlink()
    assert other.resolve() == home.resolve()


def test_without_xdg_config_home_the_folder_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_profile_dir() == tmp_path / ".config" / "snakemake"
    done = install_profiles()
    assert {d.outcome for d in done} == {"linked"} and (tmp_path / ".config" / "snakemake" / "local").is_symlink()


def test_a_folder_without_profiles_is_an_error(tmp_path, capsys):
    assert main(["install-profiles", "--profiles", str(tmp_path), "--target", str(tmp_path / "t")]) == 1
    assert f"{tmp_path}: no Snakemake profile" in capsys.readouterr().err
