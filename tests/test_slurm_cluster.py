"""Snakemake through profiles/slurm on a real one-node SLURM cluster started on this machine by
.ci/slurm/start.sh (slurmctld + slurmd + munged; stopped by PID afterwards).

Skipped, with the reason, only where the daemons cannot run here (SLURM not installed, not root,
a foreign /etc/slurm/slurm.conf). With SCPDIFF_REQUIRE_SLURM=1 (set by .ci/run) such a
skip becomes a failure, so CI cannot pass without having run the cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml
import pytest

from conftest import REPO

CI = REPO / ".ci" / "slurm"
STATE = Path(os.environ.get("SCPDIFF_SLURM_STATE", "/tmp/scpdiff-slurm"))

pytestmark = pytest.mark.slurm

# Faster polling than a real cluster needs (the plugin's default first poll is after 40 s, then
# every 10 s) and a short latency-wait (one machine, no shared file system); everything else is
# the profile verbatim.
CI_OPTIONS = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
              "--latency-wait", "10"]


def _cannot_run(reason: str):
    if os.environ.get("SCPDIFF_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM test cluster required but unavailable: {reason}")
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


def _running() -> bool:
    pidfile = STATE / "slurmctld.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def slurm_env():
    """Environment for sbatch/squeue/snakemake pointing at the test cluster; starts it if needed
    and stops it afterwards (only when this fixture started it)."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if not shutil.which(b)]
    if missing:
        _cannot_run(f"{', '.join(missing)} not installed (run .ci/slurm/install.sh)")
    if os.geteuid() != 0:
        _cannot_run("slurmd must run as root")
    started = False
    if not _running():
        proc = subprocess.run(
            [str(CI / "start.sh"), str(STATE)], capture_output=True, text=True, timeout=180
        )
        if proc.returncode == 2:  # start.sh: this machine cannot host the daemons
            _cannot_run(proc.stderr.strip())
        assert proc.returncode == 0, f"start.sh failed:\n{proc.stdout}\n{proc.stderr}"
        started = True
    env = {
        **os.environ,
        "SLURM_CONF": str(STATE / "slurm.conf"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    yield env
    if started:
        subprocess.run([str(CI / "stop.sh"), str(STATE)], timeout=120, check=True)
        assert not _running()


def finished_jobs() -> dict[str, dict[str, str]]:
    """SLURM's own record of finished jobs (jobcomp/filetxt), by job id."""
    path = STATE / "jobcomp.txt"
    jobs = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs[fields["JobId"]] = fields
    return jobs


def scontrol_job(job_id: str, env) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, env=env, timeout=30
    ).stdout


def snakemake(args, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / "slurm"), *CI_OPTIONS, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def submitted_jobs(log: str) -> dict[str, str]:
    """rule -> SLURM job id, from the plugin's submission messages."""
    pattern = r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/"
    return {rule: job for job, rule in re.findall(pattern, log)}


TWO_RULES = textwrap.dedent(
    """
    rule all:
        input: "cpu.txt"

    rule gpu:
        output: "gpu.txt"
        resources: gpu=1, runtime=5, mem_mb=500
        shell: "echo $SLURM_JOB_ID ${{SLURM_GPUS_ON_NODE:-0}} > {output}"

    rule cpu:
        input: "gpu.txt"
        output: "cpu.txt"
        resources: runtime=5, mem_mb=500
        shell: "echo $SLURM_JOB_ID ${{SLURM_GPUS_ON_NODE:-0}} > {output}; cat {input} >> {output}"
    """
)


def test_two_rules_run_as_sbatch_jobs(slurm_env, tmp_path):
    (tmp_path / "Snakefile").write_text(TWO_RULES)
    proc = snakemake([], tmp_path, slurm_env, timeout=300)
    jobs = submitted_jobs(proc.stdout + proc.stderr)
    assert set(jobs) == {"gpu", "cpu"}, proc.stderr[-3000:]

    cpu_job, cpu_gpus, gpu_job, gpu_gpus = (tmp_path / "cpu.txt").read_text().split()
    # each rule ran inside the SLURM job the plugin submitted for it, in DAG order
    assert (gpu_job, cpu_job) == (jobs["gpu"], jobs["cpu"])
    assert int(jobs["gpu"]) < int(jobs["cpu"])
    # the GPU rule was granted the node's GPU (sbatch --gpus=1), the CPU rule none
    assert (gpu_gpus, cpu_gpus) == ("1", "0")
    assert "TresPerJob=gres:gpu:1" in scontrol_job(jobs["gpu"], slurm_env)
    assert "gres" not in scontrol_job(jobs["cpu"], slurm_env)

    # SLURM's completion record agrees: both jobs completed, with the profile's per-rule limits
    done = finished_jobs()
    for rule, job in jobs.items():
        assert done[job]["JobState"] == "COMPLETED", done.get(job)
        assert done[job]["TimeLimit"] == "5" and done[job]["WorkDir"] == str(tmp_path)
    # the plugin kept every job's SLURM log (slurm-keep-successful-logs)
    for rule, job in jobs.items():
        assert (tmp_path / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{job}.log").is_file()


FAILS_ONCE = textwrap.dedent(
    """
    rule flaky:
        output: "flaky.txt"
        resources: runtime=5, mem_mb=500
        shell: "if [ ! -e attempt1 ]; then touch attempt1; exit 3; fi; echo $SLURM_JOB_ID > {output}"
    """
)


def test_failed_job_is_retried_as_a_new_sbatch_job(slurm_env, tmp_path):
    """The profile's `retries`: a job that fails is resubmitted, and the second submission succeeds."""
    (tmp_path / "Snakefile").write_text(FAILS_ONCE)
    proc = snakemake([], tmp_path, slurm_env, timeout=300)
    log = proc.stdout + proc.stderr
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(ids) == 2, log[-3000:]
    done = finished_jobs()
    assert done[ids[0]]["JobState"] == "FAILED"  # the rule's exit 3 failed the job
    assert done[ids[1]]["JobState"] == "COMPLETED"
    assert (tmp_path / "flaky.txt").read_text().split() == [ids[1]]


RESUMABLE = textwrap.dedent(
    """
    rule train:
        output: "model.txt"
        resources: runtime=5, mem_mb=500
        # a stand-in for `train-controlnet --resume auto`: progress lives beside the output
        # (like work/B/models/controlnet.state/) and a restarted job continues from it
        shell:
            "step=$(cat state.txt 2>/dev/null || echo 0); "
            "echo $SLURM_JOB_ID $step >> runs.txt; "
            "while [ $step -lt 20 ]; do step=$((step + 1)); echo $step > state.txt; sleep 1; done; "
            "echo $step > {output}"
    """
)


def _release_requeued(job: str, env) -> None:
    """SLURM holds a requeued job back (Reason=BeginTime, about 2 min) before it may start again;
    a preempted job on a real cluster waits the same. The test moves its start time to now."""
    deadline = time.monotonic() + 60
    while "JobState=PENDING" not in scontrol_job(job, env):
        assert time.monotonic() < deadline, f"requeued job {job} never became pending: {scontrol_job(job, env)}"
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=env, check=True, timeout=30)


def test_requeued_job_resumes_and_snakemake_waits_for_it(slurm_env, tmp_path):
    """Preemption: SLURM requeues a running job (profile: slurm-requeue); the same SLURM job runs
    again, continues from the state its first run left, and Snakemake treats it as one success."""
    (tmp_path / "Snakefile").write_text(RESUMABLE)
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / "slurm"), *CI_OPTIONS]
    state = tmp_path / "state.txt"
    out = open(tmp_path / "snakemake.log", "w+")  # a file, not a pipe: nobody reads while we wait
    run = subprocess.Popen(cmd, cwd=tmp_path, env=slurm_env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not state.exists() or int(state.read_text().strip() or 0) < 5:
            assert run.poll() is None, "snakemake ended before the job ran"
            assert time.monotonic() < deadline, "the job did not start within 10 min"
            time.sleep(0.5)
        job = (tmp_path / "runs.txt").read_text().split()[0]
        subprocess.run(["scontrol", "requeue", job], env=slurm_env, check=True, timeout=30)
        _release_requeued(job, slurm_env)
        run.wait(timeout=600)
    finally:
        if run.poll() is None:  # a failed test: Ctrl-C makes Snakemake cancel its SLURM job
            run.send_signal(signal.SIGINT)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
        out.close()
    log = (tmp_path / "snakemake.log").read_text()
    assert run.returncode == 0, log[-3000:]
    runs = [line.split() for line in (tmp_path / "runs.txt").read_text().splitlines()]
    assert [r[0] for r in runs] == [job, job]  # requeued, not resubmitted: one SLURM job id
    assert runs[0][1] == "0" and int(runs[1][1]) >= 5  # the second run resumed, did not start over
    assert (tmp_path / "model.txt").read_text().strip() == "20"
    assert len(re.findall(r"has been submitted with SLURM jobid", log)) == 1


def _rules_run(log: str, grouped: bool = False) -> Counter:
    """Jobs per rule in a Snakemake log; ``grouped``: also the jobs listed inside group jobs (indented)."""
    return Counter(re.findall(r"^\s*(?:local)?rule (\w+):$" if grouped else r"^(?:local)?rule (\w+):$", log, flags=re.M))


def _assert_same_results(local: Path, cluster: Path) -> int:
    """Every CSV of the two runs' results holds the same table (floats to 1e-6 relative: the same
    code on the same CPU, so only thread scheduling could perturb the last digits)."""
    tables = sorted(p.relative_to(local) for p in local.rglob("*.csv"))
    assert tables, f"no CSV results under {local}"
    assert tables == sorted(p.relative_to(cluster) for p in cluster.rglob("*.csv"))
    for rel in tables:
        a, b = pd.read_csv(local / rel), pd.read_csv(cluster / rel)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, obj=str(rel))
    return len(tables)


def test_smoke_study_through_sbatch_equals_local_run(slurm_env, smoke_run, tmp_path):
    """The smoke study through profiles/slurm, from the session's local run (profiles/local, the
    `smoke_run` fixture) with one prior taken out: the joint prior's fit, every joint image and
    score and every result file are removed from a copy, and the cluster remakes them. Every job is
    an sbatch job (alone, or in one of the profile's group jobs: fit, score, report) that SLURM
    completed; the remade tables equal the local run's and the remade images are byte-identical.

    The whole study through sbatch would take three times the local run on CI's two cores (each
    job pays a queue wait, a poll and two Snakemake start-ups, and a group job runs its jobs one
    after another), and it would go through the same rules and profile settings as this slice: the
    training rules add no SLURM code path that tests/test_slurm_profiles.py and the two-rule test
    above do not cover."""
    local_root = smoke_run
    work = Path("work") / "smoke"
    cluster_root = tmp_path / "slurm"
    shutil.copytree(local_root, cluster_root, symlinks=True, ignore=shutil.ignore_patterns("report.html", "*.log"))
    removed = [work / "priors" / "joint", work / "priors" / "joint.safetensors", work / "samples" / "joint",
               work / "scores" / "joint", Path("results")]
    for rel in removed:
        assert (cluster_root / rel).exists(), rel  # the local run made it
        (shutil.rmtree if (cluster_root / rel).is_dir() else Path.unlink)(cluster_root / rel)
    joint_shards = sorted(p.parent.relative_to(local_root)
                          for p in (local_root / work / "samples" / "joint").rglob("generation.json"))
    assert len(joint_shards) >= 4, joint_shards  # two seeds' FID shards and the diversity run at least

    proc = snakemake(["-s", str(REPO / "Snakefile"), "-d", str(cluster_root),
                      "--configfile", str(cluster_root / "wf_config.yaml")], cluster_root, slurm_env, timeout=1800)
    log = proc.stdout + proc.stderr
    (cluster_root / "snakemake.log").write_text(log)
    # a cluster executor's jobs start their own Python: no fork server (scpdiff.utils.forkserver),
    # so the byte equality below also compares forked local jobs with plain processes
    assert not (cluster_root / "work" / "logs" / "forkserver.log").exists()

    # every job that is not a local rule went through sbatch, alone or in a group job of the
    # profile's `groups` (a group job runs its jobs on one allocation), and SLURM completed it
    ids = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(rule|group)_(\w+)/", log)
    submitted = Counter(name for _, kind, name in ids if kind == "rule")
    grouped_rules = {g.split("=")[0] for g in yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["groups"]}
    ran = _rules_run(log, grouped=True)
    ran -= Counter({"all": ran["all"]})
    assert submitted == Counter({r: n for r, n in ran.items() if r not in grouped_rules}), (submitted, ran)
    group_jobs = [job for job, kind, _ in ids if kind == "group"]
    grouped = sum(n for r, n in ran.items() if r in grouped_rules)
    assert 0 < len(group_jobs) < grouped / 3, (len(group_jobs), grouped)  # far fewer queue waits than jobs
    done = finished_jobs()
    assert all(done[job]["JobState"] == "COMPLETED" for job, _, _ in ids)
    # exactly what was taken out was remade: the joint prior's shards and merge, one generation job
    # per joint shard, their scores, and the report; nothing upstream (training, latents, other priors)
    assert ran["generate"] == len(joint_shards)
    fit_shards = list((local_root / work / "priors" / "joint" / "shards").glob("*.safetensors"))
    assert ran["fit_prior"] == len(fit_shards) > 0 and ran["merge_priors"] == 1
    assert not {"train_vae", "train_base", "train_controlnet", "train_segmenter", "encode_latents",
                "prepare_data", "reference_images", "score_reference"} & set(ran)
    # the report group remade every result file (tables, LaTeX, plots) the local run made
    made = sorted(p.relative_to(local_root) for p in (local_root / "results").rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(cluster_root) for p in (cluster_root / "results").rglob("*") if p.is_file())

    _assert_same_results(local_root / "results", cluster_root / "results")
    # and every remade image is the same, pixel for pixel (each image's seed is its own)
    samples = sorted(p.relative_to(local_root) for p in (local_root / work / "samples" / "joint").rglob("*.png"))
    assert samples and samples == sorted(
        p.relative_to(cluster_root) for p in (cluster_root / work / "samples" / "joint").rglob("*.png")
    )
    for rel in samples:
        assert (local_root / rel).read_bytes() == (cluster_root / rel).read_bytes(), rel
