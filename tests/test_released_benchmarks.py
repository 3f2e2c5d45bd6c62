"""The released-model benchmarks (Table 1 from the authors' ControlNets and statistics): their
DAG imports instead of fine-tuning, encoding and fitting, and everything downstream is unchanged."""

from __future__ import annotations

import math

import pytest
import yaml

from scpdiff.config.benchmark import load_benchmark
from test_workflow_dryrun import _real_config, dry_run

RELEASED = {"cityscapes": "cityscapes_released", "ade20k": "ade20k_released"}


@pytest.mark.parametrize("dataset", sorted(RELEASED))
def test_released_benchmark_dry_run_imports_instead_of_training(tmp_path, dataset):
    name = RELEASED[dataset]
    small = {"reference": 8, "fid_samples": 20, "diversity_maps": 2, "diversity_samples": 4, "shard_size": 4}
    config = _real_config(tmp_path, [dataset], counts=small)
    over = config["overrides"].pop(dataset)
    ckpt = tmp_path / "released" / f"{dataset}.ckpt"
    stats = tmp_path / "released" / "statistics"
    stats.mkdir(parents=True)
    ckpt.write_bytes(b"checkpoint")
    for kind in ("spatial", "categorical", "spatial_class"):
        (stats / f"{dataset}_{kind}_mean_std.npy").write_bytes(b"npy")
    over["models"]["controlnet_checkpoint"] = str(ckpt)
    over["priors_from"] = {"official_stats": str(stats), "name": dataset}
    config = {"benchmarks": [f"{dataset}-released"], "overrides": {name: over}}
    counts, out = dry_run(tmp_path, config)

    bench = load_benchmark(f"{dataset}-released")
    priors = bench["priors"]
    gen_shards = math.ceil(small["fid_samples"] / small["shard_size"])
    div_shards = math.ceil(small["diversity_maps"] * small["diversity_samples"] / small["shard_size"])
    assert counts["import_controlnet"] == 1 and counts["import_priors"] == 1
    for rule in ("train_controlnet", "encode_latents", "fit_prior", "merge_priors", "train_vae"):
        assert rule not in counts, rule
    assert counts["generate"] == len(priors) * (gen_shards + div_shards)
    assert counts["score_fid"] == len(priors) and counts["score_diversity"] == len(priors)
    released = f"work/{name}/models/released"
    assert f"scpdiff import-controlnet {ckpt} --base {tmp_path}/models/sd21-base --out {released} --trust-pickle" in out
    assert f"scpdiff import-priors {stats} --benchmark work/{name}/benchmark.yaml --name {dataset} --trust-pickle" in out
    gen = [line for line in out.splitlines() if line.startswith("scpdiff generate")]
    assert all(f"--base {released} --controlnet {released}" in line for line in gen)
    joint = next(line for line in gen if "--variant official_joint " in line)
    assert f"--prior work/{name}/priors/official_joint.safetensors" in joint
    # `scpdiff plan` counts the jobs this DAG runs: imports, no fine-tuning, encoding or fitting
    from scpdiff.config.workflow import resolve_benchmark
    from scpdiff.planning.report import plan_rows

    rows, _ = plan_rows([resolve_benchmark(f"{dataset}-released", {name: over})], tflops=1.0)
    plan = {r.stage: r.jobs for r in rows}
    assert plan["import ControlNet"] == counts["import_controlnet"] and "fine-tune" not in plan
    assert plan["encode latents"] == 0 and plan["fit priors"] == counts["import_priors"]
    assert plan["total"] == sum(counts.values())


def test_released_benchmarks_carry_the_papers_table1():
    paper = {  # the paper's Table 1 (mIoU, Acc, FID): Cityscapes, ADE20K
        "cityscapes-released": {"normal": (65.14, 94.14, 23.35), "official_joint": (67.92, 94.65, 10.53)},
        "ade20k-released": {"normal": (20.73, 61.14, 20.58), "official_joint": (25.61, 71.79, 12.66)},
    }
    for name, rows in paper.items():
        table = load_benchmark(name)["table1"]
        assert "Table 1" in table["source"]
        assert set(table["values"]) == set(load_benchmark(name)["priors"])
        for prior, (miou, acc, fid) in rows.items():
            assert table["values"][prior] == {"miou": miou, "acc": acc, "fid": fid}


def test_a_tiny_release_generates_through_the_dag(tmp_path):
    """The smoke benchmark with the tiny official-format checkpoint and official statistics in place
    of training and fitting: the DAG imports both and generates a shard with the joint prior."""
    from fixtures.released import CHECKPOINT, ORIGINAL_CONFIG, save_matching_base, write_official_statistics
    from test_workflow_dryrun import REPO, snakemake

    base = save_matching_base(tmp_path / "models" / "sd")
    stats = write_official_statistics(tmp_path / "stats", "tiny", 8, 16, slots=[*range(9), 255])
    (tmp_path / "smoke_released.yaml").write_text(yaml.safe_dump({
        "extends": str(REPO / "benchmarks" / "smoke.yaml"),
        "name": "smoke_released",
        "dataset": {"root": str(tmp_path / "data")},
        "models": {"base": str(base), "controlnet_checkpoint": str(CHECKPOINT), "original_config": str(ORIGINAL_CONFIG)},
        "priors_from": {"official_stats": str(stats), "name": "tiny", "trust_pickle": True},
        "priors": ["normal", "official_joint"],
        "mu": {"oracle_grid": []},
    }))
    target = "work/smoke_released/samples/official_joint/mu0.85/fid/0000"
    res = snakemake(tmp_path / "run", {"benchmarks": [str(tmp_path / "smoke_released.yaml")]}, "--cores", "1", target,
                    timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "rule import_controlnet" in log and "rule import_priors" in log
    assert "rule train_controlnet" not in log and "rule fit_prior" not in log and "rule encode_latents" not in log
    shard = tmp_path / "run" / target
    assert len(list(shard.glob("*.png"))) == 8 and (shard / "generation.json").is_file()
