"""The toy's own models: the VAE's latent scaling and the train-vae -> train-base chain of folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from scpdiff.cli import main
from scpdiff.datasets import open_dataset
from scpdiff.datasets.toy import write_toy_dataset
from scpdiff.models.tiny import tiny_vae
from scpdiff.training.vae import fit_scaling_factor
from fixtures import smoke_benchmark


def test_scaling_factor_is_the_inverse_std_of_the_posterior_means(tmp_path):
    write_toy_dataset(tmp_path / "d", num_train=5, num_val=1, resolution=(32, 64), seed=0)
    ds = open_dataset("toy", root=tmp_path / "d", split="train")
    vae = tiny_vae(seed=0)
    got = fit_scaling_factor(vae, ds, num_images=4, batch_size=3)
    x = torch.stack([torch.from_numpy(ds[i][0].copy()).permute(2, 0, 1).float() / 127.5 - 1 for i in range(4)])
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean.numpy().astype(np.float64)
    assert got == pytest.approx(1.0 / z.std(ddof=1), rel=1e-5)


@pytest.mark.slow
def test_vae_then_base_give_a_stable_diffusion_folder(tmp_path):
    from diffusers import StableDiffusionPipeline

    bench = smoke_benchmark()
    bench["name"] = "basetest"
    bench["dataset"] = {"kind": "toy", "root": str(tmp_path / "data"), "num_train": 8, "num_val": 2, "seed": 0}
    bench["models"]["prediction_type"] = "v_prediction"
    bench["training"] = {
        # 4x; trained on 32x64 windows of the 64x128 images, fitted (scaling factor) on whole ones
        "vae": {"steps": 3, "batch_size": 2, "block_out_channels": [8, 8, 16], "scaling_images": 8, "crop": [32, 64]},
        "base": {"steps": 3, "batch_size": 4, "block_out_channels": [16, 32], "text_hidden_size": 16},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    assert main(["prepare-data", "--benchmark", str(path), "--out", str(tmp_path / "index.json")]) == 0
    vae_dir, base_dir = tmp_path / "vae", tmp_path / "base"
    assert main(["train-vae", "--benchmark", str(path), "--out", str(vae_dir)]) == 0
    assert main(["train-base", "--benchmark", str(path), "--vae", str(vae_dir), "--out", str(base_dir)]) == 0
    info = json.loads((vae_dir / "training.json").read_text())
    assert info["steps"] == 3 and len((vae_dir / "train_log.csv").read_text().splitlines()) == 1 + 1
    pipe = StableDiffusionPipeline.from_pretrained(base_dir, safety_checker=None)
    assert pipe.vae.config.scaling_factor == pytest.approx(info["scaling_factor"])
    # the base UNet works on the 4x VAE's latent grid, as diffusers' pipeline computes it
    assert pipe.vae_scale_factor == 4 and pipe.unet.config.sample_size == [64 // 4, 128 // 4]
    assert pipe.unet.config.cross_attention_dim == 16
    sc = pipe.scheduler.config
    assert (sc.beta_schedule, sc.num_train_timesteps, sc.prediction_type) == ("scaled_linear", 1000, "v_prediction")
    assert (sc.beta_start, sc.beta_end) == (0.00085, 0.012)
    assert (base_dir / "train_log.csv").is_file()


def test_toy_only_commands_refuse_real_benchmarks(tmp_path, capsys):
    bench = smoke_benchmark()
    bench["models"]["base"] = str(tmp_path / "sd21")
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(bench))
    assert main(["train-vae", "--benchmark", str(path), "--out", str(tmp_path / "v")]) == 1
    assert "toy models only" in capsys.readouterr().err


def test_vae_loss_adds_the_perceptual_term(tmp_path):
    """LDM's first-stage loss: pixel terms + KL + w * LPIPS(x, D(z)), LPIPS frozen."""
    from test_metrics_diversity import _flax_alexnet

    from scpdiff.metrics.weights import convert_lpips_alexnet
    from scpdiff.models.perceptual import build_lpips
    from scpdiff.training.vae import VaeTask

    lp = build_lpips(convert_lpips_alexnet(_flax_alexnet()))
    x = {"pixel_values": torch.rand(2, 3, 64, 64) * 2 - 1}
    plain = VaeTask(tiny_vae(seed=0), 1e-4)
    with_p = VaeTask(tiny_vae(seed=0), 1e-4, lp, perceptual_weight=0.5)
    with_p.setup("cpu", torch.float32)
    l0 = plain.loss(plain.trainable(), x, torch.Generator().manual_seed(1))
    l1 = with_p.loss(with_p.trainable(), x, torch.Generator().manual_seed(1))
    # the same reconstruction (same init, same posterior noise), computed by hand
    rec, _ = with_p.trainable()(x["pixel_values"], torch.Generator().manual_seed(1))
    want = l0 + 0.5 * lp(rec, x["pixel_values"]).mean()
    assert float(l1) == pytest.approx(float(want), rel=1e-5) and float(l1) > float(l0)
    assert not any(p.requires_grad for p in lp.parameters())
    assert all(p.requires_grad for p in with_p.trainable().parameters())


def test_vae_loss_on_a_random_window_of_the_batch():
    """training.vae.crop: the loss of the batch cut at one offset on the latent grid, drawn from the
    step's generator (the same window for the same generator state)."""
    from scpdiff.training.vae import VaeTask

    x = torch.rand(2, 3, 64, 128) * 2 - 1
    task = VaeTask(tiny_vae(block_out_channels=(8, 8, 16), seed=0), 1e-4, crop=(32, 64), latent_factor=4)
    offsets = set()
    for seed in range(40):
        w = task.window(x, torch.Generator().manual_seed(seed))
        assert w.shape == (2, 3, 32, 64)
        hits = [(i, j) for i in range(33) for j in range(65) if torch.equal(x[..., i:i + 32, j:j + 64], w)]
        assert len(hits) == 1 and hits[0][0] % 4 == 0 and hits[0][1] % 4 == 0
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets spread over the (32/4 + 1) x (64/4 + 1) grid
    whole = VaeTask(tiny_vae(block_out_channels=(8, 8, 16), seed=0), 1e-4)
    window = task.window(x, torch.Generator().manual_seed(3))
    # the generator continues after the offset draws, as it does inside loss()
    g = torch.Generator().manual_seed(3)
    task.window(x, g)
    want = whole.loss(whole.trainable(), {"pixel_values": window}, g)
    got = task.loss(task.trainable(), {"pixel_values": x}, torch.Generator().manual_seed(3))
    assert float(got) == pytest.approx(float(want), rel=1e-6)


def _bench_file(tmp_path, training: dict):
    """A two-image toy benchmark file whose ``training:`` is ``training``."""
    bench = smoke_benchmark()
    bench["dataset"] = {"kind": "toy", "root": str(tmp_path / "data"), "num_train": 2, "num_val": 1, "seed": 0}
    bench["training"] = training
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    return path


@pytest.mark.parametrize("crop", [[30, 64], [32, 256], [32], [0, 64]])
def test_vae_crop_must_fit_the_latent_grid_and_the_images(tmp_path, capsys, crop):
    path = _bench_file(tmp_path, {"vae": {"steps": 1, "block_out_channels": [8, 8, 16], "crop": crop}})
    assert main(["train-vae", "--benchmark", str(path), "--out", str(tmp_path / "v")]) == 1
    err = capsys.readouterr().err
    assert "training.vae.crop" in err and "latent factor 4" in err and str(path) in err
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("levels", [0, 3])
def test_base_levels_without_attention_must_leave_an_attending_level(tmp_path, capsys, levels):
    path = _bench_file(tmp_path, {"base": {"steps": 1, "block_out_channels": [8, 16, 32], "levels_without_attention": levels}})
    vae = tmp_path / "vae"
    tiny_vae((8, 16)).save_pretrained(vae)
    assert main(["train-base", "--benchmark", str(path), "--vae", str(vae), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "training.base.levels_without_attention" in err and "between 1 and 2" in err and str(path) in err
    assert not (tmp_path / "b").exists()


def test_vae_config_reaches_the_built_model():
    from scpdiff.training.vae import VaeTrainConfig, build_vae

    cfg = VaeTrainConfig.from_mapping({"block_out_channels": [8, 16], "mid_block_add_attention": False})
    vae = build_vae(cfg)
    assert list(vae.config.block_out_channels) == [8, 16] and vae.config.mid_block_add_attention is False


def test_perceptual_term_needs_the_lpips_weights(tmp_path, capsys):
    path = _bench_file(tmp_path, {"vae": {"steps": 1, "perceptual_weight": 1.0}})
    assert main(["train-vae", "--benchmark", str(path), "--out", str(tmp_path / "v")]) == 1
    assert "perceptual_weight needs the LPIPS weights" in capsys.readouterr().err


@pytest.mark.parametrize("vae_channels, factor", [([8, 16, 16], 4), ([8, 16], 2), ([8, 8, 16, 16], 8)])
def test_latent_shape_follows_the_toy_vae(vae_channels, factor):
    """The toy's latent grid is the VAE's (one downsampling per extra level), not SD's fixed 8:
    a 4x or 2x VAE's latents, a prior fitted on them and its draws all have the benchmark's shape."""
    from scpdiff.config.benchmark import validate_benchmark
    from scpdiff.priors.for_benchmark import prior_for_benchmark

    data = smoke_benchmark()
    data["training"]["vae"] = {**data["training"]["vae"], "block_out_channels": vae_channels}
    # the ControlNet's mask embedding downsamples as often (checked when the benchmark is read)
    data["training"]["controlnet"]["conditioning_embedding_out_channels"] = [8] * factor.bit_length()
    bench = validate_benchmark(data)
    h, w = bench.resolution
    assert bench.latent_shape == (4, h // factor, w // factor)
    vae = tiny_vae(block_out_channels=vae_channels, seed=0)
    with torch.no_grad():  # the VAE itself is the reference: its encoder's output grid
        z = vae.encode(torch.zeros(2, 3, h, w)).latent_dist.mean
    assert tuple(z.shape[1:]) == bench.latent_shape
    masks = torch.zeros(2, h, w, dtype=torch.long)
    masks[:, h // 2:] = 1
    prior = prior_for_benchmark(bench, "joint").update(z + torch.randn_like(z), masks)
    assert tuple(prior.sample(masks, torch.Generator().manual_seed(0)).shape) == (2, *bench.latent_shape)


def test_real_benchmarks_keep_sds_latent_factor():
    from scpdiff.config.benchmark import load_benchmark
    from scpdiff.models.sd_configs import get_configs

    bench = load_benchmark("cityscapes")
    h, w = bench.resolution
    assert bench.latent_shape == get_configs("sd21-base").latent_shape(h, w)
