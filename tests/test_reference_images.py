"""The reference rows' images: real images of a split as they are, and VAE reconstructions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from scpdiff.cli import main
from scpdiff.datasets import open_dataset
from scpdiff.models.tiny import tiny_vae
from fixtures import smoke_benchmark


@pytest.fixture()
def bench(tmp_path):
    from scpdiff.datasets.toy import write_toy_dataset

    write_toy_dataset(tmp_path / "data", num_train=3, num_val=3, resolution=(64, 128), seed=0)
    b = smoke_benchmark()
    b["dataset"].update(root=str(tmp_path / "data"), num_train=3, num_val=3)
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(b))
    return path


def test_real_images_are_written_unchanged_under_their_label_map_names(tmp_path, bench):
    out = tmp_path / "real"
    assert main(["reference-images", "--benchmark", str(bench), "--split", "train", "--num", "2", "--out", str(out)]) == 0
    ds = open_dataset("toy", root=tmp_path / "data", split="train", resolution=(64, 128))
    for i in range(2):
        image, _, name = ds[i]
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}.png")), image)
    assert len(list(out.glob("*.png"))) == 2
    assert json.loads((out / "reference.json").read_text())["kind"] == "real"


def test_vae_reconstruction_decodes_the_posterior_mean(tmp_path, bench):
    vae = tiny_vae(seed=3)
    vae.register_to_config(scaling_factor=0.7)
    vae.save_pretrained(tmp_path / "base" / "vae")
    out = tmp_path / "rec"
    assert main(["reference-images", "--benchmark", str(bench), "--num", "5", "--base", str(tmp_path / "base"),
                 "--device", "cpu", "--out", str(out)]) == 0
    ds = open_dataset("toy", root=tmp_path / "data", split="val", resolution=(64, 128))
    image, _, name = ds[1]
    # by hand: [-1, 1] input, posterior mean, decode, diffusers' rounding to pixels
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        dec = vae.decode(vae.encode(x).latent_dist.mean).sample
    want = ((dec / 2 + 0.5).clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    got = np.asarray(Image.open(out / f"{name}.png"))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at .5 only
    assert len(list(out.glob("*.png"))) == 3  # --num beyond the split: all of it
    assert json.loads((out / "reference.json").read_text())["posterior"] == "mean"
