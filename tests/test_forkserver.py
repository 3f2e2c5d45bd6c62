"""The fork server (scpdiff.utils.forkserver): a job run through it behaves as the same command in a
process of its own (output, exit status, working directory, environment, umask, thread counts), a
signal sent to the job reaches it, a job whose client is killed stops, and the client runs the
command itself when there is no server to use."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scpdiff.utils import forkserver
from test_workflow_resume import _gone

SCPDIFF = str(Path(sys.executable).with_name("scpdiff"))

# The job the test server runs instead of scpdiff.cli:main: it reports what it sees, then does what
# its arguments say (exit with a code, raise, sleep).
TARGET = r'''
import json, os, sys, time

def main(argv):
    import torch
    from threadpoolctl import threadpool_info

    umask = os.umask(0)
    os.umask(umask)
    report = {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "umask": umask, "argv": sys.argv,
              "marker": os.environ.get("MARKER"), "server_env": os.environ.get("SCPDIFF_FORKSERVER"),
              "torch_threads": torch.get_num_threads(),
              "blas_threads": sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})}
    with open(argv[0], "w") as f:
        json.dump(report, f)
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    action = argv[1]
    if action == "sleep":
        time.sleep(120)
    if action == "raise":
        raise RuntimeError("the job failed")
    if action == "exit-message":
        raise SystemExit("a message")
    return int(action)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fork server running TARGET (torch and numpy preloaded, as the jobs' libraries are)."""
    root = tmp_path_factory.mktemp("forkserver")
    (root / "fs_target.py").write_text(TARGET)
    path = root / "socket"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    env.pop(forkserver.SOCKET_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "scpdiff.utils.forkserver", "--socket", str(path),
                             "--target", "fs_target:main", "--preload", "torch,numpy,threadpoolctl"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), proc.stdout.read() if proc.poll() is not None else "the server did not start"
    yield path, proc
    proc.terminate()
    proc.wait(timeout=30)


def _client(socket_path, args, tmp_path, umask=0o027, **extra_env):
    """``python -c 'delegate(ARGS)'`` in TMP_PATH: the client half of an `scpdiff` job."""
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env.update({forkserver.SOCKET_ENV: str(socket_path)}, OMP_NUM_THREADS="1", **extra_env)
    code = ("import os, sys; from scpdiff.utils.forkserver import delegate; "
            f"os.umask({umask}); r = delegate(sys.argv[1:]); sys.exit(99 if r is None else r)")
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def test_a_job_sees_its_own_directory_environment_umask_and_thread_counts(server, tmp_path):
    path, proc = server
    client = _client(path, ["report.json", "7"], tmp_path, MARKER="job-1")
    out, err = client.communicate(timeout=60)
    assert client.returncode == 7, err  # the job's exit status, not the client's fallback (99)
    assert out == "to stdout\n" and err == "to stderr\n"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ppid"] == proc.pid  # a fork of the server, not a process of the client's
    assert report["cwd"] == str(tmp_path) and report["umask"] == 0o027 and report["marker"] == "job-1"
    assert report["argv"][1:] == ["report.json", "7"]
    assert report["server_env"] is None  # the job's own subprocesses start as plain processes
    # OMP_NUM_THREADS=1 as Snakemake exports it: what a fresh process would run with (the server
    # itself started without it, on every core)
    assert report["torch_threads"] == 1 and report["blas_threads"] == [1]


def test_exit_statuses_are_those_of_the_command(server, tmp_path):
    path, _ = server
    client = _client(path, ["r.json", "raise"], tmp_path)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 1 and "RuntimeError: the job failed" in err
    client = _client(path, ["r.json", "exit-message"], tmp_path)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 1 and err.endswith("a message\n")
    client = _client(path, ["r.json", "0"], tmp_path)
    client.communicate(timeout=60)
    assert client.returncode == 0


def test_a_signal_to_the_job_reaches_the_forked_command(server, tmp_path):
    path, _ = server
    client = _client(path, ["r.json", "sleep"], tmp_path)
    job = _wait_for(tmp_path / "r.json")["pid"]
    client.send_signal(signal.SIGTERM)
    client.communicate(timeout=60)
    assert client.returncode == 128 + signal.SIGTERM
    assert _gone(job)


def test_a_job_whose_client_is_killed_stops(server, tmp_path):
    path, _ = server
    client = _client(path, ["r.json", "sleep"], tmp_path)
    job = _wait_for(tmp_path / "r.json")["pid"]
    client.kill()  # SIGKILL: nothing is forwarded; the job sees its connection close
    client.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not _gone(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(job)


def test_the_client_runs_the_command_itself_without_a_usable_server(server, tmp_path):
    path, _ = server
    assert forkserver.delegate(["x"], environ={forkserver.SOCKET_ENV: str(tmp_path / "none")}) is None
    assert forkserver.delegate(["x"], environ={}) is None
    # inside a SLURM job the job's own limits must hold: never delegated
    client = _client(path, ["r.json", "0"], tmp_path, SLURM_JOB_ID="12")
    client.communicate(timeout=60)
    assert client.returncode == 99 and not (tmp_path / "r.json").exists()
    # another environment or installation is refused
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        request = {"argv": ["scpdiff"], "cwd": str(tmp_path), "env": {}, "umask": 0o022,
                   "installation": dict(forkserver.installation(), prefix="/elsewhere")}
        forkserver._send(sock, request, fds=[0, 1, 2])
        assert "refused" in forkserver._recv(sock)


def test_scpdiff_through_the_server_prints_and_exits_as_on_its_own(tmp_path):
    """The real entry point: `scpdiff validate-config` on a missing file and on a benchmark, with and
    without a server (scpdiff.cli:main, nothing preloaded)."""
    path = tmp_path / "socket"
    env = {k: v for k, v in os.environ.items() if k != forkserver.SOCKET_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "scpdiff.utils.forkserver", "--socket", str(path), "--preload", ""],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for args in (["validate-config", str(tmp_path / "missing.yaml")], ["validate-config", "smoke"]):
            own = subprocess.run([SCPDIFF, *args], env=env, capture_output=True, text=True, timeout=120)
            served = subprocess.run([SCPDIFF, *args], env=dict(env, **{forkserver.SOCKET_ENV: str(path)}),
                                    capture_output=True, text=True, timeout=120)
            assert (served.returncode, served.stdout, served.stderr) == (own.returncode, own.stdout, own.stderr)
        assert own.returncode == 0 and "ok" in own.stdout
        proc.terminate()
        log, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert log.count("exit 0: scpdiff validate-config") == 1 and log.count("exit 1: scpdiff validate-config") == 1


@pytest.mark.parametrize("other_file", [False, True])
def test_the_server_exits_with_its_workflow(other_file):
    # the folder as the Snakefile's onstart (forkserver.start) leaves it: socket and pid file, under
    # /tmp as there (a pytest-xdist tmp_path is too long for a Unix socket's 107 bytes)
    folder = Path(tempfile.mkdtemp(prefix="scpdiff-fs-test-", dir="/tmp"))
    if other_file:
        (folder / "notes.txt").write_text("not the server's")
    workflow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    path = folder / "socket"
    proc = subprocess.Popen([sys.executable, "-m", "scpdiff.utils.forkserver", "--socket", str(path), "--preload", "",
                             "--workflow-pid", str(workflow.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (folder / "pid").write_text(str(proc.pid))
    try:
        workflow.wait()  # gone without stop(): a SIGKILLed Snakemake runs no onsuccess/onerror
        assert proc.wait(timeout=60) == 0
        assert not path.exists()
        if other_file:  # only the server's own files go
            assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
        else:
            assert not folder.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_server_folder_stays_in_a_short_temporary_folder():
    short = "/tmp/x"
    assert forkserver.server_directory(123, short) == "/tmp/x/scpdiff-forkserver-123"
    assert forkserver.server_directory(123) == os.path.join(tempfile.gettempdir(), "scpdiff-forkserver-123")


def test_a_long_temporary_folder_moves_the_socket_where_it_can_bind():
    # a cluster node's $TMPDIR can be long: under it the socket path would pass AF_UNIX's 107 bytes
    long_tmp = tempfile.mkdtemp(prefix="scpdiff-" + "t" * 90, dir="/tmp")
    try:
        assert len(os.path.join(long_tmp, "scpdiff-forkserver-1", "socket")) > 107
        folder = forkserver.server_directory(os.getpid(), long_tmp)
        assert folder == f"/tmp/scpdiff-forkserver-{os.getpid()}"
        path = os.path.join(folder, "socket")
        os.makedirs(folder)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)  # what the server does first
        sock.close()
        with pytest.raises(OSError, match="too long"):  # and where it would have failed
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind(os.path.join(long_tmp, "scpdiff-forkserver-1", "socket"))
    finally:
        shutil.rmtree(long_tmp, ignore_errors=True)
        shutil.rmtree(f"/tmp/scpdiff-forkserver-{os.getpid()}", ignore_errors=True)


def test_wait_until_gone_waits_for_the_process_to_end():
    from scpdiff.utils.workflow_watch import wait_until_gone

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert wait_until_gone(proc.pid, 0.3) is False  # still running: gives up at the timeout
        proc.terminate()
        proc.wait(timeout=30)
        assert wait_until_gone(proc.pid, 5) is True
    finally:
        proc.kill()
