"""``scpdiff plan``: per-stage counts against hand counts, FLOPs against an independent count and a
published figure, the throughput sources, and the command's table and CSV."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scpdiff.cli import main
from scpdiff.config.benchmark import load_benchmark
from scpdiff.planning.model_costs import ModelCosts, model_costs
from scpdiff.planning.report import plan_rows
from scpdiff.planning.stages import plan_benchmark
from scpdiff.planning.throughput import Throughput, measured

# unit FLOPs, so that FLOP totals are plain sums of the counts
UNIT = ModelCosts(denoiser_step=1, vae_decode=0, vae_encode=0, inception=0.0, source="unit")


def by_stage(bench):
    return {r.stage: r for r in plan_benchmark(bench, UNIT, Throughput(1.0, "test"))}


def test_smoke_plan_matches_a_hand_count():
    rows = by_stage(load_benchmark("smoke"))
    # smoke: 4 priors, mu 0.85 only, oracle at 0.85 (+ normal at mu=1); 16 images per setting in
    # shards of 8; 4 DDIM steps, guidance 1.0 (no CFG); diversity 2 maps x 3 samples; sampling.seeds
    # [0, 1]: Table 1's 4 settings again under seed 1; 3 reference folders, each written and scored
    jobs = {"prepare data": 1, "train toy models": 3, "fine-tune": 1,
            "encode latents": 2 + 2,           # 16 reference / 8 + 16 val maps / 8
            "fit priors": 3 * (2 + 1),         # spatial, categorical, joint: 2 shards + 1 merge each
            # 5 FID settings (the normal prior once, at mu = 1: its controlnet start ignores mu, so
            # normal@0.85 reads normal@1) x 2 shards + 4 diversity x 1 + 4 seed-1 x 2
            "generate": 5 * 2 + 4 * 1 + 4 * 2,
            # one score job per generation shard (5 x 2 + 4 seed-1 x 2) and one merge per setting (5 + 4)
            "reference stats": 1, "reference rows": 3 + 3, "score FID/KID": 18 + 5 + 4, "segment": 0, "diversity": 4,
            # metrics.csv, 5 metrics CSVs (tables 1-3, mu sweep, oracle), 3 tables, 3 plots
            "tables": 1 + 5 + 3 + 3}
    assert {k: r.jobs for k, r in rows.items()} == jobs
    assert rows["generate"].images == 5 * 16 + 4 * 2 * 3 + 4 * 16
    # steps run (smoke's protocol: grid_tail start, the normal prior as plain ControlNet inference):
    # mu=0.85 of 4 -> round(3.4) = 3; the normal prior runs all 4, once.
    # FID: normal@1 (4), spatial/categorical/joint/oracle@0.85 (3 each); diversity: normal (4) and the others at 0.85
    # seed 1: normal (4) and spatial/categorical/joint (3) at 0.85
    assert rows["generate"].denoiser_evals == 16 * (4 + 4 * 3) + 6 * (4 + 3 * 3) + 16 * (4 + 3 * 3)
    assert rows["fine-tune"].denoiser_evals == 20 * 16  # 20 steps x batch 16 (training.controlnet)
    assert rows["score FID/KID"].inception_passes == 9 * 16 and rows["reference stats"].inception_passes == 16
    assert rows["segment"].segmenter_passes == 9 * 16  # the toy segmenter: one scale
    # reference rows: 16 real val (segmented), 16 real train (Inception), 16 VAE reconstructions (both)
    ref = rows["reference rows"]
    assert (ref.images, ref.inception_passes, ref.segmenter_passes) == (48, 32, 32)


def test_toy_plan_matches_a_hand_count():
    rows = by_stage(load_benchmark("toy"))
    # Table 1: 3 priors at mu 0.85 (grid_tail start: 17 of 20 DDIM steps) + the normal prior once
    # (plain ControlNet inference, mu = 1, all 20 steps, read by every mu's row); the sweep: 3 priors
    # x mu {0.55, 1} (11, 20 steps) + oracle x {0.25, 0.5, 1} (5, 10, 20 steps); 50 images each; no
    # CFG (guidance 1.0); seeds [0]: no repeat of the Table 1 settings; 4 diversity sets of 4 maps x
    # 6 samples
    assert rows["generate"].jobs == 13 + 4
    assert rows["generate"].images == 13 * 50 + 4 * 4 * 6
    assert rows["generate"].denoiser_evals == 50 * (20 + 3 * (17 + 11 + 20) + 5 + 10 + 20) + 24 * (20 + 3 * 17)
    # 1000 reference latents and the 200 val maps, one shard each
    assert rows["encode latents"].jobs == 1 + 1 and rows["encode latents"].images == 1000 + 200
    assert rows["fit priors"].jobs == 3 * 2 and rows["score FID/KID"].jobs == 13  # 1 shard each: the row job scores it
    assert rows["fine-tune"].denoiser_evals == 450 * 16
    # on 32x64 windows of the 64x128 images: a quarter of a whole-image step's FLOPs (unit costs)
    whole = load_benchmark("toy")
    del whole["training"]["controlnet"]["crop"]
    assert by_stage(whole)["fine-tune"].flops == 3 * 450 * 16
    assert rows["fine-tune"].flops == 3 * 450 * 16 / 4 and "on 32x64 windows" in rows["fine-tune"].note


def test_cityscapes_generation_counts_guidance_and_the_schedule_rounding():
    rows = by_stage(load_benchmark("cityscapes"))
    gen = rows["generate"]
    # 3 priors x 9 mu + the normal prior once + 6 oracle mu = 34 FID settings of 50,000 images in
    # shards of 1,000, + 4 x 2,000 (Table 3 at the official table_mu 0.8)
    assert gen.jobs == 34 * 50 + 4 * 2 and gen.images == 34 * 50_000 + 4 * 100 * 20
    # the official protocol: 20 DDIM steps, noised to D = round(mu*T) - 1, the first grid step >= D
    # starts and 951 never runs (docs/protocol.md): mu 0.5 ... 1 -> 11 13 15 16 17 18 19 19 19 steps;
    # oracle mu 0.05 ... 1 (D = 49, 249, 449, 649, 849, 999) -> 2 6 10 14 18 19; the normal prior is
    # plain ControlNet inference, 19 steps, generated once; guidance 4.0 -> 2 latents per step
    grid, oracle = 11 + 13 + 15 + 16 + 17 + 18 + 19 + 19 + 19, 2 + 6 + 10 + 14 + 18 + 19
    assert gen.denoiser_evals == 2 * (50_000 * (3 * grid + 19 + oracle) + 2_000 * (19 + 3 * 17))
    # DRN: scale 1 + 5 MS scales, on one image per val map (counts.segment_per_map 1, OASIS)
    assert rows["segment"].segmenter_passes == 34 * 500 * 6
    assert rows["fine-tune"].images == 100_000 * 16
    assert rows["reference stats"].inception_passes == 500


def _independent_flops():
    """2 x multiply-adds of every Conv2d and Linear (from their weights and output shapes) plus
    attention's two matmuls (4 x N x M x inner_dim), by module hooks, no FLOP counter."""
    from diffusers.models.attention_processor import Attention

    total = [0]

    def conv_or_linear(mod, inputs, out):
        if isinstance(mod, torch.nn.Conv2d):
            total[0] += 2 * (mod.weight[0].numel()) * out.numel()
        else:
            total[0] += 2 * mod.in_features * out.numel()

    def attention(mod, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        ctx = kwargs.get("encoder_hidden_states")
        n = x.shape[1] if x.ndim == 3 else x.shape[2] * x.shape[3]
        m = n if ctx is None else ctx.shape[1]
        total[0] += 4 * x.shape[0] * n * m * mod.inner_dim

    return total, conv_or_linear, attention, Attention


def test_sd21_base_step_flops_agree_with_an_independent_count_and_the_published_unet_figure():
    from scpdiff.models import sd_configs
    from scpdiff.models.flops import denoiser_step_flops

    counted = denoiser_step_flops("sd21-base", 512, 512)
    configs = sd_configs.get_configs("sd21-base")
    unet = sd_configs.build_unet(configs, device="meta", seed=None)
    controlnet = sd_configs.build_controlnet(configs, device="meta", seed=None)
    total, conv_or_linear, attention, Attention = _independent_flops()
    for model in (unet, controlnet):
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                mod.register_forward_hook(conv_or_linear)
            elif isinstance(mod, Attention):
                mod.register_forward_pre_hook(attention, with_kwargs=True)
    x = torch.zeros(1, 4, 64, 64, device="meta")
    t = torch.full((1,), 500, device="meta", dtype=torch.long)
    text = torch.zeros(1, 77, 1024, device="meta")
    cond = torch.zeros(1, 3, 512, 512, device="meta")
    with torch.no_grad():
        down, mid = controlnet(x, t, text, controlnet_cond=cond, return_dict=False)
        before_unet = total[0]
        unet(x, t, text, down_block_additional_residuals=down, mid_block_additional_residual=mid)
    assert counted == pytest.approx(total[0], rel=0.005)
    assert 0.9e12 < counted < 1.3e12  # docs/speed.md: 1.088 TFLOP
    # Published: SD's UNet at 512x512 is 339 G multiply-adds without attention's score matmuls
    # (BK-SDM, Kim et al. 2023, Table 1: SD-v1.4 U-Net, 339G MACs) = 678 GFLOP; SD 2.1 has the same
    # convolutions and projections (only the 77 text tokens' K/V projections are wider).
    unet_total = total[0] - before_unet
    assert 0.97 * 678e9 < unet_total - _self_attention_flops() < 1.03 * 678e9  # counted: 678.2


def _self_attention_flops() -> float:
    """Attention matmuls of SD's UNet at a 64x64 latent, by hand: per transformer block a self
    (N x N) and a cross (N x 77) attention, 4 N M d FLOPs each; 5 blocks (2 down, 3 up) per attended
    level at N = 64^2, 32^2, 16^2 with d = 320, 640, 1280, and 1 mid block at 8^2 x 1280."""
    levels = [(64 * 64, 320, 5), (32 * 32, 640, 5), (16 * 16, 1280, 5), (8 * 8, 1280, 1)]
    return sum(blocks * 4 * n * (n + 77) * d for n, d, blocks in levels)


def test_toy_model_costs_are_counted_on_its_tiny_models():
    costs = model_costs(load_benchmark("smoke"))
    assert 0 < costs.denoiser_step < 1e9 and costs.vae_decode > 0 and "toy" in costs.source


def test_a_measured_speed_csv_sets_the_rate(tmp_path):
    cols = ["device_name", "height", "width", "speed", "batch_size", "dtype", "achieved_tflops", "status"]
    with open(tmp_path / "generate-h200.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerow(dict(device_name="NVIDIA H200", height=512, width=1024, speed="fast", batch_size=8, dtype="bf16", achieved_tflops=400, status="ok"))
        w.writerow(dict(device_name="NVIDIA H200", height=512, width=512, speed="fast", batch_size=8, dtype="bf16", achieved_tflops=450, status="ok"))
        w.writerow(dict(device_name="NVIDIA H200", height=512, width=1024, speed="fast", batch_size=32, dtype="bf16", achieved_tflops=900, status="oom"))
    (tmp_path / "fit_priors.csv").write_text("variant,seconds\nspatial,1\n")
    rows, basis = plan_rows([load_benchmark("smoke")], gpu="h200", speed_dir=tmp_path)
    # smoke is 64x128: no row at its size, so the fastest ok row of any size
    assert "NVIDIA H200 measured in generate-h200.csv (fast, 512x512, batch 8, bf16)" in basis[0]
    gen = next(r for r in rows if r.stage == "generate")
    assert gen.gpu_hours == pytest.approx(gen.flops / 450e12 / 3600)
    # a row at the benchmark's own size wins over a faster one at another size; oom rows never count
    assert measured("h200", (512, 1024), tmp_path).tflops == 400
    assert measured("a100", (512, 1024), tmp_path) is None


def test_cli_prints_the_table_and_writes_the_csv(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    assert main(["plan", "--benchmark", "smoke", "--tflops", "100", "--utilisation", "0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:4] == ["benchmark", "stage", "jobs", "images"]
    assert "100 TFLOPS peak x 0.5 assumed utilisation" in printed
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["benchmark", "stage", "device", "jobs", "images", "denoiser_evals", "segmenter_passes",
                             "inception_passes", "flops", "gpu_hours", "disk_bytes", "note"]
    total = rows[-1]
    assert total["stage"] == "total"
    # every job of the smoke DAG (tests/test_workflow_dryrun.py): per benchmark + weights, the
    # 3 tables and the mu sweep over all benchmarks, all
    assert int(total["jobs"]) == sum(int(r["jobs"]) for r in rows[:-1]) + 6 == 96
    gpu = [r for r in rows[:-1] if r["device"] == "gpu"]
    assert float(total["gpu_hours"]) == pytest.approx(sum(float(r["flops"]) for r in gpu) / 50e12 / 3600, rel=1e-5)
    assert int(total["images"]) == 5 * 16 + 4 * 2 * 3 + 4 * 16  # images generated (seed 1 of Table 1 included)


def test_cli_rejects_an_unknown_gpu_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    assert main(["plan", "--benchmark", "smoke", "--gpu", "no-such-gpu", "--out", str(out)]) == 1
    assert "no measured generation speed for GPU 'no-such-gpu'" in capsys.readouterr().err
    assert not out.exists()


def test_plan_jobs_equal_the_snakemake_dry_run(tmp_path):
    """The independent reference: the jobs Snakemake itself schedules for the smoke config."""
    config = tmp_path / "config.yaml"
    config.write_text("benchmarks: [smoke]\n")
    snakemake = Path(sys.executable).with_name("snakemake")
    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run([str(snakemake), "-s", str(repo / "Snakefile"), "-d", str(tmp_path), "--configfile", str(config),
                          "-n", "--cores", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", (res.stdout + res.stderr).split("Job stats:")[1].split("\n\n")[0], re.M))
    rows, _ = plan_rows([load_benchmark("smoke")], tflops=1.0)
    plan = {r.stage: r.jobs for r in rows}
    assert plan["total"] == int(stats["total"])
    assert plan["generate"] == int(stats["generate"])
    assert plan["encode latents"] == int(stats["encode_latents"])
    assert plan["fit priors"] == int(stats["fit_prior"]) + int(stats["merge_priors"])
    assert plan["score FID/KID"] == int(stats["score_shard"]) + int(stats["score_fid"]) + int(stats["score_fid_seed"])
    assert plan["diversity"] == int(stats["score_diversity"])
    assert plan["reference rows"] == int(stats["reference_images"]) + int(stats["score_reference"])


def test_scoring_hours_from_a_measured_scoring_csv(tmp_path):
    """tools/speed/score.py rows (images/s per stage on a device) give the scoring rows their hours."""
    (tmp_path / "score-cpu.csv").write_text(
        "stage,images_per_s,device,segmenter,resolution\n"
        "fid_features,4.0,cpu,,64x128\nfid_features,2.0,cpu,,64x128\n"  # the faster row counts
        "segmentation,0.5,cpu,toy,64x128\nsegmentation,9.0,cpu,drn_d_105,64x128\nlpips,60.0,cpu,,64x128\n")
    rows, _ = plan_rows([load_benchmark("smoke")], tflops=1.0, speed_dir=tmp_path, scoring_device="cpu")
    by = {r.stage: r for r in rows}
    # smoke: 9 FID settings (Table 1's 4 with the normal prior at mu = 1, the oracle point, 4 seed-1
    # repeats) x 16 images; one image per map of 16 (toy segmenter); 4 x 2 maps x 3 pairs
    assert by["score FID/KID"].gpu_hours == pytest.approx(144 / 4.0 / 3600)
    assert by["segment"].gpu_hours == pytest.approx(144 / 0.5 / 3600)
    assert by["diversity"].gpu_hours == pytest.approx(4 * 2 * 3 / 60.0 / 3600)
    with pytest.raises(Exception, match="no measured scoring speed"):
        plan_rows([load_benchmark("smoke")], tflops=1.0, speed_dir=tmp_path, scoring_device="h100")


def test_cost_knobs_change_the_plan_as_they_change_the_dag():
    """counts.sweep_fid_samples, counts.segment_per_map and keep_images, by hand on the smoke config."""
    bench = load_benchmark("smoke")
    bench["counts"].update(sweep_fid_samples=8, segment_per_map=1)
    bench["keep_images"] = "none"
    rows = by_stage(bench)
    # Table 1's 4 settings (the normal prior's at mu = 1) keep 16 images (2 shards), the oracle
    # point gets 8 (1 shard); 4 diversity sets; the 4 seed-1 repeats of Table 1
    assert rows["generate"].jobs == 4 * 2 + 1 + 4 * 1 + 4 * 2
    assert rows["generate"].images == 4 * 16 + 8 + 4 * 2 * 3 + 4 * 16 and rows["generate"].disk_bytes == 0
    # the oracle point's one shard is scored by its row job: no shard job
    assert rows["score FID/KID"].jobs == (4 * 2 + 4 * 2) + 9
    bench["keep_images"] = "grid"  # the first shard (8 images) of each of the 5 FID settings
    assert by_stage(bench)["generate"].disk_bytes == pytest.approx(5 * 8 * 64 * 128 * 1.4)
