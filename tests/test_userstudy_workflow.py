"""Table 4 in the Snakemake workflow: `snakemake user_study` builds the study folder from the
workflow's samples; the table joins `all` only once an answers database exists."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_snakemake
from scpdiff.userstudy.study import load_study
from scpdiff.userstudy.store import AnswerStore
from scpdiff.userstudy.tokens import invite
from test_workflow_dryrun import dry_run, snakemake


def test_user_study_target_builds_the_study_and_all_leaves_it_alone(tmp_path):
    jobs, out = dry_run(tmp_path, {"benchmarks": ["smoke"]}, "all", "user_study")
    assert jobs["user_study_build"] == 1 and jobs["table4"] == 0  # no answers yet: no table
    # by default: the normal prior at mu 1 (plain ControlNet) and every other prior at mu.table,
    # as many groups as label maps the benchmark generates (16 < the paper's 500)
    assert "--methods normal:1 spatial:0.85 categorical:0.85 joint:0.85 --groups 16 --seed 0" in out


def test_table4_joins_all_once_the_study_has_answers(tmp_path):
    config = {"benchmarks": ["smoke"], "user_study": {
        "methods": ["ControlNet=normal:1", "SCP Diff=joint:0.85"], "groups": 5,
        "images": {"smoke": {"OASIS": "/data/oasis"}}}}
    study = tmp_path / "work" / "smoke" / "user_study"
    study.mkdir(parents=True)
    (study / "answers.sqlite").touch()
    jobs, out = dry_run(tmp_path, config, "all", "user_study")
    assert jobs["table4"] == 1 and jobs["user_study_build"] == 1
    assert ("scpdiff user-study build --benchmark work/smoke/benchmark.yaml --methods ControlNet=normal:1 "
            "'SCP Diff=joint:0.85' --images OASIS=/data/oasis --groups 5 --seed 0 --work-dir work "
            "--out work/smoke/user_study") in out
    assert "scpdiff user-study results work/smoke/user_study --out results/smoke/table4" in out
    # the table needs the answers only, so new samples never ask to rebuild a running study
    table_job = out[out.index("rule table4:"):].split("\n\n")[0]
    assert "input: work/smoke/user_study/answers.sqlite" in table_job


def test_a_normal_method_at_any_mu_reads_the_one_controlnet_setting(tmp_path):
    """Under normal_prior_start: controlnet the normal prior is generated once, at mu 1: a study
    that names it at the table's mu reads those images (the workflow's inputs and the build
    command's folders), and asks for no normal-prior generation at 0.85."""
    from scpdiff.config.benchmark import load_benchmark
    from scpdiff.errors import InputError
    from scpdiff.userstudy.build import parse_methods

    config = {"benchmarks": ["smoke"], "user_study": {"methods": ["normal:0.85", "joint:0.85"], "groups": 4}}
    jobs, out = dry_run(tmp_path, config, "user_study")
    build = out[out.index("rule user_study_build:"):].split("\n\n")[0]
    assert "work/smoke/samples/normal/mu1/fid/0000" in build and "samples/normal/mu0.85" not in out
    assert "--methods normal:0.85 joint:0.85 --groups 4" in build
    bench = load_benchmark("smoke")
    for folder in ("normal/mu1/fid", "joint/mu0.85/fid"):
        (tmp_path / "w" / "smoke" / "samples" / folder).mkdir(parents=True)
    methods = parse_methods(["normal:0.85", "joint:0.85"], [], tmp_path / "w", bench)
    assert [m.folder.relative_to(tmp_path / "w" / "smoke" / "samples").as_posix() for m in methods] == [
        "normal/mu1/fid", "joint/mu0.85/fid"]
    # the flipped protocol generates the normal prior at each mu, and the study reads that one
    bench["protocol"]["normal_prior_start"] = "mu"
    with pytest.raises(InputError, match="normal/mu0.85/fid is not a folder"):
        parse_methods(["normal:0.85", "joint:0.85"], [], tmp_path / "w", bench)


def test_bad_user_study_config_is_refused(tmp_path):
    res = snakemake(tmp_path, {"benchmarks": ["smoke"], "user_study": {"methods": ["joint"]}}, "-n", "user_study")
    assert res.returncode != 0 and "user_study" in (res.stdout + res.stderr)


def test_user_study_rule_runs_on_sample_folders_and_table4_follows(tmp_path):
    """The two rules for real, on sample folders laid out as `generate` writes them (the rules that
    would make them are not allowed to run, so the DAG stops at the samples)."""
    import numpy as np
    from PIL import Image

    from scpdiff.datasets import open_dataset
    from scpdiff.datasets.toy import write_toy_dataset

    write_toy_dataset(tmp_path / "data" / "smoke", num_train=1, num_val=16, resolution=(64, 128), seed=0)
    ds = open_dataset("toy", root=str(tmp_path / "data" / "smoke"), split="val", resolution=(64, 128))
    names = [ds[i][2] for i in range(16)]
    work = tmp_path / "work" / "smoke"
    (work / "data").mkdir(parents=True)
    (work / "data" / "index.json").write_text("{}")
    settings = {"normal": "1", "joint": "0.85"}
    for value, (prior, mu) in enumerate(settings.items()):
        for shard in range(2):  # 16 maps in shards of 8
            folder = work / "samples" / prior / f"mu{mu}" / "fid" / f"{shard:04d}"
            folder.mkdir(parents=True)
            for name in names[8 * shard: 8 * shard + 8]:
                Image.fromarray(np.full((64, 128, 3), 60 + 100 * value, np.uint8)).save(folder / f"{name}.png")
    config = {"benchmarks": ["smoke"], "user_study": {"methods": ["ControlNet=normal:1", "SCP-Diff=joint:0.85"],
                                                        "groups": 6, "seed": 1}}
    only = ["--allowed-rules", "user_study_build", "user_study", "table4", "--cores", "1"]
    res = snakemake(tmp_path, config, *only, "user_study")
    assert res.returncode == 0, res.stderr[-3000:]
    study_dir = work / "user_study"
    study = load_study(study_dir)
    assert study.methods == ["ControlNet", "SCP-Diff"] and len(study.groups) == 6
    for group in study.groups.values():
        for image, method in group.images.items():
            pixel = np.asarray(Image.open(study_dir / image))[0, 0, 0]
            assert pixel == (60 if method == "ControlNet" else 160)
    # the manifest is protected: a rebuild asks for the folder to be removed by hand
    assert not (study_dir / "manifest.csv").stat().st_mode & 0o222
    store = AnswerStore(study.database, study.study_id)
    invite(study_dir, count=2)
    for pid in (1, 2):
        for gid, images in study.participant_order(pid)[:2]:
            # SCP-Diff best for quality, ControlNet best for fidelity
            by_method = {study.groups[gid].images[im]: im for im in images}
            store.store_answer(pid, gid, {"quality": {by_method["SCP-Diff"]: 1, by_method["ControlNet"]: 2},
                                          "fidelity": {by_method["SCP-Diff"]: 2, by_method["ControlNet"]: 1}},
                               study.groups[gid].images)
    res = snakemake(tmp_path, config, *only, "results/smoke/table4/table4.csv")
    assert res.returncode == 0, res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "smoke" / "table4" / "table4.csv", index_col="method")
    assert table.loc["SCP-Diff", "quality_ahr"] == 2 and table.loc["ControlNet", "fidelity_ahr"] == 2
    assert (table["answers"] == 4).all()


@pytest.mark.slow
def test_study_from_the_smoke_run_and_its_table4(smoke_copy):
    run = smoke_copy  # the shared smoke run is read by other tests meanwhile (another xdist worker among them)
    study_dir = run / "work" / "smoke" / "user_study"
    table_dir = run / "results" / "smoke" / "table4"
    run_snakemake(run, "--cores", "1", "user_study")
    study = load_study(study_dir)
    assert study.methods == ["normal:1", "spatial:0.85", "categorical:0.85", "joint:0.85"]
    assert len(study.groups) == 16
    for group in study.groups.values():
        for image, method in group.images.items():
            prior, mu = method.split(":")
            source = list((run / "work" / "smoke" / "samples" / prior / f"mu{mu}" / "fid")
                          .glob(f"*/{group.label_map}.png"))
            assert len(source) == 1 and source[0].read_bytes() == (study_dir / image).read_bytes()
    # two participants answer through the store, as the server would
    store = AnswerStore(study.database, study.study_id)
    invite(study_dir, count=2)
    for pid in (1, 2):
        for gid, images in study.participant_order(pid)[:3]:
            by_method = sorted(images, key=lambda im: study.groups[gid].images[im])
            ranks = {im: i + 1 for i, im in enumerate(by_method)}  # methods sorted by name: best first
            store.store_answer(pid, gid, {"quality": ranks, "fidelity": ranks}, study.groups[gid].images)
    res = run_snakemake(run, "--cores", "1", "-n")
    assert "table4" in res.stdout and "user_study_build" not in res.stdout
    run_snakemake(run, "--cores", "1", "results/smoke/table4/table4.csv")
    table = pd.read_csv(table_dir / "table4.csv", index_col="method")
    assert table.loc["categorical:0.85", "quality_ahr"] == 4 and table.loc["spatial:0.85", "quality_ahr"] == 1
    assert (table["answers"] == 6).all()


def test_study_wide_table4_joins_all_with_the_per_benchmark_ones(tmp_path):
    config = {"benchmarks": ["smoke", "toy"]}
    for bench in ("smoke", "toy"):
        study = tmp_path / "work" / bench / "user_study"
        study.mkdir(parents=True)
        (study / "answers.sqlite").touch()
    jobs, out = dry_run(tmp_path, config, "all")
    assert jobs["table4"] == 2 and jobs["table4_study"] == 1
    assert "scpdiff user-study combine results/smoke/table4 results/toy/table4 --out-dir results" in out
