"""scpdiff install-profiles: link profiles/{local,slurm} into the user's Snakemake config folder."""

from __future__ import annotations

import argparse

HELP = ("link the project's Snakemake profiles into $XDG_CONFIG_HOME/snakemake (~/.config/snakemake) "
        "so that `snakemake --profile slurm` works; an existing profile of the same name is left alone")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", default=None, help="folder of profiles to install (default: the project's profiles/)")
    p.add_argument("--target", default=None,
                   help="Snakemake's user profile folder (default: $XDG_CONFIG_HOME/snakemake or ~/.config/snakemake)")


def run(args) -> int:
    from ..config.profiles import install_profiles

    for done in install_profiles(args.profiles, args.target):
        print(done.message)
    return 0
