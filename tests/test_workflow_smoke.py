"""The smoke benchmark run for real through the `snakemake` command, the HTML report, and a rerun
after a killed run redoing only the missing generation shards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_snakemake as _run, smoke_command as _cmd, snakemake_env as _env
from test_workflow_resume import _gone

pytestmark = pytest.mark.slow


def test_smoke_study_produces_every_table_and_figure(smoke_run):
    workdir = smoke_run
    results = workdir / "results" / "smoke"
    for name in ("metrics.csv", "table1.csv", "table1.tex", "table2.csv", "table2.tex", "table3.csv", "table3.tex",
                 "mu_sweep.png", "mu_sweep.pdf", "mu_sweep.csv", "oracle.png", "oracle.csv", "samples.png"):
        assert (results / name).stat().st_size > 0, name
    metrics = pd.read_csv(results / "metrics.csv")
    # every (prior, mu) of the smoke config, with finite scores
    references = {"real_images", "vae_reconstruction"}
    assert set(metrics["prior"]) == {"normal", "spatial", "categorical", "joint", "oracle"} | references
    # Table 1 rows: the priors at mu.table (the oracle, an analysis device, is in Fig. 3 only),
    # then the reference rows
    table = metrics[metrics["table_mu"] & ~metrics["prior"].isin(["oracle", *references])]
    assert set(table["prior"]) == {"normal", "spatial", "categorical", "joint"}
    t1_priors = list(pd.read_csv(results / "table1.csv")["prior"])
    assert set(t1_priors[:4]) == {"normal", "spatial", "categorical", "joint"} and t1_priors[4:] == sorted(references)
    assert table[["fid", "miou", "acc", "lpips", "ms_ssim"]].notna().all().all()
    assert ((table["miou"] >= 0) & (table["miou"] <= 100)).all()
    # every number with its bootstrap interval; each prior's paired difference to the normal
    # prior; the spread over sampling.seeds (two seeds)
    for m in ("fid", "kid", "miou", "acc", "lpips", "ms_ssim"):
        assert ((table[f"{m}_lo"] <= table[m] + 1e-9) & (table[m] <= table[f"{m}_hi"] + 1e-9)).all(), m
    others = table[table["prior"] != "normal"]
    assert others[["fid_delta_lo", "fid_delta_hi", "miou_delta_lo", "miou_delta_hi"]].notna().all().all()
    assert (table["seeds"] == 2).all() and table["fid_seed_sd"].notna().all()
    assert (table["bootstrap_resamples"] == 1000).all()
    refs = metrics[metrics["prior"].isin(references)].set_index("prior")
    assert refs[["fid", "fid_lo", "fid_hi", "miou", "miou_lo"]].notna().all().all()
    t1 = pd.read_csv(results / "table1.csv", index_col=0)
    assert t1.loc["normal", "smoke/FID delta"] == 0
    # the study's tables and mu sweep over every configured benchmark: here the smoke benchmark's
    for name in ("table1.csv", "table1.tex", "table2.tex", "table3.csv", "mu_sweep.csv"):
        assert (workdir / "results" / name).read_text() == (results / name).read_text(), name
    assert (workdir / "results" / "mu_sweep.pdf").stat().st_size > 0
    assert t1.loc["joint", "smoke/FID delta lo"] <= t1.loc["joint", "smoke/FID delta"] <= t1.loc["joint", "smoke/FID delta hi"]
    # the generated images: one folder per shard, each at most shard_size images
    shards = sorted((workdir / "work" / "smoke" / "samples" / "joint" / "mu0.85" / "fid").iterdir())
    assert [s.name for s in shards] == ["0000", "0001"]
    assert sum(len(list(s.glob("*.png"))) for s in shards) == 16


def test_local_jobs_run_as_forks_of_the_warm_server(smoke_run):
    """profiles/local: once the fork server has imported the libraries, every generation and scoring
    job is one of its forks (scpdiff.utils.forkserver), and each succeeded there."""
    log = (smoke_run / "work" / "logs" / "forkserver.log").read_text()
    assert "serving on" in log
    served = re.findall(r"^job \d+ exit (\d+): scpdiff (\S+)$", log, re.M)
    assert served and all(code == "0" for code, _ in served)
    ran = re.findall(r"^(?:local)?rule (\w+):$", (smoke_run / "snakemake.log").read_text(), re.M)
    # the first jobs (data, weights) may start before the server is ready; generation comes later
    assert sum(cmd == "generate" for _, cmd in served) == ran.count("generate") > 0
    assert {"score", "merge-scores", "tables"} <= {cmd for _, cmd in served}


def test_report_html_includes_tables_and_figures(smoke_run):
    workdir = smoke_run
    _run(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    for name in ("table1.csv", "table2.csv", "table3.csv", "mu_sweep.png", "oracle.png", "samples.png"):
        assert name in html, name


def test_nothing_reruns_after_a_complete_run(smoke_run):
    workdir = smoke_run
    res = _run(workdir, "-n", "--cores", "2")
    assert "Nothing to be done" in res.stdout + res.stderr


def _dry_run_jobs(workdir: Path, target: str, *args: str) -> list[str]:
    res = _run(workdir, "-n", "--cores", "1", *args, target)
    out = res.stdout + res.stderr
    return [line.split("output: ", 1)[1] for line in out.splitlines() if line.strip().startswith("output: ")]


def test_rerun_after_kill_redoes_only_the_missing_shards(smoke_copy):
    workdir = smoke_copy
    setting = workdir / "work" / "smoke" / "samples" / "categorical" / "mu0.85" / "fid"
    score = workdir / "work" / "smoke" / "scores" / "categorical" / "mu0.85.json"
    # forget this setting, then regenerate it one job at a time and kill snakemake (SIGKILL, the
    # whole process group, as a preempted node would) once the first shard has appeared
    import shutil

    shutil.rmtree(setting)
    # the setting's shard scores too: the merge alone would otherwise remake the score without images
    shutil.rmtree(score.with_suffix("") / "fid")
    score.unlink()
    target = str(score.relative_to(workdir))
    proc = subprocess.Popen(_cmd(workdir, "--cores", "1", target), cwd=workdir, start_new_session=True, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = [setting / "0000", setting / "0001"]
    try:
        # Snakemake may schedule either shard first: wait for whichever finishes first
        deadline = time.monotonic() + 240
        while not any(s.is_dir() for s in shards) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = [s for s in shards if s.is_dir()]
    assert len(done) == 1, f"expected exactly one finished shard at the kill, found {[s.name for s in done]}"
    done, missing = done[0], next(s for s in shards if s not in done)
    first = {p.name: p.stat().st_mtime_ns for p in done.iterdir()}
    assert len([n for n in first if n.endswith(".png")]) == 8
    # a half-written shard never carries the final name
    assert not missing.exists() and all(not p.name.startswith(missing.name) for p in setting.iterdir())

    # Snakemake was killed before it recorded the finished shard, so it lists it as incomplete;
    # every output here is written atomically (a final name only exists complete), so the
    # documented resume is --ignore-incomplete
    _run(workdir, "--unlock")
    planned = _dry_run_jobs(workdir, target, "--ignore-incomplete")
    assert str(missing.relative_to(workdir)) in planned
    assert str(done.relative_to(workdir)) not in planned
    _run(workdir, "--cores", "2", "--ignore-incomplete", target)
    assert {p.name: p.stat().st_mtime_ns for p in done.iterdir()} == first
    assert len(list(missing.glob("*.png"))) == 8 and score.is_file()
    # Snakemake's own remedy marks the shard that finished before the kill as complete; then a
    # plain run (and --report) accepts the folder again
    # (whether a marker is left depends on when the kill landed; without one this is a no-op)
    subprocess.run(_cmd(workdir, "--cleanup-metadata", str(done.relative_to(workdir))),
                   cwd=workdir, env=_env(), capture_output=True, timeout=300)
    res = _run(workdir, "-n", "--cores", "2", target)
    assert "Nothing to be done" in res.stdout + res.stderr


def test_prior_variants_from_a_plugin_and_from_a_rule_run_through_the_study(smoke_run, tmp_path):
    """Both routes of the README's "A new prior variant", run for real on a copy of the finished
    smoke study: a registered class in a plugin module (fitted by the workflow) and the README's
    own rule file (a spatial prior with half its variance, written by `scpdiff scale-prior`)."""
    import shutil

    import yaml
    from safetensors.torch import load_file

    from scpdiff import priors
    from test_readme_commands import readme_files
    from test_workflow_dryrun import PLUGIN

    workdir = tmp_path / "study"
    shutil.copytree(smoke_run, workdir, symlinks=True, ignore=shutil.ignore_patterns("report.html", "*.log"))
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "my_priors.py").write_text(PLUGIN)
    rule_file = "my_rules/priors.smk"
    (workdir / "my_rules").mkdir()
    (workdir / rule_file).write_text(readme_files()[rule_file])
    config = yaml.safe_load((workdir / "wf_config.yaml").read_text())
    compared = ["normal", "spatial", "categorical", "joint", "tempered_joint", "shrunk_spatial"]
    config.update(plugins=["my_priors"], extra_rules=[rule_file], overrides={"smoke": {"priors": compared}})
    (workdir / "wf_config.yaml").write_text(yaml.safe_dump(config))
    env = dict(_env(), PYTHONPATH=os.pathsep.join([str(workdir / "plugins"), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run(_cmd(workdir, "--profile", str(Path(__file__).resolve().parents[1] / "profiles" / "local"),
                              "--cores", "2"), cwd=workdir, env=env, capture_output=True, text=True, timeout=3600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    # only the two new variants are made: one fitted (plugin), one written by the rule, none trained
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats:"):].split("\n\n")[0], flags=re.M))
    assert jobs["shrunk_spatial_prior"] == "1" and jobs["merge_priors"] == "1"
    assert not {"train_controlnet", "encode_latents", "prepare_data"} & set(jobs)
    work = workdir / "work" / "smoke"
    assert not (work / "priors" / "shrunk_spatial").exists()  # no fitting for the rule's prior
    spatial = load_file(work / "priors" / "spatial.safetensors")
    shrunk = priors.load(work / "priors" / "shrunk_spatial.safetensors")
    assert shrunk.name == "spatial"
    torch = pytest.importorskip("torch")
    ref = priors.load(work / "priors" / "spatial.safetensors")
    torch.testing.assert_close(shrunk.fitted_stats()[1], 0.5 * ref.fitted_stats()[1])
    assert torch.equal(shrunk.state_tensors()["spatial_sum"], spatial["spatial_sum"])
    # every downstream stage: samples, scores, the benchmark's and the study's tables, the mu sweep
    record = json.loads((work / "samples" / "shrunk_spatial" / "mu0.85" / "fid" / "0000" / "generation.json").read_text())
    assert record["variant"] == "shrunk_spatial"
    for table in (workdir / "results" / "smoke" / "table1.csv", workdir / "results" / "table1.csv"):
        t1 = pd.read_csv(table, index_col=0)
        # the compared priors, then Table 1's reference rows (real images, VAE reconstruction)
        assert list(t1.index) == compared + ["real_images", "vae_reconstruction"]
        assert t1.loc[["tempered_joint", "shrunk_spatial"], ["smoke/mIoU", "smoke/FID"]].notna().all().all()
    t3 = pd.read_csv(workdir / "results" / "table3.csv", index_col=0)
    assert t3.loc["shrunk_spatial", "smoke/LPIPS"] >= 0
    sweep = pd.read_csv(workdir / "results" / "mu_sweep.csv")
    assert {"tempered_joint", "shrunk_spatial"} <= set(sweep["prior"])


def _job_of(workflow_pid: int) -> int | None:
    """The pid of an `scpdiff generate` job started by the Snakemake process ``workflow_pid``."""
    from scpdiff.utils.workflow_watch import WORKFLOW_PID_ENV

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        is_job = any(c.endswith(b"scpdiff") for c in cmd[:2]) and b"generate" in cmd
        if is_job and any(v.startswith(WORKFLOW_PID_ENV.encode() + b"=") and v.endswith(b":%d" % workflow_pid) for v in env):
            return int(entry.name)
    return None


def test_resume_after_snakemake_alone_is_killed(smoke_copy):
    """kill -9 of Snakemake only (not its process group): the job it was running stops on its own and
    cleans up, and the documented `make resume` finishes the run; a plain run then has nothing to do."""
    import shutil

    workdir = smoke_copy
    setting = workdir / "work" / "smoke" / "samples" / "spatial" / "mu0.85" / "fid"
    score = workdir / "work" / "smoke" / "scores" / "spatial" / "mu0.85.json"
    shutil.rmtree(setting, ignore_errors=True)
    shutil.rmtree(score.with_suffix("") / "fid", ignore_errors=True)  # its shard scores (as above)
    score.unlink(missing_ok=True)
    target = str(score.relative_to(workdir))
    proc = subprocess.Popen(_cmd(workdir, "--cores", "1", target), cwd=workdir, start_new_session=True, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job = None
    try:
        deadline = time.monotonic() + 240
        while job is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            job = _job_of(proc.pid)
        assert job is not None, "no generate job started"
    finally:
        proc.kill()  # SIGKILL to Snakemake alone: its job is left running, as after `kill -9 PID`
        proc.wait()
    # the orphaned job notices and stops by itself, leaving no temporary behind
    deadline = time.monotonic() + 120
    while not _gone(job) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(job), "the orphaned scpdiff job kept running after Snakemake was killed"
    if setting.exists():
        assert not [p.name for p in setting.iterdir() if p.name.startswith(".")]
    # the documented resume (docs/workflow.md, Makefile); without make, the command it runs
    # the target before --configfile, which takes every word after it
    args = ["-s", str(REPO / "Snakefile"), "-d", str(workdir), target, "--configfile", str(workdir / "wf_config.yaml")]
    if shutil.which("make"):
        cmd = ["make", "-s", "-C", str(REPO), "resume", f"VENV={Path(sys.executable).parent.parent}", "CORES=2",
               "SNAKEMAKE_ARGS=" + " ".join(args)]
    else:
        cmd = [str(Path(sys.executable).with_name("scpdiff")), "resume", "--cores", "2", "--", *args]
    res = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    assert score.is_file() and sorted(s.name for s in setting.iterdir()) == ["0000", "0001"]
    assert all(len(list(s.glob("*.png"))) == 8 for s in setting.iterdir())
    res = _run(workdir, "-n", "--cores", "2", target)  # plain: no lock, no incomplete markers left
    assert "Nothing to be done" in res.stdout + res.stderr


def test_a_deleted_shard_is_redone_only_when_named(smoke_copy):
    """What docs/workflow.md says a deleted intermediate output does: nothing until it is named."""
    import shutil

    workdir = smoke_copy
    shard = workdir / "work" / "smoke" / "samples" / "joint" / "mu0.85" / "fid" / "0000"
    score = workdir / "work" / "smoke" / "scores" / "joint" / "mu0.85.json"
    shutil.rmtree(shard)
    score_target, shard_target = str(score.relative_to(workdir)), str(shard.relative_to(workdir))
    res = _run(workdir, "-n", "--cores", "1", score_target)
    assert "Nothing to be done" in res.stdout + res.stderr  # downstream complete: not regenerated
    assert _dry_run_jobs(workdir, shard_target) == [shard_target]
    _run(workdir, "--cores", "2", shard_target)
    assert len(list(shard.glob("*.png"))) == 8
    # the new shard is newer than the score computed from it: the next run redoes the score
    assert score_target in _dry_run_jobs(workdir, score_target)
    _run(workdir, "--cores", "2", score_target)
    assert "Nothing to be done" in (r := _run(workdir, "-n", "--cores", "1", score_target)).stdout + r.stderr


def test_a_removed_shard_score_is_redone_alone(smoke_copy):
    """Scoring is per generation shard: a lost shard score, named as a target (Snakemake does not
    remake a missing intermediate file whose readers are up to date, the same as a deleted image
    shard), is recomputed from its images alone; the next plain run redoes only the setting's merge
    and what reads it."""
    workdir = smoke_copy
    scores = workdir / "work" / "smoke" / "scores" / "joint" / "mu0.85" / "fid"
    lost, kept = scores / "0001.npz", scores / "0000.npz"
    before = kept.stat().st_mtime_ns
    lost.unlink(missing_ok=True)
    res = _run(workdir, "--cores", "2", str(lost.relative_to(workdir)))
    ran = re.findall(r"^(?:local)?rule (\w+):$", res.stdout + res.stderr, flags=re.M)
    assert ran == ["score_shard"], ran
    assert lost.is_file() and kept.stat().st_mtime_ns == before
    res = _run(workdir, "--cores", "2")
    ran = re.findall(r"^(?:local)?rule (\w+):$", res.stdout + res.stderr, flags=re.M)
    assert ran.count("score_fid") == 1 and "score_shard" not in ran and "generate" not in ran, ran
    assert "Nothing to be done" in (r := _run(workdir, "-n", "--cores", "1")).stdout + r.stderr


def test_keep_images_none_leaves_no_sample_image_and_every_table(smoke_run, smoke_copy):
    """keep_images: none marks the images temp(): each shard goes once every job reading it has
    finished, the tables are complete, and a later run does not want the images back.

    On a copy of the finished study, the joint prior's images are scored again under `none`
    (Snakemake removes each shard once its readers are done); every other image folder is removed
    beforehand, as a finished run under `none` leaves it, and nothing wants those back."""
    import shutil

    import yaml

    workdir = smoke_copy
    config = yaml.safe_load((workdir / "wf_config.yaml").read_text())
    config["overrides"] = {"smoke": {"keep_images": "none"}}
    (workdir / "wf_config.yaml").write_text(yaml.safe_dump(config))
    work = workdir / "work" / "smoke"
    joint = work / "samples" / "joint"
    shards = [p.parent for p in (work / "samples").rglob("generation.json")]
    assert any(joint in s.parents for s in shards) and len(shards) > 4
    for folder in [s for s in shards if joint not in s.parents] + [p for p in (work / "reference").iterdir() if p.is_dir()]:
        shutil.rmtree(folder)
    readers = sorted(str(p.relative_to(workdir)) for p in (work / "scores" / "joint").rglob("*")
                     if p.suffix == ".npz" or p.name.endswith("_diversity.json"))
    assert len(readers) >= 3, readers  # two seeds' shard scores and the diversity score at least
    results = workdir / "results" / "smoke"
    shown = ("metrics.csv", "table1.csv", "table2.csv", "table3.csv", "mu_sweep.csv")
    before = {name: (results / name).stat().st_mtime_ns for name in shown}
    _run(workdir, "--cores", "2", "--forcerun", *readers)
    images = [p for folder in ("samples", "reference") for p in (workdir / "work" / "smoke" / folder).rglob("*.png")]
    assert images == []
    assert not any((workdir / "work" / "smoke" / "samples").rglob("0000"))
    for name, mtime in before.items():  # the tables that show the joint prior were remade
        assert (results / name).stat().st_size > 0 and (results / name).stat().st_mtime_ns > mtime, name
    metrics = pd.read_csv(results / "metrics.csv")
    assert metrics[["fid", "miou"]].notna().any().all() and len(metrics) == len(pd.read_csv(smoke_run / "results" / "smoke" / "metrics.csv"))
    assert "Nothing to be done" in (r := _run(workdir, "-n", "--cores", "1")).stdout + r.stderr


def test_a_one_shard_setting_is_scored_in_one_job_with_the_merged_numbers(smoke_copy):
    """A setting of one generation shard (the toy's) has no shard-statistics job: its row job scores
    the images itself (`scpdiff score`), and the row is the one the two-shard merge wrote for the
    same images (per-image seeds: the sharding does not change an image)."""
    import shutil

    import yaml

    workdir = smoke_copy
    config = yaml.safe_load((workdir / "wf_config.yaml").read_text())
    config["overrides"] = {"smoke": {"counts": {"shard_size": 16}}}  # 16 FID samples: one shard
    (workdir / "wf_config.yaml").write_text(yaml.safe_dump(config))
    work = workdir / "work" / "smoke"
    score = work / "scores" / "joint" / "mu0.85.json"
    merged = json.loads(score.read_text())
    assert merged["shards"] == 2
    shard_scores = work / "scores" / "joint" / "mu0.85" / "fid"
    for path in (work / "samples" / "joint" / "mu0.85" / "fid", shard_scores):
        shutil.rmtree(path)
    score.unlink()
    # mtime triggers only: the latents and priors (sharded by the same count) stand as they are
    res = _run(workdir, "--cores", "2", str(score.relative_to(workdir)), "--rerun-triggers", "mtime")
    ran = re.findall(r"^(?:local)?rule (\w+):$", res.stdout + res.stderr, flags=re.M)
    assert ran == ["generate", "score_fid"], ran
    log = (work / "logs" / "merge_scores_joint_mu0.85.log").read_text()
    assert "scored 16 images" in log and not shard_scores.exists()
    row = json.loads(score.read_text())
    assert row["num_images"] == merged["num_images"] == 16
    # Inception features of 16 images in one batch against two batches of 8: float rounding only
    for key in ("fid", "kid"):
        assert row[key] == pytest.approx(merged[key], rel=1e-4), key
    for key in ("miou", "pixel_accuracy", "class_iou", "segmented_images"):
        assert row[key] == merged[key], key
    assert row["bootstrap"]["units_sha256"] == merged["bootstrap"]["units_sha256"]
    for metric, (lo, hi) in merged["bootstrap"]["interval"].items():
        assert row["bootstrap"]["interval"][metric] == pytest.approx([lo, hi], rel=1e-4), metric
