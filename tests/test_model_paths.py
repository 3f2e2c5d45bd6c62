"""Resolving the base model from a local diffusers folder or the offline Hugging Face cache."""

from __future__ import annotations

import pytest
from fixtures import make_hf_cache_fixture, make_sd_base_fixture

from scpdiff.errors import ConfigError
from scpdiff.models.paths import base_model_info, describe_base_model, resolve_base_model


def test_local_folder_sd21_base(tmp_path):
    folder = make_sd_base_fixture(tmp_path / "sd21base")
    assert resolve_base_model(str(folder)) == folder
    info = describe_base_model(folder)
    assert (info.prediction_type, info.resolution, info.variant) == ("epsilon", 512, None)


def test_local_folder_sd21_v_prediction_768(tmp_path):
    folder = make_sd_base_fixture(tmp_path / "sd21", prediction_type="v_prediction", sample_size=96)
    info = base_model_info(folder, expected_prediction_type="v_prediction")
    assert (info.path, info.prediction_type, info.resolution) == (folder, "v_prediction", 768)


def test_prediction_type_mismatch_is_an_error(tmp_path):
    folder = make_sd_base_fixture(tmp_path / "sd21", prediction_type="v_prediction", sample_size=96)
    with pytest.raises(ConfigError, match="predicts 'v_prediction' but the benchmark says.*'epsilon'"):
        base_model_info(folder, expected_prediction_type="epsilon")


def test_fp16_only_weights_report_the_variant(tmp_path):
    folder = make_sd_base_fixture(tmp_path / "sd", variant="fp16")
    assert describe_base_model(folder).variant == "fp16"


def test_missing_folder_says_what_and_where(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"base model folder .*absent does not exist; expected a diffusers .*"
        r"huggingface\.co/stabilityai/stable-diffusion-2-1-base",
    ):
        resolve_base_model(str(tmp_path / "deep" / "absent"))


def test_missing_files_are_listed(tmp_path):
    folder = make_sd_base_fixture(
        tmp_path / "sd", omit=("unet/diffusion_pytorch_model.safetensors", "tokenizer/merges.txt")
    )
    with pytest.raises(ConfigError) as err:
        resolve_base_model(str(folder))
    msg = str(err.value)
    assert "tokenizer/merges.txt" in msg and "unet/diffusion_pytorch_model.safetensors (or .bin)" in msg
    assert "vae/" not in msg.split("; expected")[0]  # only what is missing is listed
    assert "huggingface.co/stabilityai" in msg


def test_repo_id_from_offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_hf_cache_fixture(tmp_path / "hub", "stabilityai/stable-diffusion-2-1-base", commit="a" * 40)
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    path = resolve_base_model("stabilityai/stable-diffusion-2-1-base", cache_dir=tmp_path / "hub")
    assert path == snapshot
    assert base_model_info("hf:stabilityai/stable-diffusion-2-1-base", cache_dir=tmp_path / "hub").resolution == 512


def test_repo_id_revision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_hf_cache_fixture(tmp_path / "hub", "org/model", commit="b" * 40, revision="v1")
    assert resolve_base_model("org/model@v1", cache_dir=tmp_path / "hub").name == "b" * 40
    with pytest.raises(ConfigError, match="org/model'@main"):
        resolve_base_model("org/model@main", cache_dir=tmp_path / "hub")


def test_repo_id_not_cached(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"'stabilityai/stable-diffusion-2-1' is neither a local folder nor in the "
        r"Hugging Face cache .*models--stabilityai--stable-diffusion-2-1/snapshots.*"
        r"published at https://huggingface\.co/stabilityai/stable-diffusion-2-1 ",
    ):
        resolve_base_model("stabilityai/stable-diffusion-2-1", cache_dir=tmp_path / "empty")


def test_incomplete_cached_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_hf_cache_fixture(tmp_path / "hub", "org/model", omit=("vae/config.json",))
    with pytest.raises(ConfigError, match=r"base model 'org/model' .*missing vae/config\.json"):
        resolve_base_model("org/model", cache_dir=tmp_path / "hub")


def test_toy_is_not_resolved():
    with pytest.raises(ConfigError, match="trained inside the workflow"):
        resolve_base_model("toy")
