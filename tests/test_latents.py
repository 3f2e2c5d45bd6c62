"""VAE encoding to scaled latents: input range, posterior sampling, batching, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scpdiff.models import tiny as tiny_models
from scpdiff.errors import InputError
from scpdiff.latents.encoding import encode_images, images_to_vae_input
from scpdiff.sampling import image_generators


@pytest.fixture(scope="module")
def vae():
    torch.set_num_threads(1)
    return tiny_models.tiny_vae(scaling_factor=0.5)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 64, 3), dtype=np.uint8)


def test_vae_input_range_hand_values():
    img = np.array([[[[0, 255, 51]]]], dtype=np.uint8)
    x = images_to_vae_input(img)
    assert x.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(x.flatten().numpy(), [-1.0, 1.0, 51 / 127.5 - 1], atol=1e-7)


@pytest.mark.parametrize("bad", [np.zeros((1, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8), np.zeros((1, 8, 8, 4), np.uint8)])
def test_bad_images_are_errors(vae, bad):
    with pytest.raises(InputError):
        encode_images(vae, bad, image_generators("x", range(len(bad))))


def test_latents_are_scaled_posterior_samples():
    # Give the posterior a known log-variance through quant_conv's bias: then (x0 - scale*mean)
    # must have standard deviation scale * exp(logvar / 2) (a sample, not the mean).
    logvar = np.log(0.25)
    vae = tiny_models.tiny_vae(scaling_factor=0.5)
    with torch.no_grad():
        vae.quant_conv.weight[4:].zero_()
        vae.quant_conv.bias[4:].fill_(logvar)
    imgs = _images(8)
    x0 = encode_images(vae, imgs, image_generators("enc", range(8)))
    with torch.no_grad():
        mean = vae.encode(images_to_vae_input(imgs)).latent_dist.mean
    assert x0.shape == (8, 4, 4, 8) and x0.dtype == torch.float32
    resid = (x0 - 0.5 * mean).double().numpy().ravel()
    expected_std = 0.5 * np.exp(logvar / 2)  # = 0.25
    # 1024 draws: the sample std is within ~7 % of the truth at > 4 sigma
    assert abs(resid.std() - expected_std) < 0.07 * expected_std
    assert abs(resid.mean()) < 4 * expected_std / np.sqrt(resid.size)


def test_encoding_does_not_depend_on_batching(vae):
    imgs = _images(5, seed=1)
    whole = encode_images(vae, imgs, image_generators("enc", range(5)), batch_size=5)
    parts = torch.cat([
        encode_images(vae, imgs[:2], image_generators("enc", range(2)), batch_size=1),
        encode_images(vae, imgs[2:], image_generators("enc", range(2, 5)), batch_size=2),
    ])
    torch.testing.assert_close(whole, parts, rtol=0, atol=1e-5)
    # per-image seeds: the same image under another index gets another posterior sample
    other = encode_images(vae, imgs[:1], image_generators("enc", [7]))
    assert not torch.allclose(other, whole[:1])
