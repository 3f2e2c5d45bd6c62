"""scpdiff resume: continue a workflow run after Snakemake itself was killed (:mod:`scpdiff.config.resume`)."""

from __future__ import annotations

import argparse

HELP = "resume the Snakemake workflow after a hard kill: stale lock, 'incomplete' markers and orphaned jobs handled"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cores", default="all", help="Snakemake --cores for the resumed run (default all)")
    p.add_argument("--snakemake", help="the snakemake executable (default: the one beside this Python, else PATH)")
    p.add_argument("--wait", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the killed run's jobs to stop before they are sent SIGTERM")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                   help="the rest of the original command line after '--' (e.g. -- --configfile site.yaml TARGET)")


def run(args) -> int:
    from ..config.resume import resume_workflow

    extra = args.snakemake_args[1:] if args.snakemake_args[:1] == ["--"] else args.snakemake_args
    return resume_workflow(extra, cores=args.cores, snakemake=args.snakemake, wait_s=args.wait)
