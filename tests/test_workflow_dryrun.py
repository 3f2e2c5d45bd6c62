"""The Snakemake workflow's DAG: dry runs of every benchmark, lint, config validation, resources,
and a prior variant registered in a plugin module flowing through every stage untouched."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import yaml

from scpdiff.config.benchmark import load_benchmark
from scpdiff.config.workflow import resolve_benchmark
from scpdiff.cli import main

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
REAL_BENCHMARKS = ("cityscapes", "ade20k", "cocostuff")


def snakemake(workdir: Path, config: dict, *args: str, env: dict | None = None, timeout: int = 300):
    """Run the repository's Snakefile in ``workdir`` with ``config`` as the only config file."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "wf_config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(cfg), *args]
    full_env = dict(os.environ, **(env or {}))
    full_env["PATH"] = os.pathsep.join([str(SNAKEMAKE.parent), full_env.get("PATH", "")])
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=workdir)


def dry_run(workdir: Path, config: dict, *args: str, **kw) -> tuple[Counter, str]:
    """(jobs per rule, printed shell commands) of ``snakemake -n -p``."""
    res = snakemake(workdir, config, "-n", "-p", "--cores", "2", *args, **kw)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = (res.stdout + res.stderr).replace("Shell command: ", "")
    block = out[out.index("Job stats:") :].split("\n\n")[0]
    counts = Counter()
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts, out


def expected_jobs(bench) -> Counter:
    """Job counts computed by hand from the benchmark's numbers (the design in common.smk)."""
    c = bench["counts"]
    fitted = [p for p in bench["priors"] if p not in ("normal", "oracle")]
    ref_shards = math.ceil(c["reference"] / c["shard_size"])
    num_val = bench["dataset"].get("num_val")
    val_shards = math.ceil(num_val / c["shard_size"]) if num_val else 1
    mus = {bench["mu"]["table"], *bench["mu"]["grid"]}
    settings = {(p, m) for p in bench["priors"] for m in mus}
    if bench["mu"].get("oracle_grid"):
        settings |= {("oracle", m) for m in bench["mu"]["oracle_grid"]} | {("normal", 1.0)}
    if bench["protocol"]["normal_prior_start"] == "controlnet":
        # plain ControlNet inference ignores mu: the normal prior is generated and scored once (mu = 1)
        settings = {(p, 1.0 if p == "normal" else m) for p, m in settings}
    gen_shards = math.ceil(c["fid_samples"] / c["shard_size"])
    div_shards = math.ceil(c["diversity_maps"] * c["diversity_samples"] / c["shard_size"])
    n_div = len([p for p in bench["priors"] if p != "oracle"])
    # Table 1's settings again under each further base seed
    n_seed = n_div * (len(bench["sampling"].get("seeds") or [0]) - 1)
    jobs = Counter(
        prepare_data=1, weights=1, ref_stats=1, train_controlnet=1,
        # the official joint prior's own quarter of the split (joint_reference), in as many shards
        encode_latents=ref_shards * (1 + (bench["protocol"]["joint_reference"] == "quarter_of_split"
                                          and "joint" in bench["priors"])) + val_shards, fit_prior=ref_shards * len(fitted), merge_priors=len(fitted),
        generate=(len(settings) + n_seed) * gen_shards + n_div * div_shards, score_fid=len(settings), score_diversity=n_div,
        # one score job per FID generation shard, merged per setting by score_fid / score_fid_seed,
        # which score a one-shard setting themselves
        score_shard=(len(settings) + n_seed) * gen_shards if gen_shards > 1 else 0,
        metrics=1, benchmark_table=3, plot_mu_sweep=1, plot_oracle=1, plot_samples=1,
        # one metrics CSV per report product: Tables 1-3, the mu sweep, the oracle figure
        collect_metrics=4 + bool(bench["mu"].get("oracle_grid")),
        # the study-wide Tables 1-3 and mu sweep (results/table{1,2,3}.*, results/mu_sweep.*)
        table=3, mu_sweep=1, all=1,
        # the reference rows: real val images, real train images, VAE reconstructions
        reference_images=3, score_reference=3,
    )
    if n_seed:
        jobs.update(score_fid_seed=n_seed)
    if bench.is_toy:
        jobs.update(train_vae=1, train_base=1, train_segmenter=1)
    return jobs


@pytest.mark.parametrize("file", ["toy", "smoke", "toy-vae4x"])
def test_dry_run_of_the_toy_benchmarks_has_every_stage(tmp_path, file):
    counts, out = dry_run(tmp_path, {"benchmarks": [file]})
    bench = load_benchmark(file)
    assert counts == expected_jobs(bench)
    # every job reads the resolved benchmark, and the config's folders are used
    name = bench.name
    assert f"--benchmark work/{name}/benchmark.yaml" in out
    assert yaml.safe_load((tmp_path / "work" / name / "benchmark.yaml").read_text())["name"] == name
    assert re.search(rf"scpdiff generate .*--out work/{name}/samples/joint/mu0\.85/fid/0000", out)


def test_smoke_dry_run_commands_follow_the_prior_registry(tmp_path):
    _, out = dry_run(tmp_path, {"benchmarks": ["smoke"]})
    gen = [line for line in out.splitlines() if line.startswith("scpdiff generate")]
    # fitted priors get their merged file; normal/oracle none; the oracle gets the val latents
    joint = next(line for line in gen if "--variant joint " in line)
    assert "--prior work/smoke/priors/joint.safetensors" in joint
    normal = next(line for line in gen if "--variant normal " in line)
    assert "--prior" not in normal and "--latents" not in normal
    oracle = next(line for line in gen if "--variant oracle " in line)
    assert "--latents work/smoke/latents/val/0000.safetensors work/smoke/latents/val/0001.safetensors" in oracle
    assert not any("priors/normal" in line or "priors/oracle" in line for line in out.splitlines())
    diversity = [line for line in gen if "/diversity/" in line]
    assert len(diversity) == 4 and all("--repeats 3 --maps 2" in line for line in diversity)
    assert "scpdiff collect-metrics --benchmark work/smoke/benchmark.yaml --score normal 0.85 " in out
    assert "scpdiff tables --metrics work/smoke/metrics/table1.csv --table 1 --out-dir results/smoke " in out
    assert "scpdiff tables --metrics work/smoke/metrics/table1.csv --table 1 --out-dir results " in out


def _real_config(tmp_path: Path, names, counts: dict | None = None, preset: str | None = None) -> dict:
    fixtures = pytest.importorskip("fixtures", reason="tests/fixtures (dataset builders) not available")
    makers = {"cityscapes": "make_cityscapes_fixture", "ade20k": "make_ade20k_fixture", "cocostuff": "make_cocostuff_fixture"}
    overrides = {}
    base = tmp_path / "models" / "sd21-base"
    fixtures.make_sd_base_fixture(base)
    seg = tmp_path / "models" / "segmenter.pth"
    seg.parent.mkdir(parents=True, exist_ok=True)
    seg.write_bytes(b"weights")
    for name in names:
        if not (REPO / "benchmarks" / f"{name}.yaml").is_file():
            pytest.skip(f"benchmarks/{name}.yaml not written yet")
        root = getattr(fixtures, makers[name])(tmp_path / "data" / name)
        overrides[name] = {"dataset": {"root": str(root)}, "models": {"base": str(base)},
                           "segmenter": {"checkpoint": str(seg)}}
        if counts:
            overrides[name]["counts"] = counts
        if preset:
            overrides[name]["protocol"] = {"preset": preset}
    return {"benchmarks": list(names), "overrides": overrides}


@pytest.mark.parametrize("preset", ["official", "paper"])
@pytest.mark.parametrize("name", REAL_BENCHMARKS)
def test_dry_run_of_a_real_benchmark_on_fixture_paths(tmp_path, name, preset):
    small = {"reference": 8, "fid_samples": 20, "diversity_maps": 2, "diversity_samples": 4, "shard_size": 4}
    config = _real_config(tmp_path, [name], counts=small, preset=preset)
    counts, out = dry_run(tmp_path, config)
    # the jobs read the resolved protocol, every knob explicit (docs/protocol.md)
    resolved = yaml.safe_load((tmp_path / "work" / name / "benchmark.yaml").read_text())["protocol"]
    assert resolved["preset"] == preset and resolved["start_rule"] == ("official" if preset == "official" else "grid_tail")
    # FID masks are drawn with replacement (both presets: the paper is silent), so not every val map has an image
    assert resolved["fid_masks"] == "with_replacement" and "--allow-subset" in out
    bench = resolve_benchmark(name, {name: {"protocol": {"preset": preset}}}) if preset else load_benchmark(name)
    bench["counts"] = small
    assert counts == expected_jobs(bench)
    # no toy training; the real models and the published segmenter are inputs
    assert "train_vae" not in counts and "train_segmenter" not in counts
    assert f"--base {tmp_path}/models/sd21-base" in out
    assert f"--segmenter-checkpoint {tmp_path}/models/segmenter.pth" in out
    # the GPU stages ask for a GPU by the SLURM plugin's `gpu` resource, the CPU ones do not
    gpu_of = dict(re.findall(r"rule (\w+):\n(?:    .*\n)*?    resources: [^\n]*?gpu=(\d)", out))
    assert gpu_of["train_controlnet"] == "1" and gpu_of["generate"] == "1" and gpu_of["score_shard"] == "1"
    assert gpu_of["fit_prior"] == "0" and gpu_of["benchmark_table"] == "0" and gpu_of["score_fid"] == "0"


@pytest.mark.slow
def test_dry_run_of_all_real_benchmarks_at_the_papers_counts(tmp_path):
    config = _real_config(tmp_path, REAL_BENCHMARKS)
    counts, out = dry_run(tmp_path, config, timeout=600)
    expected = Counter()
    for name in REAL_BENCHMARKS:
        expected.update(expected_jobs(load_benchmark(name)))
    for rule in ("weights", "all", "table", "mu_sweep"):
        expected[rule] = expected[rule] // len(REAL_BENCHMARKS)
    assert counts == expected
    # no folder holds more than a few thousand files: at most shard_size images per shard folder
    shards = set(re.findall(r"--out (work/\w+/samples/\w+/mu[0-9.]+/fid)/\d{4}", out))
    assert shards and max(counts["generate"], 0) > 1000
    for name in REAL_BENCHMARKS:
        assert load_benchmark(name)["counts"]["shard_size"] <= 2000


def test_benchmark_resources_block_sets_rule_resources(tmp_path):
    config = {"benchmarks": ["smoke"],
              "overrides": {"smoke": {"resources": {"generate": {"gpu": 1, "mem_mb": 12345, "runtime": 77},
                                                    "default": {"runtime": 5}}}}}
    _, out = dry_run(tmp_path, config)
    gen = re.search(r"rule generate:\n(?:    .*\n)*?    resources: ([^\n]*)", out).group(1)
    assert "gpu=1" in gen and "mem_mb=12345" in gen and "runtime=77" in gen
    fit = re.search(r"rule fit_prior:\n(?:    .*\n)*?    resources: ([^\n]*)", out).group(1)
    assert "gpu=0" in fit and "runtime=5" in fit and "mem_mb=4000" in fit


PLUGIN = '''
"""Two prior variants outside the package (a test plugin)."""
from scpdiff.priors import get_prior_class, register


@register("tempered_joint")
class TemperedJointPrior(get_prior_class("joint")):
    """The joint prior with halved variance."""

    def token_stats(self, labels):
        mean, var = super().token_stats(labels)
        return mean, 0.5 * var


@register("wide_normal")
class WideNormalPrior(get_prior_class("normal")):
    """Unfitted, like the normal prior."""
'''


def test_a_plugin_prior_variant_flows_through_every_stage(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "my_priors.py").write_text(textwrap.dedent(PLUGIN))
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    config = {"benchmarks": ["smoke"], "plugins": ["my_priors"],
              "overrides": {"smoke": {"priors": ["normal", "tempered_joint", "wide_normal"]}}}
    counts, out = dry_run(tmp_path / "run", config, env=env)
    lines = out.splitlines()
    # the commands are those of a study without the plugin (the shell prefix exports
    # SCPDIFF_PLUGINS), so adding a variant reruns nothing else (test_workflow_smoke.py runs one)
    prefix = "scpdiff"
    # fitted per reference shard and merged: it needs fitting
    fits = [line for line in lines if line.startswith(f"{prefix} fit-prior") and "--variant tempered_joint" in line]
    smoke = load_benchmark("smoke")["counts"]
    shards = -(-smoke["reference"] // smoke["shard_size"])  # one fit per reference-latent shard
    assert shards >= 2 and len(fits) == shards
    assert any(line.startswith(f"{prefix} merge-priors --out work/smoke/priors/tempered_joint.safetensors") for line in lines)
    # the unfitted one is never fitted
    assert not any("--variant wide_normal" in line for line in lines if "fit-prior" in line)
    gen = [line for line in lines if line.startswith(f"{prefix} generate")]
    assert any("--variant tempered_joint --prior work/smoke/priors/tempered_joint.safetensors" in line for line in gen)
    assert any("--variant wide_normal  --mu" in line for line in gen)
    tables = next(line for line in lines if line.startswith(f"{prefix} collect-metrics") and "results/smoke/metrics.csv" in line)
    assert "--score tempered_joint 0.85 work/smoke/scores/tempered_joint/mu0.85.json" in tables
    assert "--diversity-score wide_normal 0.85" in tables
    assert counts["fit_prior"] == shards and counts["merge_priors"] == 1
    # and the CLI imports the same plugin (SCPDIFF_PLUGINS) so the jobs know the variant
    probe = subprocess.run(
        [sys.executable, "-c", "import os, sys; from scpdiff.cli import main; "
         "sys.exit(main(['validate-config', 'wf_config.yaml']))"],
        cwd=tmp_path / "run", env=dict(os.environ, **env, SCPDIFF_PLUGINS="my_priors"), capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert "tempered_joint" in probe.stdout


def test_unknown_prior_without_its_plugin_is_rejected_clearly(tmp_path):
    config = {"benchmarks": ["smoke"], "overrides": {"smoke": {"priors": ["normal", "tempered_joint"]}}}
    res = snakemake(tmp_path, config, "-n", "--cores", "1")
    assert res.returncode != 0
    err = res.stdout + res.stderr
    assert "unknown prior variant 'tempered_joint'" in err and "smoke.yaml" in err


def test_lint_is_clean(tmp_path):
    res = snakemake(tmp_path, {"benchmarks": ["smoke"]}, "--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


@pytest.mark.parametrize(
    "config, message",
    [
        ({"benchmarks": ["smoke"], "workdir": "w"}, "'workdir' was unexpected"),
        ({"benchmarks": []}, "benchmarks: [] should be non-empty"),
        ({"benchmarks": ["smoke"], "work_dir": 3}, "work_dir: 3 is not of type 'string'"),
        ({"benchmarks": ["smoke"], "plugins": ["not a module"]}, "plugins/0: 'not a module' does not match"),
        ({"benchmarks": ["smoke"], "overrides": {"toy": {"prompt": "x"}}}, "overrides for ['toy'] name no benchmark"),
        ({"benchmarks": ["smoke"], "overrides": {"smoke": {"resolution": [60, 128]}}}, "resolution/0: 60 is not a multiple of 8"),
        ({"benchmarks": ["nosuch"]}, "no benchmark named 'nosuch'"),
        ({"benchmarks": ["smoke"], "plugins": ["no_such_plugin_module"]}, "plugin module 'no_such_plugin_module' cannot be imported"),
    ],
)
def test_bad_configs_are_rejected_with_a_clear_message(tmp_path, capsys, config, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["validate-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert str(path) in err or "smoke.yaml" in err or "nosuch" in err


def test_snakemake_rejects_a_bad_config_before_building_the_dag(tmp_path):
    res = snakemake(tmp_path, {"benchmarks": ["smoke"], "work_dir": 3}, "-n", "--cores", "1")
    assert res.returncode != 0
    err = res.stdout + res.stderr
    assert "wf_config.yaml: invalid workflow config" in err and "work_dir: 3 is not of type 'string'" in err


@pytest.mark.parametrize("word, value", [("false", False), ("False", False), ("TRUE", True), ("true", True)])
def test_a_boolean_from_the_command_line_is_read_as_yaml_reads_it(word, value):
    from scpdiff.config.workflow import validate_workflow_config

    # Snakemake's --config turns True/False into booleans and leaves false/true strings
    assert validate_workflow_config({"benchmarks": ["smoke"], "forkserver": word})["forkserver"] is value


def test_a_word_that_is_not_a_boolean_is_still_rejected():
    from scpdiff.config.workflow import validate_workflow_config
    from scpdiff.errors import ConfigError

    with pytest.raises(ConfigError, match="forkserver: 'off please' is not of type 'boolean'"):
        validate_workflow_config({"benchmarks": ["smoke"], "forkserver": "off please"}, source="cli")


def test_snakemake_takes_forkserver_false_as_typed(tmp_path):
    res = snakemake(tmp_path, {"benchmarks": ["smoke"]}, "-n", "--cores", "1", "--config", "forkserver=false")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_validate_config_accepts_the_shipped_configs(capsys):
    assert main(["validate-config", str(REPO / "config" / "config.yaml")]) == 0
    for name in ("toy", "smoke", "toy-vae4x", *REAL_BENCHMARKS):
        if (REPO / "benchmarks" / f"{name}.yaml").is_file():
            # the real benchmarks' data is not on every machine: their content only
            assert main(["validate-config", "--schema-only", str(REPO / "benchmarks" / f"{name}.yaml")]) == 0
    assert "benchmark toy: ok" in capsys.readouterr().out


def test_a_single_table_or_figure_target_builds_only_what_it_shows(tmp_path):
    smoke = load_benchmark("smoke")
    c = smoke["counts"]
    fid_shards = math.ceil(c["fid_samples"] / c["shard_size"])
    counts, out = dry_run(tmp_path, {"benchmarks": ["smoke"]}, "results/table1.tex")
    # Table 1: every compared prior at mu.table, scored for FID/mIoU, under each of sampling.seeds
    # (the between-seed spread), and its reference rows; no diversity, oracle, plots
    compared = [p for p in smoke["priors"] if p != "oracle"]
    seeds = len(smoke["sampling"]["seeds"])
    assert counts["generate"] == len(compared) * fid_shards * seeds and counts["score_fid"] == len(compared)
    assert counts["score_fid_seed"] == len(compared) * (seeds - 1) and counts["score_reference"] == 3
    assert counts["table"] == 1 and counts["collect_metrics"] == 1
    for rule in ("score_diversity", "benchmark_table", "plot_mu_sweep", "plot_oracle", "metrics", "mu_sweep"):
        assert rule not in counts, rule
    assert "latents/val" not in out  # the oracle's paired latents are not needed
    counts, _ = dry_run(tmp_path, {"benchmarks": ["smoke"]}, "results/mu_sweep.pdf")
    assert counts["mu_sweep"] == 1 and "score_diversity" not in counts and "table" not in counts


def test_study_tables_have_a_column_group_per_benchmark(tmp_path):
    _, out = dry_run(tmp_path, {"benchmarks": ["toy", "smoke"]})
    for i in (1, 2, 3):
        assert (f"scpdiff tables --metrics work/toy/metrics/table{i}.csv work/smoke/metrics/table{i}.csv "
                f"--table {i} --out-dir results ") in out
    assert "--metrics work/toy/metrics/mu_sweep.csv work/smoke/metrics/mu_sweep.csv --out results/mu_sweep.png" in out


# A prior variant made by a rule of the user's (the config's extra_rules), as in the README.
RULE_MADE_PRIOR = '''
rule shrunk_spatial_prior:
    input:
        f"{WORK}/{{bench}}/priors/spatial.safetensors",
    output:
        f"{WORK}/{{bench}}/priors/shrunk_spatial.safetensors",
    shell:
        "scpdiff scale-prior --prior {input} --variance 0.5 --out {output}"
'''


def _rule_file(tmp_path: Path, text: str = RULE_MADE_PRIOR) -> Path:
    path = tmp_path / "my_rules" / "priors.smk"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_prior_made_by_a_user_rule_replaces_fitting_downstream(tmp_path):
    rules = _rule_file(tmp_path)
    # spatial itself is not compared: the rule's input still gets fitted
    config = {"benchmarks": ["smoke"], "extra_rules": [str(rules.relative_to(tmp_path))],
              "overrides": {"smoke": {"priors": ["normal", "shrunk_spatial"]}}}
    counts, out = dry_run(tmp_path, config)
    lines = out.splitlines()
    assert counts["shrunk_spatial_prior"] == 1
    assert [line for line in lines if line.startswith("scpdiff scale-prior")] == [
        "scpdiff scale-prior --prior work/smoke/priors/spatial.safetensors --variance 0.5 "
        "--out work/smoke/priors/shrunk_spatial.safetensors"]
    fits = [line for line in lines if line.startswith("scpdiff fit-prior")]
    assert fits and all("--variant spatial " in line for line in fits)
    assert not any("priors/shrunk_spatial/shards" in line for line in lines)
    gen = [line for line in lines if line.startswith("scpdiff generate") and "--variant shrunk_spatial " in line]
    assert gen and all("--prior work/smoke/priors/shrunk_spatial.safetensors" in line for line in gen)
    assert any("--score shrunk_spatial 0.85 work/smoke/scores/shrunk_spatial/mu0.85.json" in line
               for line in lines if line.startswith("scpdiff collect-metrics"))


@pytest.mark.parametrize("case, message", [
    ("unknown", "priors: unknown prior variant 'nosuch'"),
    ("registered", "a rule writes the prior file of 'spatial', a registered variant"),
    ("missing", "extra_rules: 'no/such.smk' is not a file"),
])
def test_rule_made_prior_errors_name_the_config(tmp_path, case, message):
    rules = _rule_file(tmp_path, RULE_MADE_PRIOR.replace("shrunk_spatial.safetensors", "spatial.safetensors")
                       .replace("{{bench}}/priors/spatial.safetensors\",\n    output", "{{bench}}/priors/joint.safetensors\",\n    output")
                       if case == "registered" else RULE_MADE_PRIOR)
    priors = {"unknown": ["normal", "shrunk_spatial", "nosuch"], "registered": ["normal", "spatial"],
              "missing": ["normal"]}[case]
    config = {"benchmarks": ["smoke"], "extra_rules": ["no/such.smk" if case == "missing" else str(rules)],
              "overrides": {"smoke": {"priors": priors}}}
    res = snakemake(tmp_path, config, "-n", "--cores", "1")
    err = res.stdout + res.stderr
    assert res.returncode != 0 and message in err, err[-3000:]
    assert "wf_config.yaml" in err
    if case == "unknown":
        assert "smoke.yaml" in err and "shrunk_spatial" in err  # what the rules do write


def test_validate_config_accepts_extra_rules(tmp_path, capsys):
    rules = _rule_file(tmp_path)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": ["smoke"], "extra_rules": [str(rules)],
                                    "overrides": {"smoke": {"priors": ["normal", "shrunk_spatial"]}}}))
    assert main(["validate-config", str(path)]) == 0
    assert "written by these rules" in capsys.readouterr().out


def test_a_perceptual_vae_term_brings_the_lpips_weights(tmp_path):
    _, plain = dry_run(tmp_path / "a", {"benchmarks": ["smoke"],
                                        "overrides": {"smoke": {"training": {"vae": {"perceptual_weight": 0.0}}}}})
    vae = next(line for line in plain.splitlines() if line.startswith("scpdiff train-vae"))
    assert "--cache" not in vae  # no LPIPS: the VAE does not wait for the metric weights
    _, out = dry_run(tmp_path / "b", {"benchmarks": ["smoke"]})  # the toy's VAE (and smoke's) has the term
    vae = next(line for line in out.splitlines() if line.startswith("scpdiff train-vae"))
    assert "--cache .cache/scpdiff" in vae


def test_cost_knobs_reach_the_jobs_and_the_plan_counts_them(tmp_path):
    """counts.sweep_fid_samples makes the mu-sweep / oracle points smaller (--num-images, fewer shards),
    counts.segment_per_map reaches every shard score, keep_images: none runs generation through the
    temp() rule; the plan counts the same jobs."""
    from scpdiff.config.workflow import resolve_benchmark
    from scpdiff.planning.report import plan_rows

    overrides = {"smoke": {"counts": {"sweep_fid_samples": 8, "segment_per_map": 2}, "keep_images": "none"}}
    counts, out = dry_run(tmp_path, {"benchmarks": ["smoke"], "overrides": overrides})
    # the oracle point: 8 images in one shard; Table 1's settings (normal@1 among them) keep 16 in two
    assert re.search(r"--variant oracle .*--num-images 8 .*--num-shards 1 ", out)
    assert re.search(r"--variant joint .*--mu 0\.85 --split val --shard 1 --num-shards 2 ", out)
    assert "--num-images" not in next(line for line in out.splitlines() if "--variant joint " in line)
    shard_scores = [line for line in out.splitlines() if line.startswith("scpdiff score ") and ".npz >" in line]
    assert len(shard_scores) == counts["score_shard"] and all("--segment-per-map 2" in line for line in shard_scores)
    assert counts["generate_discarded"] == 4 * 2 + 1 + 4 + 4 * 2 and "generate" not in counts
    assert counts["reference_images_discarded"] == 3
    rows, _ = plan_rows([resolve_benchmark("smoke", overrides)], tflops=1.0)
    plan = {r.stage: r.jobs for r in rows}
    assert plan["generate"] == counts["generate_discarded"]
    assert plan["score FID/KID"] == counts["score_shard"] + counts["score_fid"] + counts["score_fid_seed"]
    assert plan["total"] == sum(counts.values())


def test_dry_run_of_the_toy_protocol_ablation(tmp_path):
    from scpdiff.config.ablation import applied_flips

    counts, out = dry_run(tmp_path, {"benchmarks": ["toy"]}, "results/toy/protocol_ablation.csv")
    n = len(applied_flips(load_benchmark("toy")))
    assert n == 11 and "all" not in counts  # not part of the default target
    assert counts["ablation_benchmark"] == counts["ablation_generate"] == counts["ablation_score"] == n
    # reference_draw and joint_reference encode their own reference shards; the normal prior is not fitted;
    # no flip changes the toy's FID reference set; the defaults: joint and categorical at 0.85, normal once
    c = load_benchmark("toy")["counts"]
    ref_shards = math.ceil(c["reference"] / c["shard_size"])
    assert (counts["ablation_latents"], counts["ablation_fit"], counts["ablation_ref_stats"]) == (2 * ref_shards, n - 1, 0)
    assert counts["score_fid"] == 3 and counts["protocol_ablation"] == 1
    gen = [line for line in out.splitlines() if line.startswith("scpdiff generate --benchmark work/toy/ablation/")]
    assert any("ablation/table_mu/benchmark.yaml" in line and "--mu 0.8 " in line for line in gen)
    assert any("ablation/normal_prior_start/" in line and "--variant normal " in line and "--prior" not in line
               for line in gen)
    assert "--split train_joint" in out and "--default-score joint work/toy/scores/joint/mu0.85.json" in out
