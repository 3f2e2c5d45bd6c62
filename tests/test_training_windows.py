"""Training on random windows (training.<stage>.crop): the latents' window and the pixels' window
cover the same image pixels, and a stage's loss is its loss on the windowed batch."""

from __future__ import annotations

import pytest
import torch
import yaml

from scpdiff.cli import main
from scpdiff.models.tiny import tiny_pipeline_components, tiny_vae
from scpdiff.models.controlnet import controlnet_from_unet
from scpdiff.models.sd_configs import sd_scheduler_config
from scpdiff.training.windows import latent_window
from fixtures import smoke_benchmark

PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]


def test_latent_window_cuts_the_images_at_the_same_pixels():
    f = 4
    latents = torch.randn(2, 3, 8, 16)
    images = latents.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)  # pixel (y, x) <- latent (y//f, x//f)
    offsets = set()
    for seed in range(40):
        lw, iw = latent_window(latents, (16, 32), f, torch.Generator().manual_seed(seed), images=images)
        assert lw.shape == (2, 3, 4, 8) and iw.shape == (2, 3, 16, 32)
        assert torch.equal(iw, lw.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1))
        hits = [(i, j) for i in range(5) for j in range(9) if torch.equal(latents[..., i:i + 4, j:j + 8], lw)]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 10  # spread over the 5 x 9 latent offsets
    same, none = latent_window(latents, None, f, torch.Generator().manual_seed(0))
    assert same is latents and none is None


class _FixedLatents:
    """Stands in for LatentSource: the batch carries its latents (no VAE draws on the generator)."""

    def __call__(self, batch, generator):
        return batch["latents"]


def _base_task(crop):
    from scpdiff.training.base import BaseTask

    parts = tiny_pipeline_components(sample_size=(8, 16), unet_channels=(8, 16), vae_channels=(8, 16))
    task = BaseTask(parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"], "a road",
                    sd_scheduler_config("epsilon"), crop=crop, latent_factor=2)
    task.setup(torch.device("cpu"), torch.float32)
    task.latents = _FixedLatents()
    return task


def _controlnet_task(crop):
    from scpdiff.training.controlnet import ControlNetTask

    parts = tiny_pipeline_components(sample_size=(8, 16), unet_channels=(8, 16), vae_channels=(8, 16))
    controlnet = controlnet_from_unet(parts["unet"], (8, 16), seed=0)
    task = ControlNetTask(controlnet, parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"], "a road",
                          sd_scheduler_config("epsilon"), PALETTE, crop=crop, latent_factor=2)
    task.setup(torch.device("cpu"), torch.float32)
    task.latents = _FixedLatents()
    return task


@pytest.mark.parametrize("make", [_base_task, _controlnet_task])
def test_stage_loss_is_the_loss_of_its_window(make):
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 8, 16, generator=g)
    mask = torch.randint(0, 3, (2, 16, 32), generator=g)
    cropped, whole = make((8, 16)), make(None)
    # the window the cropped task draws first from the step's generator; the rest of the stream follows
    after = torch.Generator().manual_seed(5)
    lw, mw = latent_window(latents, (8, 16), 2, after, images=mask[:, None])
    assert not torch.equal(lw, latents[..., :4, :8])  # seed 5 draws an offset other than (0, 0)
    got = cropped.loss(cropped.trainable(), {"latents": latents, "mask": mask}, torch.Generator().manual_seed(5))
    want = whole.loss(whole.trainable(), {"latents": lw, "mask": mw[:, 0]}, after)
    # (the ControlNet's: its condition is the colour-coded whole mask, cut to the latents' pixels)
    assert float(got) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("stage", ["base", "controlnet"])
def test_crop_must_fit_the_latent_grid_of_the_loaded_vae(tmp_path, capsys, stage):
    """The benchmark's VAE has factor 2, so [34, 64] passes when the file is read; the VAE the stage
    loads has another factor (a base trained elsewhere), and the trainer stops before any work."""
    bench = smoke_benchmark()
    bench["dataset"] = {"kind": "toy", "root": str(tmp_path / "data"), "num_train": 2, "num_val": 1, "seed": 0}
    bench["training"] = {"vae": {"block_out_channels": [8, 16]}, stage: {"steps": 1, "crop": [34, 64]}}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    if stage == "base":
        vae = tmp_path / "vae"
        tiny_vae((8, 16, 16)).save_pretrained(vae)  # factor 4
        args, factor = ["train-base", "--vae", str(vae)], 4
    else:
        from scpdiff.models.tiny import save_tiny_base

        # factor 8, and diffusers' default conditioning embedding (8x) for it
        args, factor = ["train-controlnet", "--base", str(save_tiny_base(tmp_path / "base"))], 8
    assert main(args + ["--benchmark", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"training.{stage}.crop [34, 64]" in err and f"latent factor {factor}" in err and str(path) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("training, message", [
    ({"vae": {"crop": [32, 63]}}, "training.vae.crop [32, 63] must be [h, w], positive multiples of the VAE's latent factor 2"),
    ({"base": {"crop": [32, 256]}}, "training.base.crop [32, 256] must be [h, w]"),
    ({"controlnet": {"crop": [0, 64]}}, "training.controlnet.crop [0, 64] must be [h, w]"),
    ({"base": {"block_out_channels": [8, 16], "levels_without_attention": 2}},
     "training.base.levels_without_attention must be between 1 and 1 for 2 levels"),
    ({"controlnet": {"conditioning_embedding_out_channels": [8, 16, 32]}},
     "conditioning_embedding_out_channels downsamples the mask 4x but the VAE's latents are 2x smaller"),
])
def test_validate_config_stops_training_options_that_cannot_work(tmp_path, capsys, training, message):
    """Checked when the benchmark is read (validate-config, the DAG), not a quarter of an hour into training."""
    bench = smoke_benchmark()
    for stage, opts in training.items():
        bench["training"][stage] = {**bench["training"].get(stage, {}), **opts}
    bench["training"]["vae"]["block_out_channels"] = [16, 32]  # latent factor 2
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    assert main(["validate-config", "--schema-only", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    bench["training"] = {"vae": {"block_out_channels": [16, 32], "crop": [32, 64]}, "base": {"crop": [32, 64]},
                         "controlnet": {"crop": [64, 128], "conditioning_embedding_out_channels": [8, 16]}}
    path.write_text(yaml.safe_dump(bench))
    assert main(["validate-config", "--schema-only", str(path)]) == 0
