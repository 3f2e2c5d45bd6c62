"""Importing an original (official-format) ControlNet checkpoint: ``scpdiff import-controlnet``.

The fixture ``tests/fixtures/ldm_controlnet/tiny_cldm.safetensors`` was built by the official
SCP-Diff / ControlNet model code from ``cldm_v21_tiny.yaml`` (models/cldm_v21.yaml at toy width);
``reference_outputs.safetensors`` holds what that code computed on fixed inputs (README.md there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "ldm_controlnet"
CKPT = FIXTURE / "tiny_cldm.safetensors"
CONFIG = FIXTURE / "cldm_v21_tiny.yaml"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    from fixtures.released import save_matching_base

    return save_matching_base(tmp_path_factory.mktemp("base") / "sd")


@pytest.fixture(scope="module")
def imported(base_dir, tmp_path_factory):
    from scpdiff.models.ldm_import import import_controlnet

    return import_controlnet(CKPT, base_dir, tmp_path_factory.mktemp("out") / "released", original_config=CONFIG)


@pytest.fixture(scope="module")
def reference():
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "reference_outputs.safetensors"))


def test_imported_pipeline_reproduces_the_official_model(imported, reference):
    from scpdiff.models import load_pipeline

    pipe = load_pipeline(imported, imported, device="cpu", dtype=torch.float32)
    ref = reference
    with torch.no_grad():
        context = pipe.text_encoder(ref["tokens"]).last_hidden_state
        torch.testing.assert_close(context, ref["context"], rtol=1e-5, atol=1e-5)
        down, mid = pipe.controlnet(ref["x_noisy"], ref["timestep"], encoder_hidden_states=ref["context"],
                                    controlnet_cond=ref["hint"], return_dict=False)
        eps = pipe.unet(ref["x_noisy"], ref["timestep"], encoder_hidden_states=ref["context"],
                        down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        torch.testing.assert_close(eps, ref["eps"], rtol=1e-5, atol=1e-5)
        decoded = pipe.vae.decode(ref["latent"] / pipe.vae.config.scaling_factor).sample
        torch.testing.assert_close(decoded, ref["decoded"], rtol=1e-5, atol=1e-5)
        encoded = pipe.vae.encode(ref["image"]).latent_dist.mode() * pipe.vae.config.scaling_factor
        torch.testing.assert_close(encoded, ref["encoded"], rtol=1e-5, atol=1e-5)


def test_command_reads_a_trusted_pickle_and_refuses_an_untrusted_one(base_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from scpdiff.cli import main

    ckpt = tmp_path / "released.ckpt"
    torch.save({"state_dict": load_file(str(CKPT)), "global_step": 3}, ckpt)
    out = tmp_path / "out"
    argv = ["import-controlnet", str(ckpt), "--base", str(base_dir), "--out", str(out), "--original-config", str(CONFIG)]
    assert main(argv) == 1
    assert "--trust-pickle" in capsys.readouterr().err and not out.exists()
    assert main(argv + ["--trust-pickle"]) == 0
    for sub in ("unet", "controlnet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (out / sub).is_dir(), sub
    assert (out / "model_index.json").is_file()


def test_refuses_a_checkpoint_that_does_not_match(base_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from scpdiff.errors import InputError
    from scpdiff.models.ldm_import import import_controlnet

    state = load_file(str(CKPT))
    dropped = "control_model.zero_convs.3.0.weight"
    broken = {k: v for k, v in state.items() if k != dropped}
    broken["model.diffusion_model.out.2.bias"] = torch.zeros(5)
    path = tmp_path / "broken.safetensors"
    save_file(broken, str(path))
    with pytest.raises(InputError) as err:
        import_controlnet(path, base_dir, tmp_path / "out", original_config=CONFIG)
    assert "controlnet_down_blocks.3.weight" in str(err.value) or "unet" in str(err.value)
    assert str(path) in str(err.value) and not (tmp_path / "out").exists()
    # the full-size default config (SD 2.1-base) does not fit the tiny checkpoint: wrong shapes named
    with pytest.raises(InputError, match="wrong shape"):
        import_controlnet(CKPT, base_dir, tmp_path / "out")
    # not a ControlNet checkpoint at all
    only_vae = tmp_path / "vae.safetensors"
    save_file({k: v for k, v in state.items() if k.startswith("first_stage_model.")}, str(only_vae))
    with pytest.raises(InputError, match=r"no model\.diffusion_model\.\*"):
        import_controlnet(only_vae, base_dir, tmp_path / "out", original_config=CONFIG)


def test_refuses_a_base_with_another_noise_schedule(base_dir, tmp_path):
    import json
    import shutil

    from scpdiff.errors import InputError
    from scpdiff.models.ldm_import import import_controlnet

    other = tmp_path / "v-base"
    shutil.copytree(base_dir, other)
    config = other / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), prediction_type="v_prediction")))
    with pytest.raises(InputError, match="prediction_type='v_prediction' vs cldm_v21's epsilon"):
        import_controlnet(CKPT, other, tmp_path / "out", original_config=CONFIG)
    assert not (tmp_path / "out").exists()
