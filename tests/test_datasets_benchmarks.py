"""The paper's benchmark configs: valid, carrying Appendix A's settings, and usable on fixtures."""

from __future__ import annotations

import copy

import pytest
from fixtures import make_ade20k_fixture, make_cityscapes_fixture, make_cocostuff_fixture, make_sd_base_fixture

from scpdiff.config.benchmark import load_benchmark, validate_benchmark
from scpdiff.datasets import open_dataset
from scpdiff.models.paths import base_model_info

PAPER = {
    # name: (resolution [H, W], prompt, segmenter, classes)
    "cityscapes": ([512, 1024], "City road scenes", "drn_d_105", 19),
    "ade20k": ([512, 512], "Photorealistic and diverse images depicting various scenes", "upernet_101", 150),
    "cocostuff": ([384, 512], "high quality, detailed", "deeplabv2", 182),  # the official RESOLUTION
}
BUILDERS = {"cityscapes": make_cityscapes_fixture, "ade20k": make_ade20k_fixture, "cocostuff": make_cocostuff_fixture}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_settings(name):
    bench = load_benchmark(name)
    resolution, prompt, segmenter, _ = PAPER[name]
    assert bench.name == name and bench["dataset"]["kind"] == name
    assert list(bench.resolution) == resolution and bench["prompt"] == prompt
    assert bench["segmenter"]["kind"] == segmenter and bench["segmenter"]["checkpoint"]
    counts = bench["counts"]
    assert counts["fid_samples"] == 50000 and counts["diversity_samples"] == 20
    # N = 10,000 reference images (Cityscapes: drawn with replacement from its 2,975, protocol reference_draw)
    assert counts["reference"] == 10000
    assert bench["models"]["prediction_type"] in ("epsilon", "v_prediction")
    assert set(bench["priors"]) == {"normal", "spatial", "categorical", "joint"}
    controlnet = bench["training"]["controlnet"]
    assert (controlnet["batch_size"], controlnet["lr"], controlnet["steps"]) == (16, 1e-5, 100000)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_benchmark_runs_on_fixture_with_overridden_paths(tmp_path, name):
    """What the workflow does with `overrides:`: same config, paths pointing at fixtures."""
    bench = load_benchmark(name)
    data = copy.deepcopy(dict(bench))
    data["dataset"]["root"] = str(BUILDERS[name](tmp_path / "data"))
    data["models"]["base"] = str(
        make_sd_base_fixture(tmp_path / "sd", prediction_type=bench["models"]["prediction_type"])
    )
    bench = validate_benchmark(data, source=f"{name} with overrides")
    for split in (bench["dataset"]["train_split"], bench["dataset"]["val_split"]):
        ds = open_dataset(
            bench["dataset"]["kind"], root=bench["dataset"]["root"], split=split, resolution=bench.resolution
        )
        image, mask, _ = ds[0]
        assert image.shape == (*bench.resolution, 3) and mask.shape == bench.resolution
        assert ds.num_classes == PAPER[name][3]
    info = base_model_info(bench["models"]["base"], expected_prediction_type=bench["models"]["prediction_type"])
    assert info.resolution == 512
