"""Resuming a workflow run after Snakemake itself was killed (``scpdiff resume``, ``make resume``).

A hard kill of Snakemake (``kill -9``, a lost node) leaves three things behind, and a plain rerun
trips over each: its lock (``LockException``), "incomplete" markers on the outputs of the jobs it
was running (``IncompleteFilesException``, even for outputs that did finish), and the job processes
themselves (they stop on their own: :mod:`scpdiff.utils.workflow_watch`). Every output is written
atomically (:mod:`scpdiff.utils.files`), so an output with its final name is complete. The resume
therefore:

1. refuses while a Snakemake process still runs in the working directory;
2. waits for the orphaned jobs of a dead run to stop (SIGTERM after ``wait_s``);
3. removes the stale lock (``snakemake --unlock``);
4. asks Snakemake which outputs it holds for incomplete (a dry run) and marks those that exist as
   complete (``snakemake --cleanup-metadata``); missing ones are simply redone;
5. runs the workflow (``snakemake --cores N ...``): only missing outputs and what depends on them.

After it, a plain ``snakemake`` (and ``--report``) works again.

    resume_workflow(["--configfile", "site.yaml"], cores="all")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from ..errors import ScpdiffError
from ..utils.workflow_watch import orphaned_jobs, processes

INCOMPLETE_HEADER = "Incomplete files:"  # snakemake.exceptions.IncompleteFilesException
NO_METADATA = "because the metadata was not present"  # snakemake.workflow, --cleanup-metadata


def _workdir(args: Sequence[str]) -> Path:
    """The working directory Snakemake will use: ``-d``/``--directory`` or the current one."""
    args = list(args)
    for i, a in enumerate(args):
        if a in ("-d", "--directory") and i + 1 < len(args):
            return Path(args[i + 1]).resolve()
        if a.startswith("--directory="):
            return Path(a.split("=", 1)[1]).resolve()
    return Path.cwd().resolve()


def live_snakemake(workdir: Path) -> list[int]:
    """Pids of this user's Snakemake processes running in ``workdir`` (Linux ``/proc``; else [])."""
    found = []
    for entry in processes():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd")).resolve()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and cwd == workdir and any(Path(c.decode(errors="replace")).name == "snakemake" for c in cmd[:2]):
            found.append(int(entry.name))
    return found


def incomplete_outputs(text: str) -> list[str]:
    """The paths Snakemake lists under "Incomplete files:" in its error message."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == INCOMPLETE_HEADER) + 1
    except StopIteration:
        return []
    out = []
    for line in lines[start:]:
        if not line.strip():
            break
        out.append(line.strip())
    return out


def wait_for_orphans(wait_s: float, log=print) -> None:
    """Wait until no job of a dead Snakemake run is left; SIGTERM the rest after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    jobs = orphaned_jobs()
    if jobs:
        log(f"resume: waiting for {len(jobs)} job process(es) of the killed run to stop: {[p for p, _ in jobs]}")
    while jobs and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs = orphaned_jobs()
    for pid, _ in jobs:
        log(f"resume: stopping job process {pid} of the killed run")
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    while orphaned_jobs() and time.monotonic() < deadline + 30:
        time.sleep(0.2)


def resume_workflow(snakemake_args: Sequence[str], cores: str = "all", snakemake: str | None = None,
                    wait_s: float = 60.0, log=print) -> int:
    """Resume the run described by ``snakemake_args`` (module doc); return Snakemake's exit code."""
    exe = snakemake or str(Path(sys.executable).with_name("snakemake"))
    if not Path(exe).exists():
        exe = "snakemake"
    args = list(snakemake_args)
    workdir = _workdir(args)
    live = live_snakemake(workdir)
    if live:
        raise ScpdiffError(f"{workdir}: Snakemake is still running there (pid {', '.join(map(str, live))}); "
                           "wait for it to finish or stop it before resuming")
    wait_for_orphans(wait_s, log)
    unlock = subprocess.run([exe, *args, "--unlock"], capture_output=True, text=True)
    if unlock.returncode != 0:
        raise ScpdiffError(f"snakemake --unlock failed in {workdir}:\n{(unlock.stdout + unlock.stderr)[-3000:]}")
    dry = subprocess.run([exe, *args, "-n", "--cores", str(cores)], capture_output=True, text=True)
    if dry.returncode != 0:
        text = dry.stdout + dry.stderr
        marked = incomplete_outputs(text)
        if not marked:
            raise ScpdiffError(f"snakemake cannot plan the resumed run in {workdir}:\n{text[-3000:]}")
        finished = [f for f in marked if (workdir / f).exists()]
        log(f"resume: {len(finished)} output(s) finished before the kill are kept (written atomically), "
            f"{len(marked) - len(finished)} will be redone")
        if finished:
            clean = subprocess.run([exe, *args, "--cleanup-metadata", *finished], capture_output=True, text=True)
            # a job killed before Snakemake recorded it has no metadata: the marker is removed all the
            # same and Snakemake only reports the missing record
            if clean.returncode != 0 and NO_METADATA not in clean.stdout + clean.stderr:
                raise ScpdiffError(f"snakemake --cleanup-metadata failed:\n{(clean.stdout + clean.stderr)[-3000:]}")
    return subprocess.run([exe, *args, "--cores", str(cores)]).returncode
