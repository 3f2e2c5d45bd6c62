"""`scpdiff resume` on a three-job workflow whose Snakemake is killed with SIGKILL while its jobs
run (the smoke DAG version of this is in tests/test_workflow_smoke.py): the orphaned jobs stop by
themselves and clean up, a plain rerun trips over the lock / incomplete markers as reported, and
the resume keeps the finished output, redoes the others and leaves a directory in which a plain
run has nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scpdiff.cli import main

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# Job 1 writes its output, then kills Snakemake (the pid it got through SCPDIFF_WORKFLOW_PID)
# before Snakemake can record it: the output exists but is marked incomplete. Jobs 0 and 2 are
# still running then, as scpdiff jobs do, with the workflow watch on.
SNAKEFILE = r'''
import os
from scpdiff.utils.workflow_watch import WORKFLOW_PID_ENV, workflow_tag
os.environ[WORKFLOW_PID_ENV] = workflow_tag()

rule all:
    input: expand("out/{i}.txt", i=range(3))

rule make:
    output: "out/{i}.txt"
    params: py=PY
    shell: "{params.py} job.py {wildcards.i} {output}"
'''

JOB = r'''
import os, signal, sys, time
from pathlib import Path
from scpdiff.utils.files import write_text_atomic
from scpdiff.utils.workflow_watch import WORKFLOW_PID_ENV, watch_workflow

i, out = sys.argv[1], sys.argv[2]
watch_workflow()
Path(f"pids/{i}").write_text(str(os.getpid()))
if i == "1":
    while len(list(Path("pids").iterdir())) < 3:  # the others are running
        time.sleep(0.05)
    write_text_atomic(out, "done\n")
    os.kill(int(os.environ[WORKFLOW_PID_ENV].rpartition(":")[2]), signal.SIGKILL)
    time.sleep(60)
else:
    from scpdiff.utils.files import atomic_path
    with atomic_path(out) as tmp:
        tmp.write_text("half")
        time.sleep(0.5 if Path("resumed").exists() else 600)
'''


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_resume_after_snakemake_is_killed(tmp_path, capsys):
    (tmp_path / "Snakefile").write_text(f"PY = {sys.executable!r}\n" + SNAKEFILE)
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "pids").mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    smk = [SNAKEMAKE, "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path)]
    res = subprocess.run([*smk, "--cores", "3"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == -9, res.stdout + res.stderr  # killed by job 1
    pids = {p.name: int(p.read_text()) for p in (tmp_path / "pids").iterdir()}
    assert sorted(pids) == ["0", "1", "2"]
    deadline = time.monotonic() + 60
    while not all(_gone(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in pids.values()), "orphaned jobs kept running"
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["1.txt"]  # no temporaries of jobs 0 and 2
    finished = (out / "1.txt").stat().st_mtime_ns
    # the reported failure of a plain rerun
    plain = subprocess.run([*smk, "--cores", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert plain.returncode != 0
    assert "IncompleteFilesException" in plain.stdout + plain.stderr or "LockException" in plain.stdout + plain.stderr
    # the documented resume
    (tmp_path / "resumed").touch()
    old = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["resume", "--cores", "2", "--snakemake", SNAKEMAKE, "--", "-s", str(tmp_path / "Snakefile")]) == 0
    finally:
        os.chdir(old)
    assert "1 output(s) finished before the kill are kept" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert (out / "1.txt").stat().st_mtime_ns == finished and (out / "0.txt").read_text() == "half"
    again = subprocess.run([*smk, "-n", "--cores", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_resume_refuses_while_snakemake_runs_in_the_directory(tmp_path, capsys):
    fake = tmp_path / "snakemake"  # a process named snakemake, running in tmp_path
    fake.write_text(f"#!{sys.executable}\nimport time; time.sleep(120)\n")
    fake.chmod(0o755)
    proc = subprocess.Popen([str(fake)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        from scpdiff.config.resume import live_snakemake

        while not live_snakemake(tmp_path.resolve()) and time.monotonic() < deadline:
            time.sleep(0.05)
        capsys.readouterr()
        assert main(["resume", "--snakemake", str(fake), "--", "-d", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert str(tmp_path.resolve()) in err and f"still running there (pid {proc.pid})" in err
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snakemake"]
