"""A fork server for the ``scpdiff`` jobs of a local Snakemake run: torch, diffusers and the metric
libraries imported once, every job a fork of that warm process.

On CPU a toy job's own work is seconds, and starting Python with torch, diffusers (which imports
``torch._dynamo``, transformers and scipy unconditionally) and torch-fidelity costs 3-9 s of CPU per
job: about a fifth of the toy DAG's CPU time and half the smoke's. A local run (``snakemake
--cores N``, no cluster executor, no conda or container deployment) therefore starts this server
from the ``Snakefile`` (``onstart``) and exports ``SCPDIFF_FORKSERVER=PATH`` (a Unix socket). The
``scpdiff`` command of each job, before it imports anything heavy, hands its arguments, working
directory, environment, umask and standard streams to the server and waits; the server forks, and
the child runs :func:`scpdiff.cli.main` exactly as the job's own process would:

- the job's environment replaces the server's, and the thread counts Snakemake exports
  (``OMP_NUM_THREADS``, ...) are applied to torch and to the BLAS pools (threadpoolctl), as a fresh
  process would read them at start-up, so the floats are the same;
- its output goes to the job's stdout/stderr (the rule's log), its exit status is the job's;
- SIGTERM/SIGINT/SIGHUP sent to the job are forwarded to the child; a job killed outright
  (SIGKILL) is seen by the child as its connection closing, and the child stops (SIGTERM: the
  atomic writers remove their temporaries);
- the server exits when the Snakemake process is gone, like every job
  (:mod:`scpdiff.utils.workflow_watch`).

Whenever the server cannot serve (not started yet while it imports, gone, another Python or another
scpdiff installation, a SLURM job, a machine with a CUDA device: CUDA does not survive a fork, and a
GPU job's start-up is small against its work), the command runs in its own process as before.
``forkserver: false`` in the workflow config turns it off.

    scpdiff.cli.main()  ->  delegate(argv)       # None: run here; else the forked job's exit status
    python -m scpdiff.utils.forkserver --socket PATH --workflow-pid PID   # what the Snakefile starts
"""

from __future__ import annotations

import argparse
import array
import gc
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path

SOCKET_ENV = "SCPDIFF_FORKSERVER"
ACCEPT_POLL_SECONDS = 0.5
MAX_MESSAGE = 1 << 20  # argv + environment of one job
# The libraries the workflow's jobs import (generation, training, scoring, plots). Our own modules
# are left to each job (cheap once these are in): a registry then holds what a fresh process's does.
PRELOAD = (
    "torch", "numpy", "scipy.linalg", "scipy.stats", "PIL.Image", "safetensors.torch",
    "torchvision", "torch_fidelity", "pytorch_msssim", "accelerate",
    "diffusers", "diffusers.models", "diffusers.schedulers",
    "diffusers.pipelines.controlnet.pipeline_controlnet",
    "transformers.models.clip.modeling_clip", "transformers.models.clip.tokenization_clip",
    "pandas", "matplotlib", "yaml", "jsonschema",
)


class Refused(Exception):
    """The server will not run this job (the client runs it itself)."""


# ----------------------------------------------------------------------------- wire format
# A message is a 4-byte length and a JSON object; the request carries the client's fds 0, 1, 2.

def _send(sock: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    data = struct.pack("!I", len(data)) + data
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int, fds: list[int]) -> bytes | None:
    buf = b""
    while len(buf) < n:
        data, ancdata, _flags, _addr = sock.recvmsg(n - len(buf), socket.CMSG_SPACE(3 * array.array("i").itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not data:
            return None
        buf += data
    return buf


def _recv(sock: socket.socket, fds: list[int] | None = None) -> dict | None:
    """The next message, or None when the peer has closed; passed descriptors land in ``fds``."""
    fds = [] if fds is None else fds
    head = _recv_exact(sock, 4, fds)
    if head is None:
        return None
    (size,) = struct.unpack("!I", head)
    if size > MAX_MESSAGE:
        raise Refused(f"message of {size} bytes")
    body = _recv_exact(sock, size, fds)
    return None if body is None else json.loads(body)


def installation() -> dict:
    """What must match between client and server: the Python environment and this package."""
    import scpdiff

    return {"prefix": os.path.realpath(sys.prefix), "version": list(sys.version_info[:3]),
            "package": os.path.realpath(os.path.dirname(scpdiff.__file__))}


# ----------------------------------------------------------------------------- client

def delegate(argv: list[str], environ=os.environ) -> int | None:
    """Run ``scpdiff ARGV`` as a fork of the server named by ``SCPDIFF_FORKSERVER``; its exit
    status, or None when there is no server to use (the caller runs the command itself)."""
    path = environ.get(SOCKET_ENV)
    if not path or environ.get("SLURM_JOB_ID"):  # a batch job's limits hold for its own processes only
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        umask = os.umask(0)
        os.umask(umask)
        request = {"argv": [sys.argv[0], *argv], "cwd": os.getcwd(), "env": dict(environ), "umask": umask,
                   "installation": installation()}
        _send(sock, request, fds=[0, 1, 2])
        reply = _recv(sock)
    except (OSError, ValueError, Refused):
        sock.close()
        return None
    if not reply or "pid" not in reply:
        sock.close()
        return None
    return _wait_for_job(sock, int(reply["pid"]))


def _wait_for_job(sock: socket.socket, pid: int) -> int:
    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    while True:
        try:
            reply = _recv(sock)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for other platforms
            continue
        except (OSError, ValueError, Refused):
            reply = None
            break
    sock.close()
    if reply and "exit" in reply:
        return int(reply["exit"])
    # the server went away before it could report: stop the job, and wait for it, so that no output
    # appears after this job has failed
    from .workflow_watch import wait_until_gone

    print(f"scpdiff: the fork server stopped while job {pid} ran; stopping it", file=sys.stderr, flush=True)
    forward(signal.SIGTERM, None)
    wait_until_gone(pid, 60)
    return 1


# ----------------------------------------------------------------------------- server

def preload(modules=PRELOAD) -> list[str]:
    """Import the jobs' libraries; the names that failed to import."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a job needing it imports it itself (and reports the error)
            failed.append(name)
    return failed


def cuda_present() -> bool:
    if "torch" not in sys.modules:
        return False  # nothing preloaded: nothing a fork could break
    return sys.modules["torch"].cuda.is_available()


def _exit_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal that ended the job."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class Server:
    """Accept job requests on ``path``; fork one child per job; report each child's exit status."""

    def __init__(self, path: str | os.PathLike, target: str = "scpdiff.cli:main", workflow_pid: int | None = None):
        self.path = str(path)
        self.target = target
        self.workflow_pid = workflow_pid
        self.jobs: dict[int, tuple[socket.socket, list[str]]] = {}
        self.installation = installation()
        self.listener: socket.socket | None = None
        self.stopping = False

    def serve(self) -> None:
        from .workflow_watch import alive

        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(tmp)
        self.listener.listen(64)
        os.replace(tmp, self.path)  # clients see the socket only once it accepts
        try:
            while not self.stopping:
                if self.workflow_pid is not None and not alive(self.workflow_pid):
                    break
                try:
                    ready, _, _ = select.select([self.listener], [], [], ACCEPT_POLL_SECONDS)
                except InterruptedError:  # pragma: no cover
                    ready = []
                if ready:
                    conn, _ = self.listener.accept()
                    self._start_job(conn)
                self._reap()
        finally:
            self.listener.close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._remove_start_directory()
            while self.jobs:  # report the jobs still running before going
                self._reap(block=True)

    def _remove_start_directory(self) -> None:
        """The folder :func:`start` made (its ``pid`` file names this process), which a workflow
        killed outright (SIGKILL: no onsuccess/onerror, so no :func:`stop`) would leave behind.
        Only that pid file goes, and the folder only if nothing else is in it."""
        directory = Path(self.path).parent
        try:
            if (directory / "pid").read_text().strip() == str(os.getpid()):
                (directory / "pid").unlink()
                directory.rmdir()
        except (OSError, ValueError):
            pass

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _reap(self, block: bool = False) -> None:
        while self.jobs:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.jobs.clear()
                return
            if pid == 0:
                return
            conn, argv = self.jobs.pop(pid, (None, []))
            if conn is not None:
                code = _exit_status(status)
                print(f"job {pid} exit {code}: scpdiff {' '.join(argv[1:2])}", flush=True)
                try:
                    _send(conn, {"exit": code})
                except OSError:
                    pass
                conn.close()
            if block:
                return

    def _start_job(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            conn.settimeout(10)
            request = _recv(conn, fds)
            conn.settimeout(None)
            if request is None or len(fds) != 3:
                raise Refused("incomplete request")
            if request.get("installation") != self.installation:
                raise Refused("another Python environment or scpdiff installation")
        except (OSError, ValueError, Refused) as exc:
            try:
                _send(conn, {"refused": str(exc)})
            except OSError:
                pass
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        # Everything the server holds (the preloaded libraries: ~500k objects) goes to the collector's
        # permanent generation, so a job's collections never walk it nor write to its pages (the
        # fork recipe of the gc module's docs): a job's own garbage costs what it costs in a fresh process
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; tests see it through its effects
            self._run_job(conn, request, fds)
        for fd in fds:
            os.close(fd)
        self.jobs[pid] = (conn, list(request["argv"]))
        try:
            _send(conn, {"pid": pid})
        except OSError:
            pass

    def _run_job(self, conn: socket.socket, request: dict, fds: list[int]) -> None:  # pragma: no cover
        code = 1
        try:
            self.listener.close()
            for other, _ in self.jobs.values():
                other.close()
            for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for target_fd, fd in enumerate(fds):
                os.dup2(fd, target_fd)
                os.close(fd)
            adopt_job(request)
            _watch_client(conn)
            module, _, func = self.target.partition(":")
            main = getattr(importlib.import_module(module), func)
            code = _exit_code_of(main, request["argv"][1:])
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                import atexit

                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)


def _exit_code_of(main, argv: list[str]) -> int:  # pragma: no cover - runs in the forked job
    """``main(argv)``'s status as the interpreter would report it for a process running it."""
    try:
        result = main(argv)
        return int(result or 0)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:
        traceback.print_exc()
        return 1


def adopt_job(request: dict) -> None:
    """Make this (forked) process look like the job's own: environment, directory, umask, argv and
    the thread counts a fresh process would have taken from the environment."""
    import tempfile

    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(SOCKET_ENV, None)  # the job's own subprocesses start as plain processes
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    sys.argv = list(request["argv"])
    tempfile.tempdir = None  # TMPDIR is the job's (Snakemake's tmpdir resource)
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        apply_thread_count(int(threads))


def apply_thread_count(n: int) -> None:
    """torch's intra-op threads and every loaded BLAS/OpenMP pool at ``n``, what OMP_NUM_THREADS,
    MKL_NUM_THREADS and OPENBLAS_NUM_THREADS give a process that starts with them."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)


def _watch_client(conn: socket.socket) -> None:  # pragma: no cover - runs in the forked job
    """Stop this job (SIGTERM) when its client is gone: killed with SIGKILL, nothing forwarded."""
    import threading

    def watch() -> None:
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="scpdiff-forkserver-client", daemon=True).start()


# ----------------------------------------------------------------------------- the Snakefile's side

# sockaddr_un's sun_path holds 108 bytes on Linux, the terminating NUL included (unix(7))
SOCKET_PATH_MAX = 107
SOCKET_NAME = "socket"


def server_directory(pid: int, tmpdir: str | None = None) -> str:
    """The folder for workflow ``pid``'s server: under ``tmpdir`` (default: the temporary folder,
    ``$TMPDIR`` on a cluster node), or under ``/tmp`` when the socket's path there would not fit a
    Unix socket address (a long ``$TMPDIR`` would otherwise leave every job without the server)."""
    import tempfile

    name = f"scpdiff-forkserver-{pid}"
    folder = os.path.join(tmpdir or tempfile.gettempdir(), name)
    if len(os.fsencode(os.path.join(folder, SOCKET_NAME))) > SOCKET_PATH_MAX:
        folder = os.path.join("/tmp", name)
    return folder


def start(directory: str | os.PathLike, log: str | os.PathLike, environ=os.environ) -> str:
    """Start a server for this (Snakemake) process in the background; the socket path to export.
    The server exits with this process; :func:`stop` ends it sooner."""
    import subprocess

    Path(directory).mkdir(parents=True, exist_ok=True)
    path = str(Path(directory) / SOCKET_NAME)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scpdiff.utils.forkserver", "--socket", path,
                                 "--workflow-pid", str(os.getpid())],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={k: v for k, v in environ.items() if k != SOCKET_ENV})
    (Path(directory) / "pid").write_text(str(proc.pid))
    return path


def stop(directory: str | os.PathLike, wait: float = 10.0) -> None:
    """Ask the server started in ``directory`` to exit (it reports its running jobs first), wait for
    it up to ``wait`` seconds, and remove the directory."""
    import shutil

    from .workflow_watch import wait_until_gone

    try:
        pid = int((Path(directory) / "pid").read_text())
        os.kill(pid, signal.SIGTERM)
        wait_until_gone(pid, wait)
    except (OSError, ValueError):
        pass
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scpdiff.utils.forkserver", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument("--workflow-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--target", default="scpdiff.cli:main", help="module:function run by each job")
    parser.add_argument("--preload", type=lambda s: [m for m in s.split(",") if m], default=list(PRELOAD),
                        help="comma-separated modules to import before serving (default: the jobs' libraries)")
    args = parser.parse_args(argv)
    failed = preload(args.preload)
    if cuda_present():
        print("scpdiff fork server: a CUDA device is present (CUDA does not survive fork); not serving", flush=True)
        return 0
    if failed:
        print(f"scpdiff fork server: not preloaded (imported by the jobs that need them): {', '.join(failed)}", flush=True)
    print(f"scpdiff fork server: serving on {args.socket}", flush=True)
    Server(args.socket, target=args.target, workflow_pid=args.workflow_pid).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
