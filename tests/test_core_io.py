"""Atomic outputs, the mask condition encoding, and benchmark config validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from scpdiff.config.benchmark import load_benchmark, validate_benchmark
from scpdiff.models.conditioning import encode_mask
from scpdiff.errors import ConfigError, InputError
from scpdiff.utils.files import atomic_dir, atomic_path


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".csv" and tmp != target
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "shard_0"
    with atomic_dir(target) as d:
        (d / "a.png").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "b.png").write_text("2")
            raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard_0"]


def test_encode_mask_uses_palette_and_blacks_out_ignore():
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    m = torch.tensor([[[0, 1], [2, 255]]])
    got = encode_mask(m, palette)
    assert got.shape == (1, 3, 2, 2) and got.dtype == torch.float32
    want = np.array([[[255, 0, 0], [0, 128, 255]], [[10, 20, 30], [0, 0, 0]]], dtype=np.float32) / 255
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), want)
    with pytest.raises(InputError, match=r"\[3\]"):
        encode_mask(torch.tensor([[[0, 3]]]), palette)


def _bench():
    return yaml.safe_load(open("benchmarks/toy.yaml"))


def test_shipped_benchmarks_validate():
    for name in ("toy", "smoke"):
        b = load_benchmark(name)
        f = 2 ** (len(b["training"]["vae"]["block_out_channels"]) - 1)  # one downsampling per extra level
        assert f < 8 and b.latent_shape == (4, b.resolution[0] // f, b.resolution[1] // f)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda b: b.pop("prompt"), "'prompt' is a required property"),
        (lambda b: b.update(resolution=[60, 128]), "multiple of 8"),
        (lambda b: b["mu"].update(table=1.5), "mu/table"),
        (lambda b: b["dataset"].update(kind="imagenet"), "dataset/kind"),
        (lambda b: b.update(unknown_key=1), "unknown_key"),
        (lambda b: b["sampling"].update(seed=3, seeds=[0, 1]), "sampling.seed 3 differs from sampling.seeds"),
        (lambda b: b["sampling"].update(seeds=[1, 1]), "sampling/seeds"),
        (lambda b: b.update(uncertainty={"level": 1.0}), "uncertainty/level"),
        (lambda b: b.update(uncertainty={"resamples": -1}), "uncertainty/resamples"),
    ],
)
def test_bad_benchmark_configs_are_rejected_with_the_key(edit, message):
    b = _bench()
    edit(b)
    with pytest.raises(ConfigError, match=message):
        validate_benchmark(b, source="bad.yaml")


def test_seeds_and_uncertainty_defaults():
    b = _bench()
    b["sampling"].pop("seeds", None)
    b["sampling"]["seed"] = 4
    b.pop("uncertainty", None)
    bench = validate_benchmark(b, source="x.yaml")
    assert bench.sampling_seeds == [4]
    assert bench.uncertainty == {"resamples": 1000, "seed": 0, "level": 0.95}
    b["sampling"].pop("seed")
    b["sampling"]["seeds"] = [7, 2]
    b["uncertainty"] = {"resamples": 50}
    bench = validate_benchmark(b, source="x.yaml")
    assert bench.sampling_seeds == [7, 2] and bench.uncertainty["resamples"] == 50


def test_missing_benchmark_names_the_search_path():
    with pytest.raises(ConfigError, match="no_such_benchmark.yaml"):
        load_benchmark("no_such_benchmark")
