"""Speed options: parsing, what each one switches, and that none changes the images (beyond rounding)."""

from __future__ import annotations

import argparse

import pytest
import torch

from scpdiff.models import sd_configs
from scpdiff.sampling import speed as acceleration
from scpdiff.errors import ConfigError

PROMPT = "City road scenes"
H, W = 64, 128


def _pipeline():
    """The tiny SD 2.1-layout pipeline with a ControlNet that contributes (zero convolutions filled)."""
    torch.set_num_threads(1)
    pipe = sd_configs.build_pipeline("sd21-tiny", dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    zero_convs = list(pipe.controlnet.controlnet_down_blocks) + [pipe.controlnet.controlnet_mid_block]
    for conv in zero_convs:
        conv.weight.data = 0.3 * torch.randn(conv.weight.shape, generator=g)
    return pipe


def _generate(pipe, steps: int = 2) -> torch.Tensor:
    cond = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    return pipe(
        prompt=[PROMPT] * 2,
        image=cond.to(pipe.unet.dtype),
        num_inference_steps=steps,
        guidance_scale=7.5,
        output_type="pt",
        generator=[torch.Generator().manual_seed(i) for i in range(2)],
    ).images.float()


@pytest.fixture(scope="module")
def reference():
    """fp32 images of the pipeline as built, with the explicit-attention baseline (no speed option)."""
    pipe = _pipeline()
    acceleration.apply(pipe, "classic-attention")
    return _generate(pipe)


def test_controlnet_contributes_to_the_reference(reference):
    # otherwise the option tests below could not see a broken ControlNet
    pipe = _pipeline()
    for conv in list(pipe.controlnet.controlnet_down_blocks) + [pipe.controlnet.controlnet_mid_block]:
        conv.weight.data.zero_()
    assert (_generate(pipe) - reference).abs().max() > 1e-2


def test_parse_options_expands_presets_in_application_order():
    assert acceleration.parse_options("compile,bf16, sdpa") == ("bf16", "sdpa", "compile")
    assert acceleration.parse_options("default") == ("sdpa", "batched-vae")
    assert acceleration.parse_options(None) == acceleration.parse_options(acceleration.DEFAULT)
    assert acceleration.parse_options("none") == ()
    assert acceleration.parse_options(["fast"]) == ("bf16", "sdpa", "fused-qkv", "channels-last", "batched-vae", "compile")
    assert acceleration.parse_options("default,fp16") == ("fp16", "sdpa", "batched-vae")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bf16,fp16", "bf16 and fp16 exclude each other"),
        ("compile,cuda-graphs", "compile and cuda-graphs exclude each other"),
        ("fast,classic-attention", "exclude each other"),
        ("turbo", "unknown speed option 'turbo'"),
    ],
)
def test_parse_options_rejects_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        acceleration.parse_options(spec)


def test_only_precision_options_change_numerics_and_default_has_none():
    assert {o.name for o in acceleration.OPTIONS.values() if o.changes_numerics} == {"bf16", "fp16", "tf32"}
    assert not acceleration.changes_numerics(acceleration.parse_options(acceleration.DEFAULT))
    assert not acceleration.changes_numerics(acceleration.parse_options("baseline"))
    assert acceleration.changes_numerics(acceleration.parse_options("fast"))
    for name in acceleration.PRESETS:
        acceleration.parse_options(name)  # every preset is valid
    text = acceleration.describe()
    assert all(name in text for name in acceleration.OPTIONS)


def test_add_argument_validates_at_parse_time(capsys):
    parser = argparse.ArgumentParser()
    acceleration.add_argument(parser)
    assert parser.parse_args([]).speed == "default"
    assert parser.parse_args(["--speed", "bf16,compile"]).speed == "bf16,compile"
    with pytest.raises(SystemExit):
        parser.parse_args(["--speed", "bf17"])
    assert "unknown speed option 'bf17'" in capsys.readouterr().err


def _modules(pipe):
    return [pipe.unet, pipe.controlnet, pipe.vae]


def _check_sdpa(pipe):
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    for m in _modules(pipe):  # both run torch's scaled_dot_product_attention
        assert {type(p) for p in m.attn_processors.values()} in ({AttnProcessor2_0}, {FusedAttnProcessor2_0})


def _check_fused(pipe):
    from diffusers.models.attention_processor import FusedAttnProcessor2_0

    for m in _modules(pipe):
        assert {type(p) for p in m.attn_processors.values()} == {FusedAttnProcessor2_0}
    assert any(hasattr(sub, "to_qkv") for sub in pipe.controlnet.modules())


def _check_channels_last(pipe):
    for m in _modules(pipe):
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size != (1, 1)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def _check_compiled(pipe):
    assert pipe.unet._compiled_call_impl is not None and pipe.controlnet._compiled_call_impl is not None
    assert pipe.vae._compiled_call_impl is None


CHECKS = {
    "sdpa": _check_sdpa,
    "fused-qkv": _check_fused,
    "channels-last": _check_channels_last,
    "batched-vae": lambda pipe: pipe.vae.use_slicing is False,
    "sliced-vae": lambda pipe: pipe.vae.use_slicing is True,
    "compile": _check_compiled,
    "cuda-graphs": _check_compiled,
    "compile-vae": lambda pipe: pipe.vae.decoder._compiled_call_impl is not None,
    "classic-attention": lambda pipe: None,
}


# ("cuda-graphs" traces the same graphs as "compile"; its mode is checked in test_compile_modes_reach_torch_compile)
@pytest.mark.parametrize("spec", ["sdpa", "fused-qkv", "channels-last", "sliced-vae", "compile-vae",
                                  "sdpa,fused-qkv,channels-last,batched-vae,compile"])
def test_exact_options_switch_on_and_keep_the_images(spec, reference):
    """Exact options: same images up to float re-association (the wiring of torch.compile is checked
    with the 'eager' backend, which traces the full graphs with dynamo but compiles no kernels)."""
    pipe = _pipeline()
    acceleration.apply(pipe, spec, compile_backend="eager")
    for name in acceleration.parse_options(spec):
        assert CHECKS[name](pipe) is not False, name
    torch.testing.assert_close(_generate(pipe), reference, atol=1e-4, rtol=0)


def test_bf16_casts_everything_and_stays_close(reference):
    pipe = _pipeline()
    acceleration.apply(pipe, "bf16")
    assert {p.dtype for m in _modules(pipe) + [pipe.text_encoder] for p in m.parameters()} == {torch.bfloat16}
    images = _generate(pipe)
    assert torch.isfinite(images).all()
    assert (images - reference).abs().mean() < 0.02


def test_compile_modes_reach_torch_compile(monkeypatch):
    """The CUDA path's logic on the CPU: which modules are compiled, with which mode."""
    calls = []

    def fake_compile(self, *args, **kwargs):
        calls.append((type(self).__name__, kwargs))

    monkeypatch.setattr(torch.nn.Module, "compile", fake_compile)
    pipe = _pipeline()
    acceleration.apply(pipe, "cuda-graphs,compile-vae")
    assert [c[0] for c in calls] == ["UNet2DConditionModel", "ControlNetModel", "Decoder"]
    assert all(kw["mode"] == "reduce-overhead" and kw["fullgraph"] for _, kw in calls[:2])
    calls.clear()
    acceleration.apply(_pipeline(), "compile-max")
    assert [kw["mode"] for _, kw in calls] == ["max-autotune-no-cudagraphs"] * 2


def test_tf32_sets_the_process_wide_switch():
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        acceleration.apply(_pipeline(), "tf32")
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def test_applies_to_the_pipeline_load_pipeline_returns(tmp_path):
    """The contract: scpdiff.models.load_pipeline's pipeline takes the options; images unchanged."""
    models = pytest.importorskip("scpdiff.models")
    from scpdiff.models import tiny as tiny_models

    torch.set_num_threads(1)
    tiny_models.save_tiny_base(tmp_path / "base", sample_size=(8, 16))
    reference = _generate(models.load_pipeline(tmp_path / "base"))
    pipe = models.load_pipeline(tmp_path / "base")
    assert acceleration.apply(pipe, "default,fused-qkv,channels-last") is pipe
    torch.testing.assert_close(_generate(pipe), reference, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_inductor_compiled_pipeline_keeps_the_images(reference):
    """The real Inductor compile of UNet and ControlNet (about 5 minutes on 2 busy CPU cores)."""
    pipe = _pipeline()
    acceleration.apply(pipe, "sdpa,fused-qkv,channels-last,compile")
    torch.testing.assert_close(_generate(pipe), reference, atol=1e-4, rtol=0)
