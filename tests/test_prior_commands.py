"""fit-prior and merge-priors through the CLI: shard fits merged equal one fit over all latents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import scpdiff.priors as P
from scpdiff.cli import main
from scpdiff.latents.shards import LatentShard, read_latent_shard, write_latent_shard
from fixtures import smoke_benchmark


@pytest.fixture()
def bench_file(tmp_path):
    b = smoke_benchmark()
    b.update(name="prior_cli", resolution=[32, 64])
    b["dataset"] = {"kind": "cityscapes", "root": str(tmp_path / "none")}
    b["prior_options"] = {"min_count": 2, "ignore_index": 255}
    path = tmp_path / "prior_cli.yaml"
    path.write_text(yaml.safe_dump(b))
    return path


def _latent_grid():
    """The fixture benchmark's latent grid: the smoke toy's VAE factor under its 32x64 masks."""
    from scpdiff.config.benchmark import load_benchmark

    f = load_benchmark("smoke").latent_factor
    return f, (32 // f, 64 // f)


def _shards(tmp_path, n_shards=3, per=5):
    rng = np.random.default_rng(0)
    paths, all_x, all_m = [], [], []
    f, (h, w) = _latent_grid()
    for i in range(n_shards):
        x = torch.from_numpy(rng.normal(size=(per, 4, h, w))).float()
        lab = rng.integers(0, 19, size=(per, h, w))
        lab[rng.random(lab.shape) < 0.1] = 255
        m = torch.from_numpy(np.repeat(np.repeat(lab, f, 1), f, 2))
        p = tmp_path / f"lat_{i}.safetensors"
        write_latent_shard(p, LatentShard(x, m, [f"img{i}_{k}" for k in range(per)], {"dataset": "cs", "vae": "v", "scaling_factor": "0.18215"}))
        paths.append(p)
        all_x.append(x)
        all_m.append(m)
    return paths, torch.cat(all_x), torch.cat(all_m)


def test_latent_shard_round_trip(tmp_path):
    paths, x, m = _shards(tmp_path, 1)
    s = read_latent_shard(paths[0])
    assert torch.equal(s.latents, x) and torch.equal(s.masks, m) and s.names[0] == "img0_0"
    assert s.metadata["scaling_factor"] == "0.18215"


@pytest.mark.parametrize("variant", ["spatial", "categorical", "joint"])
def test_fit_merge_cli_equals_single_fit(tmp_path, bench_file, variant):
    paths, x, m = _shards(tmp_path)
    outs = []
    for i, p in enumerate(paths):
        out = tmp_path / f"{variant}_{i}.safetensors"
        assert main(["fit-prior", "--benchmark", str(bench_file), "--variant", variant, "--latents", str(p), "--out", str(out), "--batch-size", "2"]) == 0
        outs.append(str(out))
    merged = tmp_path / f"{variant}.safetensors"
    assert main(["merge-priors", "--out", str(merged), *outs]) == 0
    got = P.load(merged, variant=variant)
    ref = P.create(variant, num_classes=19, latent_shape=tuple(x.shape[1:]), min_count=2)
    ref.update(x, m)
    assert got.num_images == 15 and got.provenance["dataset"] == "cs"
    torch.testing.assert_close(got.mean, ref.mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got.var, ref.var, rtol=1e-8, atol=1e-12)
    # numpy reference of the spatial statistics, the fallback of every variant
    np.testing.assert_allclose(got.spatial_stats()[1].numpy(), x.double().numpy().var(0), rtol=1e-9)


def test_bad_inputs_exit_nonzero_with_message(tmp_path, bench_file, capsys):
    paths, _, _ = _shards(tmp_path, 2)
    a = tmp_path / "a.safetensors"
    b = tmp_path / "b.safetensors"
    assert main(["fit-prior", "--benchmark", str(bench_file), "--variant", "joint", "--latents", str(paths[0]), "--out", str(a)]) == 0
    assert main(["fit-prior", "--benchmark", str(bench_file), "--variant", "spatial", "--latents", str(paths[1]), "--out", str(b)]) == 0
    assert main(["merge-priors", "--out", str(tmp_path / "m.safetensors"), str(a), str(b)]) == 1
    assert "expected 'joint'" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()
    assert main(["fit-prior", "--benchmark", str(bench_file), "--variant", "joint", "--latents", str(tmp_path / "nope.safetensors"), "--out", str(a)]) == 1
    assert "nope.safetensors" in capsys.readouterr().err
