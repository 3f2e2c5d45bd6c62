"""tools/speed/generate.py: FLOP counts against hand counts, peak table, and the CSV it writes."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("tools/speed/generate.py", "speed_generate")


def test_flops_of_a_linear_layer_match_a_hand_count(bench):
    layer = torch.nn.Linear(7, 5)
    x = torch.randn(3, 7)
    # 3 rows x 5 outputs x 7 multiply-adds, 2 FLOPs each (the bias add is not counted)
    assert bench.count_flops(lambda: layer(x)) == 2 * 3 * 5 * 7


def test_flops_of_a_convolution_match_a_hand_count(bench):
    conv = torch.nn.Conv2d(3, 4, kernel_size=3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    # every output value (2 x 4 x 8 x 8) is 3 x 3 x 3 multiply-adds
    assert bench.count_flops(lambda: conv(x)) == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3)
    strided = torch.nn.Conv2d(3, 4, kernel_size=3, padding=1, stride=2)
    assert bench.count_flops(lambda: strided(x)) == 2 * (2 * 4 * 4 * 4) * (3 * 3 * 3)


def test_attention_flops_are_counted_on_the_cpu(bench):
    b, h, s_q, s_k, d = 2, 3, 16, 24, 8
    q, k, v = torch.randn(b, h, s_q, d), torch.randn(b, h, s_k, d), torch.randn(b, h, s_k, d)
    # QK^T and (softmax) V: two matmuls of b*h*s_q*s_k*d multiply-adds
    assert bench.count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == 2 * 2 * b * h * s_q * s_k * d


def test_step_flops_on_meta_equal_a_real_run_and_scale_with_batch(bench):
    from scpdiff.models import sd_configs

    on_meta = bench.denoiser_step_flops("sd21-tiny", 64, 64)
    assert on_meta == bench.denoiser_step_flops("sd21-tiny", 64, 64, device="cpu")
    assert bench.denoiser_step_flops("sd21-tiny", 64, 64, batch=2) == 2 * on_meta
    # the ControlNet hint encoder's first conv alone (3 -> 8 channels, 3x3, at 64x64) is part of it
    cfg = sd_configs.get_configs("sd21-tiny")
    first_hint_conv = 2 * (cfg.controlnet["conditioning_embedding_out_channels"][0] * 64 * 64) * (3 * 3 * 3)
    assert on_meta > first_hint_conv
    assert bench.vae_decode_flops("sd21-tiny", 64, 128) > bench.vae_decode_flops("sd21-tiny", 64, 64)


def test_peak_table(bench):
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", torch.bfloat16)[0] == 989.4
    assert bench.peak_tflops("NVIDIA H100 PCIe", torch.float16)[0] == 756.0
    assert bench.peak_tflops("NVIDIA A100-SXM4-80GB", torch.bfloat16)[0] == 312.0
    value, why = bench.peak_tflops("Some GPU", torch.bfloat16)
    assert value is None and "--peak-tflops" in why


def test_parse_sizes(bench):
    assert bench.parse_sizes("512x512,512X1024") == [(512, 512), (512, 1024)]
    with pytest.raises(SystemExit, match="HEIGHTxWIDTH"):
        bench.parse_sizes("512")


def test_tiny_run_writes_the_csv_and_resumes(bench, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    out = tmp_path / "speed.csv"
    args = ["--tiny", "--sizes", "64x64", "--batch-sizes", "1,2", "--speed", "default", "--steps", "2", "--out", str(out)]
    assert bench.main(args) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == bench.COLUMNS
    assert len(table) == 2 and set(table.status) == {"ok"} and list(table.batch_size) == [1, 2]
    row = table.iloc[1]
    assert row.device == "cpu" and row["dtype"] == "float32" and row.options == "sdpa,batched-vae"
    assert row.generation_path == "scpdiff.sampling.sample_images"
    assert row.denoise_steps == 2 and row.cfg_factor == 2  # mu = 0.85 of 2 steps rounds to 2; CFG 7.5
    assert row.images_per_s == pytest.approx(row.batch_size / row.batch_seconds_median)
    assert row.speedup_vs_paper_a100 == pytest.approx(2.34 * row.images_per_s)
    # FLOPs per image: every denoising step twice (CFG) plus one VAE decode
    assert row.gflop_per_image == pytest.approx(2 * 2 * row.step_gflop + row.vae_decode_gflop)
    assert row.achieved_tflops == pytest.approx(row.gflop_per_image * row.images_per_s / 1e3)
    assert pd.isna(row.fraction_of_peak)  # no peak for a CPU

    # rerunning measures nothing again; a new batch size is added
    timed = []
    original = bench.time_batches
    monkeypatch.setattr(bench, "time_batches", lambda *a, **k: timed.append(1) or original(*a, **k))
    assert bench.main(args) == 0
    assert timed == [] and len(pd.read_csv(out)) == 2
    assert bench.main(args[:4] + ["1,3"] + args[5:]) == 0
    assert timed == [1] and list(pd.read_csv(out).batch_size) == [1, 2, 3]


def test_benchmark_settings_peak_fraction_and_out_of_memory(bench, tmp_path, monkeypatch):
    """The GPU-only branches on the CPU: a given peak, and a batch that does not fit."""
    torch.set_num_threads(1)
    original = bench.measure

    def measure(run, device, args, batch, gflop_per_image, peak):
        if batch == 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(run, device, args, batch, gflop_per_image, peak)

    monkeypatch.setattr(bench, "measure", measure)
    out = tmp_path / "speed.csv"
    args = ["--tiny", "--benchmark", "smoke", "--batch-sizes", "1,2,3", "--speed", "none", "--peak-tflops", "0.5", "--out", str(out)]
    assert bench.main(args) == 0
    table = pd.read_csv(out)
    # smoke.yaml: 64x128, 4 DDIM steps, mu 0.85 -> 3 steps run, guidance 1.0 -> no CFG pass
    assert set(zip(table.height, table.width)) == {(64, 128)}
    assert set(table.ddim_steps) == {4} and set(table.denoise_steps) == {3} and set(table.cfg_factor) == {1}
    assert list(table.batch_size) == [1, 2] and list(table.status) == ["ok", "oom"]  # batch 3 skipped
    ok = table.iloc[0]
    assert ok.gflop_per_image == pytest.approx(3 * ok.step_gflop + ok.vae_decode_gflop)
    assert ok.fraction_of_peak == pytest.approx(ok.achieved_tflops / 0.5)
    assert ok.flop_limit_s_per_image == pytest.approx(ok.gflop_per_image / 500.0)
    assert ok.x_flop_limit == pytest.approx(ok.s_per_image / ok.flop_limit_s_per_image)
    # the out-of-memory row is measured again on the next run
    monkeypatch.setattr(bench, "measure", original)
    assert bench.main(args) == 0
    assert list(pd.read_csv(out).status) == ["ok", "ok", "ok"]
