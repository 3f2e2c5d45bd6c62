"""The tiny model builders: shapes, determinism, and a base folder diffusers loads offline."""

from __future__ import annotations

import json

import pytest
import torch

from scpdiff.models import tiny as tm


def test_tokenizer_roundtrips_text_byte_level():
    tok = tm.tiny_tokenizer()
    assert len(tok) == 514
    ids = tok("City road scenes").input_ids
    assert ids[0] == tok.bos_token_id == 512 and ids[-1] == tok.eos_token_id == 513
    # no merges: one token per character (CLIP lower-cases), the last of each word with </w>
    assert len(ids) == 2 + len("cityroadscenes")
    assert tok.decode(ids, skip_special_tokens=True).strip() == "city road scenes"


def test_builders_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = tm.tiny_unet(seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = tm.tiny_unet(seed=3)
    c = tm.tiny_unet(seed=4)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)


def test_vae_latent_factor_is_8_and_shapes_match_the_unet():
    vae = tm.tiny_vae()
    x = torch.rand(2, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        y = vae.decode(z).sample
    assert z.shape == (2, 4, 8, 16)
    assert y.shape == x.shape
    unet = tm.tiny_unet(sample_size=(8, 16))
    cn = tm.tiny_controlnet(unet)
    emb = torch.randn(2, 5, 32)
    with torch.no_grad():
        down, mid = cn(z, 10, encoder_hidden_states=emb, controlnet_cond=torch.rand(2, 3, 64, 128), return_dict=False)
        eps = unet(z, 10, encoder_hidden_states=emb, down_block_additional_residuals=down,
                   mid_block_additional_residual=mid).sample
    assert eps.shape == z.shape


def test_unet_levels_without_attention_are_the_finest_ones():
    from diffusers.models.attention_processor import Attention

    unet = tm.tiny_unet(sample_size=(16, 32), block_out_channels=(8, 16, 32), levels_without_attention=2)
    assert unet.config.down_block_types == ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    assert unet.config.up_block_types == ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    attending = [i for i, block in enumerate(unet.down_blocks) if any(isinstance(m, Attention) for m in block.modules())]
    assert attending == [2]
    cn = tm.tiny_controlnet(unet, conditioning_embedding_out_channels=(8, 16))  # copies the layout
    assert [type(b).__name__ for b in cn.down_blocks] == ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"]
    z, emb = torch.randn(1, 4, 16, 32), torch.randn(1, 5, 32)
    with torch.no_grad():
        down, mid = cn(z, 10, encoder_hidden_states=emb, controlnet_cond=torch.rand(1, 3, 32, 64), return_dict=False)
        eps = unet(z, 10, encoder_hidden_states=emb, down_block_additional_residuals=down,
                   mid_block_additional_residual=mid).sample
    assert eps.shape == z.shape
    for bad in (0, 3):
        with pytest.raises(ValueError, match="levels_without_attention"):
            tm.tiny_unet(block_out_channels=(8, 16, 32), levels_without_attention=bad)


def test_vae_without_middle_attention_has_no_attention_at_all():
    from diffusers.models.attention_processor import Attention

    with_attention, without = tm.tiny_vae((8, 16)), tm.tiny_vae((8, 16), mid_block_add_attention=False)
    assert any(isinstance(m, Attention) for m in with_attention.modules())
    assert not any(isinstance(m, Attention) for m in without.modules())
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        assert without.decode(without.encode(x).latent_dist.mean).sample.shape == x.shape


def test_controlnet_starts_as_a_no_op():
    # ControlNet's zero convolutions: a fresh control branch adds nothing to the UNet (paper sec. 3.1).
    unet = tm.tiny_unet()
    cn = tm.tiny_controlnet(unet)
    z = torch.randn(1, 4, 8, 16)
    emb = torch.randn(1, 5, 32)
    with torch.no_grad():
        down, mid = cn(z, 500, encoder_hidden_states=emb, controlnet_cond=torch.rand(1, 3, 64, 128), return_dict=False)
    assert all(float(d.abs().max()) == 0.0 for d in down) and float(mid.abs().max()) == 0.0


def test_scheduler_config_is_sd_schedule():
    from diffusers import DDIMScheduler

    s = DDIMScheduler(**tm.sd_scheduler_config("v_prediction"))
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert torch.allclose(s.betas.double(), betas, atol=1e-9)
    assert s.config.prediction_type == "v_prediction"


def test_saved_base_loads_offline(tmp_path):
    from diffusers import StableDiffusionPipeline

    path = tm.save_tiny_base(tmp_path / "base")
    assert {p.name for p in path.iterdir()} >= {"unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"}
    index = json.loads((path / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    pipe = StableDiffusionPipeline.from_pretrained(path, local_files_only=True)
    out = pipe("City road scenes", height=64, width=128, num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 64, 128, 3)
    ref = tm.tiny_pipeline_components()["unet"]
    assert torch.equal(next(pipe.unet.parameters()), next(ref.parameters()))


@pytest.mark.parametrize("channels", [(8, 16, 16, 16), (12, 24, 24, 24)])
def test_group_norm_groups_divide_channels(channels):
    g = tm._groups(channels)
    assert all(c % g == 0 for c in channels) and g <= 32
    tm.tiny_vae(channels)
