"""SD 2.1 architectures as data: parameter counts on the meta device, and the models they build."""

from __future__ import annotations

import pytest
import torch

from scpdiff.models import sd_configs
from scpdiff.errors import ConfigError

# Published sizes of Stable Diffusion 2.1's components (stabilityai/stable-diffusion-2-1 and -base
# share the architecture): UNet 865,910,724; KL-f8 VAE 83,653,863; OpenCLIP-H text tower as
# CLIPTextModel (23 layers) 340,387,840. An SD 2.1 ControlNet is 364,228,240 (SD 1.5's, with
# 768-dim cross-attention and convolutional projections, is the often-quoted ~361M).
PUBLISHED = {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840, "controlnet": 364_228_240}
BUILDERS = {
    "unet": sd_configs.build_unet,
    "controlnet": sd_configs.build_controlnet,
    "vae": sd_configs.build_vae,
    "text_encoder": sd_configs.build_text_encoder,
}


@pytest.mark.parametrize("name", ["sd21", "sd21-base"])
@pytest.mark.parametrize("part", list(BUILDERS))
def test_sd21_parameter_counts_on_meta(name, part):
    model = BUILDERS[part](name, device="meta")
    assert all(p.is_meta for p in model.parameters())  # nothing allocated
    assert sd_configs.count_parameters(model) == PUBLISHED[part]
    assert sd_configs.get_configs(name).expected_parameters[part] == PUBLISHED[part]


def test_controlnet_config_equals_the_unet_encoder_copy():
    """Our ControlNet config is what diffusers derives from the UNet (ControlNetModel.from_unet)."""
    from diffusers import ControlNetModel

    unet = sd_configs.build_unet("sd21", device="meta")
    with torch.device("meta"):
        derived = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    ours = sd_configs.build_controlnet("sd21", device="meta")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in derived.state_dict().items()}


def test_sd21_and_base_differ_where_the_published_configs_do():
    full, base = sd_configs.get_configs("sd21"), sd_configs.get_configs("sd21-base")
    assert (full.prediction_type, base.prediction_type) == ("v_prediction", "epsilon")
    assert (full.unet["sample_size"], base.unet["sample_size"]) == (96, 64)
    assert (full.resolution, base.resolution) == (768, 512)
    assert full.unet["upcast_attention"] and not base.unet["upcast_attention"]
    same = {k: v for k, v in full.unet.items() if k not in ("sample_size", "upcast_attention")}
    assert same == {k: v for k, v in base.unet.items() if k not in ("sample_size", "upcast_attention")}


def test_latent_shape_and_errors():
    cfg = sd_configs.get_configs("sd21")
    assert cfg.vae_scale_factor == 8
    assert cfg.latent_shape(512, 1024) == (4, 64, 128)
    with pytest.raises(ConfigError, match="multiple of the VAE factor 8"):
        cfg.latent_shape(512, 1020)
    with pytest.raises(ConfigError, match="unknown Stable Diffusion config 'sd15'"):
        sd_configs.get_configs("sd15")


def test_scheduler_is_sd_ddim_schedule():
    import numpy as np

    sched = sd_configs.build_scheduler("sd21")
    assert type(sched).__name__ == "DDIMScheduler" and sched.config.prediction_type == "v_prediction"
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2  # scaled_linear, by hand
    np.testing.assert_allclose(sched.alphas_cumprod.double().numpy(), np.cumprod(1 - betas), rtol=1e-5)


def test_builders_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    a = sd_configs.build_unet("sd21-tiny", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = sd_configs.build_unet("sd21-tiny", seed=5)
    c = sd_configs.build_unet("sd21-tiny", seed=6)
    flat = [torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c)]
    assert torch.equal(flat[0], flat[1]) and not torch.equal(flat[0], flat[2])
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_tiny_pipeline_generates_images_from_a_prompt():
    torch.set_num_threads(1)
    pipe = sd_configs.build_pipeline("sd21-tiny", dtype=torch.float32)
    out = pipe(
        prompt=["City road scenes"] * 2,
        image=torch.rand(2, 3, 64, 128),
        num_inference_steps=2,
        guidance_scale=7.5,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert out.shape == (2, 3, 64, 128) and torch.isfinite(out).all()
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
