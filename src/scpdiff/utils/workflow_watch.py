"""A workflow job stops when the Snakemake process that started it is gone.

``kill -9`` of Snakemake (an impatient user, an OOM killer, a lost login session) leaves its job
processes running: they would keep a CPU or GPU busy for an output no Snakemake run is waiting
for, and race the resumed run that regenerates it. The ``Snakefile`` therefore exports
``SCPDIFF_WORKFLOW_PID=host:pid`` (its own process); every ``scpdiff`` command started with it
watches that process from a daemon thread and, once it has disappeared, stops itself with
SIGTERM, turned into ``SystemExit`` so the atomic writers remove their temporaries
(:mod:`scpdiff.utils.files`). A job on another host (a SLURM job runs its own Snakemake, which
sets the variable again) or a command run by hand has nothing to watch.

    watch_workflow()                      # what scpdiff.cli does first
    orphaned_jobs()                       # [(pid, workflow pid)] of jobs whose Snakemake is gone
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

WORKFLOW_PID_ENV = "SCPDIFF_WORKFLOW_PID"
POLL_SECONDS = 0.5
EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a job stopped by SIGTERM


def workflow_tag(pid: int | None = None) -> str:
    """The variable's value for process ``pid`` (default: this one) on this host."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _local_pid(tag: str | None) -> int | None:
    """The pid in ``tag`` when it names a process on this host, else None."""
    if not tag or ":" not in tag:
        return None
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return int(pid)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed but not yet reaped by its parent) is gone for our purpose
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def wait_until_gone(pid: int, timeout: float, poll: float = 0.05) -> bool:
    """Wait up to ``timeout`` seconds for process ``pid`` to end; whether it has."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def _stop(signum, frame):  # pragma: no cover - runs in the stopped process
    raise SystemExit(EXIT_CODE)


def watch_workflow(environ=os.environ, poll: float = POLL_SECONDS) -> threading.Thread | None:
    """Start the watcher when this process is a job of a Snakemake run on this host (module doc)."""
    pid = _local_pid(environ.get(WORKFLOW_PID_ENV))
    if pid is None or pid == os.getpid() or threading.current_thread() is not threading.main_thread():
        return None
    signal.signal(signal.SIGTERM, _stop)

    def watch() -> None:
        while alive(pid):
            time.sleep(poll)
        print(f"scpdiff: the Snakemake process {pid} that started this job is gone; stopping "
              "(its temporary files are removed; resume the workflow to redo this job)", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="scpdiff-workflow-watch", daemon=True)
    thread.start()
    return thread


def processes() -> list[Path]:
    """``/proc/PID`` of every other process (Linux; elsewhere none, and the callers find nothing)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    return [e for e in proc.iterdir() if e.name.isdigit() and int(e.name) != os.getpid()]


def orphaned_jobs() -> list[tuple[int, int]]:
    """``(pid, workflow pid)`` of this user's processes started by a Snakemake run that is gone (Linux)."""
    found = []
    for entry in processes():
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        tag = next((v.split(b"=", 1)[1].decode(errors="replace") for v in env
                    if v.startswith(WORKFLOW_PID_ENV.encode() + b"=")), None)
        pid = _local_pid(tag)
        if pid is not None and not alive(pid) and alive(int(entry.name)):
            found.append((int(entry.name), pid))
    return found
