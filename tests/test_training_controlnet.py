"""ControlNet fine-tuning: initialisation, which weights train, and an exact resume through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from scpdiff.cli import main
from scpdiff.models.tiny import save_tiny_base, tiny_unet
from scpdiff.models.controlnet import controlnet_from_unet as build_controlnet
from scpdiff.training.controlnet import ControlledUNet, decoder_modules
from fixtures import smoke_benchmark


def test_controlnet_starts_as_the_base_unet():
    """Zero convolutions: before training, UNet + ControlNet predicts exactly what the UNet does."""
    unet = tiny_unet(seed=1)
    net = ControlledUNet(build_controlnet(unet, (8, 16, 16, 16), seed=0), unet)
    g = torch.Generator().manual_seed(0)
    x, ctx, cond = torch.randn(2, 4, 8, 16, generator=g), torch.randn(2, 77, 32, generator=g), torch.rand(2, 3, 64, 128, generator=g)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.equal(net(x, t, ctx, cond), unet(x, t, encoder_hidden_states=ctx).sample)


def test_decoder_modules_are_the_up_path():
    unet = tiny_unet(seed=1)
    ids = {id(p) for m in decoder_modules(unet) for p in m.parameters()}
    names = {n.split(".")[0] for n, p in unet.named_parameters() if id(p) in ids}
    assert names == {"up_blocks", "conv_norm_out", "conv_out"}


def _bench(tmp_path: Path, unlock: bool) -> Path:
    bench = smoke_benchmark()
    bench["name"] = "cntest"
    bench["dataset"] = {"kind": "toy", "root": str(tmp_path / "data"), "num_train": 6, "num_val": 2, "seed": 0}
    bench["training"] = {
        "controlnet": {
            "steps": 5, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 2, "log_every": 1,
            "unlock_decoder": unlock, "conditioning_embedding_out_channels": [8, 16, 16, 16],
            "cache_latents": True,
        }
    }
    path = tmp_path / f"bench_{unlock}.yaml"
    path.write_text(yaml.safe_dump(bench))
    assert main(["prepare-data", "--benchmark", str(path), "--out", str(tmp_path / "index.json")]) == 0
    return path


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(folder.glob("*.safetensors"))))


@pytest.mark.slow
def test_killed_and_resumed_training_ends_with_identical_weights(tmp_path):
    bench = _bench(tmp_path, unlock=True)
    base = save_tiny_base(tmp_path / "base")
    common = ["train-controlnet", "--benchmark", str(bench), "--base", str(base)]
    assert main(common + ["--out", str(tmp_path / "full")]) == 0
    assert main(common + ["--out", str(tmp_path / "resumed"), "--stop-after", "3"]) == 0
    assert not (tmp_path / "resumed").exists()  # a stopped run writes no model
    assert (tmp_path / "resumed.state" / "checkpoints" / "step-00000002").is_dir()
    assert main(common + ["--out", str(tmp_path / "resumed")]) == 0
    for part in ("controlnet", "unet"):
        a, b = _weights(tmp_path / "full" / part), _weights(tmp_path / "resumed" / part)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (part, k)
    # the UNet encoder stayed frozen, the unlocked decoder trained
    unet0, unet1 = _weights(base / "unet"), _weights(tmp_path / "full" / "unet")
    assert all(torch.equal(unet0[k], unet1[k]) for k in unet0 if k.startswith(("down_blocks", "mid_block", "conv_in")))
    assert any(not torch.equal(unet0[k], unet1[k]) for k in unet0 if k.startswith("up_blocks"))
    # zero convolutions moved away from 0: the ControlNet learned something
    cn = _weights(tmp_path / "full" / "controlnet")
    assert any(cn[k].abs().max() > 0 for k in cn if k.startswith("controlnet_down_blocks"))
    log = (tmp_path / "resumed" / "train_log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3", "4", "5"]


@pytest.mark.slow
def test_locked_decoder_writes_only_the_controlnet(tmp_path):
    bench = _bench(tmp_path, unlock=False)
    base = save_tiny_base(tmp_path / "base")
    out = tmp_path / "cn"
    assert main(["train-controlnet", "--benchmark", str(bench), "--base", str(base), "--out", str(out), "--steps", "2"]) == 0
    assert (out / "controlnet" / "config.json").is_file() and not (out / "unet").exists()
    assert not (tmp_path / "cn.state" / "checkpoints").exists()  # dropped after success
    assert (tmp_path / "cn.state" / "train_log.csv").is_file()


def test_prediction_type_mismatch_is_a_config_error(tmp_path, capsys):
    bench = _bench(tmp_path, unlock=True)
    data = yaml.safe_load(bench.read_text())
    data["models"]["prediction_type"] = "v_prediction"
    bench.write_text(yaml.safe_dump(data))
    base = save_tiny_base(tmp_path / "base")  # epsilon
    assert main(["train-controlnet", "--benchmark", str(bench), "--base", str(base), "--out", str(tmp_path / "x")]) == 1
    assert "v_prediction" in capsys.readouterr().err


def test_condition_resize_reaches_fine_tuning(tmp_path):
    # the toy made at 64x128 and trained at 32x64: bilinear_antialias conditions (soft class edges from
    # the stored maps) and nearest ones (the halved maps colour-coded) train different ControlNets
    path = _bench(tmp_path, unlock=False)
    bench = yaml.safe_load(path.read_text())
    bench["resolution"] = [32, 64]
    bench["training"]["controlnet"].update(steps=2, checkpoint_every=2, cache_latents=False)
    base = save_tiny_base(tmp_path / "base")
    weights = {}
    for resize in ("nearest", "bilinear_antialias"):
        bench["protocol"]["condition_resize"] = resize
        path.write_text(yaml.safe_dump(bench))
        out = tmp_path / resize
        assert main(["train-controlnet", "--benchmark", str(path), "--base", str(base), "--out", str(out)]) == 0
        weights[resize] = _weights(out / "controlnet")
    a, b = weights["nearest"], weights["bilinear_antialias"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_controlnet_hint_must_reach_the_vaes_latent_grid(tmp_path, capsys):
    """A 4x VAE's latents are 4x smaller than the mask: a conditioning embedding that downsamples
    8x would meet them at the wrong size, so fine-tuning refuses it before any work."""
    base = save_tiny_base(tmp_path / "base", sample_size=(16, 32), vae_channels=(8, 16, 16))
    bench = smoke_benchmark()
    bench["dataset"] = {"kind": "toy", "root": str(tmp_path / "data"), "num_train": 2, "num_val": 1, "seed": 0}
    bench["training"]["vae"] = {**bench["training"]["vae"], "block_out_channels": [8, 16, 16]}
    bench["training"]["controlnet"] = {"steps": 1, "conditioning_embedding_out_channels": [8, 16, 32, 32]}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    out = tmp_path / "cn"
    assert main(["train-controlnet", "--benchmark", str(path), "--base", str(base), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "conditioning_embedding_out_channels" in err and "give it 3 entries" in err
    assert not out.exists()
