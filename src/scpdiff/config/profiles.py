"""The project's Snakemake profiles made available by name (``snakemake --profile slurm``).

Snakemake looks a bare profile name up in the working directory, then in the user's config folder
(``$XDG_CONFIG_HOME/snakemake``, by default ``~/.config/snakemake``) and the site's
(``/etc/xdg/snakemake``). :func:`install_profiles` links every profile under ``profiles/`` into the
user's folder, so ``--profile local`` and ``--profile slurm`` work from any directory, and edits to
``profiles/slurm/config.yaml`` (partition, account) take effect without reinstalling.

``profiles/default`` is not installed: it is the workflow profile Snakemake reads from beside the
``Snakefile`` on every run (``cores: all``, so a bare ``snakemake results/table1.tex`` runs).

A name already taken there (a profile the user keeps, e.g. from the Snakemake profile projects'
``cookiecutter``) is left as it is and reported; the project's profile stays reachable by its path.

    for report in install_profiles():     # what `scpdiff install-profiles` (and `make setup`) does
        print(report.message)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

PROFILES_DIR = Path(__file__).resolve().parents[3] / "profiles"
WORKFLOW_PROFILE = "default"  # read by Snakemake from profiles/default, never installed by name


def user_profile_dir(environ: dict | None = None) -> Path:
    """``$XDG_CONFIG_HOME/snakemake`` (``~/.config/snakemake`` when unset), where Snakemake looks
    up a profile name (platformdirs' ``user_config_dir`` on Linux)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "snakemake"


@dataclass(frozen=True)
class ProfileInstall:
    """What happened to one profile: ``linked``, ``present`` (our link is already there) or ``kept``
    (another profile of that name is there and was left alone)."""

    name: str
    source: Path
    target: Path
    outcome: str

    @property
    def message(self) -> str:
        if self.outcome == "linked":
            return f"installed profile {self.name!r}: {self.target} -> {self.source}"
        if self.outcome == "present":
            return f"profile {self.name!r} already installed: {self.target} -> {self.source}"
        return (f"left {self.target} as it is: a profile named {self.name!r} is already there; "
                f"use this project's with --profile {self.source}")


def _same_target(link: Path, source: Path) -> bool:
    try:
        return link.is_symlink() and link.resolve() == source.resolve()
    except OSError:
        return False


def install_profiles(profiles_dir: str | os.PathLike | None = None,
                     target_dir: str | os.PathLike | None = None) -> list[ProfileInstall]:
    """Link each ``profiles_dir/NAME/`` (one with a ``config.yaml``; not the workflow profile
    ``default``) as ``target_dir/NAME``.

    Never replaces or edits anything already at ``target_dir/NAME``.
    """
    source_dir = Path(profiles_dir) if profiles_dir is not None else PROFILES_DIR
    target = Path(target_dir) if target_dir is not None else user_profile_dir()
    profiles = sorted(p for p in source_dir.iterdir()
                      if (p / "config.yaml").is_file() and p.name != WORKFLOW_PROFILE) if source_dir.is_dir() else []
    if not profiles:
        raise ConfigError(f"{source_dir}: no Snakemake profile (a folder with config.yaml) to install")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot create the Snakemake profile folder ({exc})") from exc
    done = []
    for source in profiles:
        link = target / source.name
        source = source.resolve()
        if _same_target(link, source):
            outcome = "present"
        elif link.exists() or link.is_symlink():
            outcome = "kept"
        else:
            try:
                link.symlink_to(source, target_is_directory=True)
            except OSError as exc:
                raise ConfigError(f"{link}: cannot link the profile {source} there ({exc})") from exc
            outcome = "linked"
        done.append(ProfileInstall(source.name, source, link, outcome))
    return done
